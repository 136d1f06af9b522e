-- Several endpoints (signalr.endpoints) against real emulators: options,
-- per-call endpoints, result shapes, existence checks, negotiate and the
-- router, the binding's endpoints field, async request objects, and one
-- endpoint named "" on a plain client.
local env = require "helpers.env"
local signalr = require "signalr"

local function new(eps, extra)
    local o = { endpoints = eps, retries = 0, health_interval = 60 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return signalr.new(o)
end

local function port_of(url) return tonumber(url:match(":(%d+)/")) end

describe("several endpoints", function()
    local a, b, pool
    setup(function()
        a, b = env.emulator(), env.emulator()
        pool = env.clients(a)
    end)
    teardown(function()
        pool:quit()
        a:stop()
        b:stop()
    end)
    before_each(function() a:clear() b:clear() end)

    local function both()
        return { { connection_string = a.cs, name = "eu" },
                 { connection_string = b.cs, name = "us", type = "Secondary" } }
    end

    describe("options", function()
        it("raises on a wrong shape, names the entry", function()
            assert.has_error(function() signalr.new { endpoints = {} } end,
                "signalr.new: option 'endpoints' must be a non-empty list of endpoint tables"
                .. " ({ connection_string = ..., name = ..., type = \"primary\"|\"secondary\" })")
            assert.has_error(function() new { 42 } end,
                "signalr.new: endpoints[1] must be a table or a connection string, got number")
            assert.has_error(function() new { { connection_string = a.cs, type = "tertiary" } } end,
                "signalr.new: endpoints[1].type must be \"primary\" or \"secondary\"")
            assert.has_error(function() new { { name = "x" } } end,
                "signalr.new: endpoints[1] needs a connection_string")
            assert.has_error(function()
                new { { connection_string = a.cs, name = "x" }, { connection_string = b.cs, name = "x" } }
            end, "signalr.new: endpoints[2]: the name 'x' is taken (give each endpoint its own name)")
            assert.has_error(function()
                new { { connection_string = a.cs, router = function() end } }
            end, "signalr.new: endpoints[1]: option 'router' is for the whole client, not one endpoint")
            assert.has_error(function()
                signalr.new { endpoints = both(), connection_string = a.cs }
            end, "signalr.new: give either 'connection_string' or 'endpoints', not both")
            assert.has_error(function() signalr.new { connection_string = a.cs, router = print } end,
                "signalr.new: option 'router' is for clients with several endpoints (option 'endpoints')")
            assert.has_error(function() new(both(), { health_retries = 1.5 }) end,
                "signalr.new: option 'health_retries' must be an integer from 0 to 100")
        end)

        it("a bad connection string is nil, message, details naming the entry", function()
            local c, msg, d = new { { connection_string = a.cs }, { connection_string = "Endpoint=nope" } }
            assert.is_nil(c)
            assert.matches("^signalr.new: endpoints%[2%]: ", msg)
            assert.equal("ECONNSTR", d.code)
        end)

        it("names default to the endpoint URL; each entry may carry its own options", function()
            local c = assert(new({ a.cs, { connection_string = b.cs, timeout = 3 } }))
            local eps = c:endpoints()
            assert.equal(2, #eps)
            assert.equal(a.base:gsub("127.0.0.1", "localhost"), eps[1].name)
            assert.equal("primary", eps[2].type)
            assert.is_true(eps[1].online)
            assert.matches("2 endpoints", tostring(c))
            local info = c:info()
            assert.equal(2, #info.endpoints)
            assert.is_nil(info.endpoints[1].access_key)
            c:close()
        end)
    end)

    describe("calls", function()
        it("a send goes to every online endpoint, and true means all took it", function()
            local c = assert(new(both()))
            local hub = c:hub("chat")
            assert.is_true(hub:broadcast("m", { 1 }))
            assert.equal(1, #a:requests())
            assert.equal(1, #b:requests())
            c:close()
        end)

        it("opts.endpoints chooses, by name or by the endpoint tables", function()
            local c = assert(new(both()))
            local hub = c:hub("chat")
            assert.is_true(hub:to_user("u1", "m", { 1 }, { endpoints = { "us" } }))
            assert.equal(0, #a:requests())
            assert.equal(1, #b:requests())
            assert.is_true(hub:add_user_to_group("u1", "g", { endpoints = { c:endpoints()[1] } }))
            assert.equal(1, #a:requests())
            local ok, msg, d = hub:to_group("g", "m", {}, { endpoints = { "mars" } })
            assert.is_nil(ok)
            assert.equal("signalr.to_group: unknown endpoint 'mars' (known: eu, us)", msg)
            assert.equal("EINVAL", d.code)
            assert.has_error(function() hub:broadcast("m", {}, { endpoints = "eu" }) end,
                "signalr.broadcast: opts.endpoints must be a list of endpoint names or endpoint tables, got string")
            assert.has_error(function() hub:user_exists("u", { endpoints = { 1 } }) end,
                "signalr.user_exists: opts.endpoints[1] must be an endpoint name or a table with a name")
            c:close()
        end)

        it("a failure on one endpoint is EPARTIAL, naming which took it and which did not", function()
            local c = assert(new(both()))
            local hub = c:hub("chat")
            b:fault { mode = "status", status = 500, count = 1 }
            local ok, msg, d = hub:broadcast("m", { 1 })
            assert.is_nil(ok)
            assert.equal("EPARTIAL", d.code)
            assert.is_true(d.endpoints.eu)
            assert.equal("ESTATUS", d.endpoints.us.code)
            assert.equal(500, d.endpoints.us.status)
            assert.equal(1, d.delivered)
            assert.equal(1, d.failed)
            assert.matches("^signalr.broadcast: 1 of 2 endpoints took it; us: ", msg)
            -- the 5xx marked it offline: the next send skips it, and says so
            ok, msg, d = hub:broadcast("m", { 2 })
            assert.is_nil(ok)
            assert.equal("EOFFLINE", d.endpoints.us.code)
            assert.is_false(d.endpoints.us.sent)
            assert.matches("us: offline, not sent", msg)
            assert.is_false(c:endpoints()[2].online)
            -- a health check brings it back
            assert.is_true(c:health())
            assert.is_true(c:endpoints()[2].online)
            assert.is_true(hub:broadcast("m", { 3 }))
            c:close()
        end)

        it("one chosen endpoint fails with its own error", function()
            local c = assert(new(both()))
            b:fault { mode = "status", status = 400, count = 1 }
            local ok, _, d = c:hub("chat"):broadcast("m", {}, { endpoints = { "us" } })
            assert.is_nil(ok)
            assert.equal("ESTATUS", d.code)
            assert.equal(400, d.status)
            assert.equal("ESTATUS", d.endpoints.us.code)
            c:close()
        end)

        it("bad input fails once, before anything is sent", function()
            local c = assert(new(both()))
            local ok, _, d = c:hub("chat"):to_group("", "m", {})
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.equal(0, #a:requests() + #b:requests())
            c:close()
        end)

        it("existence checks: true if any endpoint says so, false if all say no", function()
            local c = assert(new(both()))
            local hub = c:hub("chat")
            local n = assert(hub:negotiate { user_id = "only-on-us", endpoints = { "us" } })
            assert.equal(b.port, port_of(n.url))
            assert(pool:connect("u-on-us", n))
            assert.is_true(hub:user_exists("only-on-us"))
            assert.is_false(hub:user_exists("nobody"))
            -- one cannot answer: the others' answer stands
            a:fault { mode = "status", status = 503, count = 1 }
            assert.is_true(hub:user_exists("only-on-us"))
            assert.is_true(c:health())
            -- none can answer: an error
            a:fault { mode = "status", status = 400, count = 1 }
            b:fault { mode = "status", status = 400, count = 1 }
            local ok, msg, d = hub:user_exists("nobody")
            assert.is_nil(ok)
            assert.equal("EPARTIAL", d.code)
            assert.matches("no endpoint could answer", msg)
            pool:send { cmd = "stop", name = "u-on-us" }
            c:close()
        end)

        it("the binding's endpoints field routes a message and a group action", function()
            local c = assert(new(both()))
            local hub = c:hub("chat")
            assert.is_true(hub:send { target = "m", arguments = { 1 },
                endpoints = { { endpointType = "Secondary", name = "us", endpoint = b.base, online = true } } })
            assert.equal(0, #a:requests())
            assert.equal(1, #b:requests())
            assert.is_true(hub:send { action = "add", userId = "u", groupName = "g", endpoints = { "eu" } })
            assert.equal(1, #a:requests())
            assert.has_error(function() hub:send { target = "m", endpoints = "eu" } end,
                "signalr.send: action.endpoints must be a list, got string")
            c:close()
        end)

        it("group_connections lists every endpoint's members", function()
            local c = assert(new(both(), { api_version = "2024-12-01" }))
            local hub = c:hub("chat")
            local ids = {}
            for i, ep in ipairs { "eu", "us" } do
                local n = assert(hub:negotiate { endpoints = { ep } })
                ids[i] = assert(pool:connect("gc-" .. ep, n))
                assert.is_true(hub:add_connection_to_group(ids[i], "lobby", { endpoints = { ep } }))
            end
            local list = assert(hub:group_connections("lobby"))
            assert.equal(2, #list)
            local seen = {}
            for _, m in ipairs(list) do seen[m.connection_id] = true end
            assert.is_true(seen[ids[1]] and seen[ids[2]])
            for _, ep in ipairs { "eu", "us" } do pool:send { cmd = "stop", name = "gc-" .. ep } end
            c:close()
        end)
    end)

    describe("negotiate", function()
        it("picks an online primary, falls back to a secondary, errors when none is online", function()
            local c = assert(new(both()))
            local hub = c:hub("chat")
            for _ = 1, 5 do assert.equal(a.port, port_of(assert(hub:negotiate()).url)) end
            a:fault { mode = "status", status = 503, count = 1 }
            -- the primary goes offline (a 503 on a send)
            hub:broadcast("m", {}, { endpoints = { "eu" } })
            assert.is_false(c:endpoints()[1].online)
            assert.equal(b.port, port_of(assert(hub:negotiate()).url))
            b:fault { mode = "status", status = 503, count = 1 }
            hub:broadcast("m", {}, { endpoints = { "us" } })
            local ok, msg, d = hub:negotiate()
            assert.is_nil(ok)
            assert.equal("EOFFLINE", d.code)
            assert.matches("^signalr.negotiate: no endpoint is online %(eu: ", msg)
            c:close()
        end)

        it("spreads over the online primaries", function()
            local c = assert(new { { connection_string = a.cs, name = "p1" },
                                   { connection_string = b.cs, name = "p2" } })
            local hub = c:hub("chat")
            local seen = {}
            for _ = 1, 40 do seen[port_of(assert(hub:negotiate()).url)] = true end
            assert.is_true(seen[a.port] and seen[b.port])
            c:close()
        end)

        it("a router chooses, with the call's context", function()
            local got
            local c = assert(new(both(), { router = function(eps, ctx)
                got = { eps = eps, ctx = ctx }
                for _, e in ipairs(eps) do if e.name == ctx.context then return e end end
            end }))
            local hub = c:hub("chat")
            assert.equal(b.port, port_of(assert(hub:negotiate { user_id = "u", context = "us" }).url))
            assert.equal(2, #got.eps)
            assert.equal("chat", got.ctx.hub)
            assert.equal("u", got.ctx.user_id)
            local ok, msg, d = hub:negotiate { context = "mars" }
            assert.is_nil(ok)
            assert.equal("signalr.negotiate: the router chose no endpoint", msg)
            assert.equal("EINVAL", d.code)
            c:close()
        end)
    end)

    describe("async", function()
        it("one request object per call, finished once after every endpoint answered", function()
            local done = {}
            local c = assert(new(both(), { async = true,
                on_done = function(r) done[#done + 1] = r end }))
            local hub = c:hub("chat")
            b:fault { mode = "stall", ms = 300, count = 1 }
            local r1 = assert(hub:broadcast("m", { 1 }))
            local r2 = assert(hub:broadcast("m", { 2 }, { endpoints = { "eu" } }))
            assert.equal(2, c:pending())
            assert.is_number(c:pollfd())
            assert.is_true(c:flush(5))
            assert.equal(2, #done)
            assert.is_true(r1.done and r1.result)
            assert.is_true(r2.done and r2.result)
            -- r1 waited for the stalled endpoint: it finished last
            assert.equal(r2, done[1])
            b:fault { mode = "status", status = 500, count = 1 }
            local r3 = assert(hub:broadcast("m", { 3 }))
            assert.is_true(c:flush(5))
            assert.equal("EPARTIAL", r3.details.code)
            assert.is_true(r3.details.endpoints.eu)
            assert.matches("^signalr.broadcast: 1 of 2 endpoints took it", r3.error)
            assert.equal(3, #done)
            -- bad input: refused at once, nothing queued
            local r, _, d = hub:to_group("", "m", {})
            assert.is_nil(r)
            assert.equal("EINVAL", d.code)
            assert.equal(0, c:pending())
            -- negotiate with AccessKeys: signed here, the answer at once
            local n = assert(hub:negotiate { user_id = "u" })
            assert.truthy(n.url and n.accessToken)
            assert.equal(0, c:pending())
            c:close()
        end)
    end)

    describe("mixed auth", function()
        it("an AccessKey endpoint and a Microsoft Entra ID endpoint, one broadcast", function()
            local SECRET = "multi-endpoint-secret-8Hq2"
            local e = env.emulator("--disable-local-auth --entra-app multi-app:" .. SECRET)
            local c = assert(new {
                { connection_string = a.cs, name = "key" },
                { connection_string = "Endpoint=http://localhost;Port=" .. e.port
                    .. ";AuthType=azure.app;ClientId=multi-app;ClientSecret=" .. SECRET
                    .. ";TenantId=t1;Version=1.0;", authority_host = e.base .. "/", name = "entra" },
            })
            local hub = c:hub("chat")
            for _, ep in ipairs { "key", "entra" } do
                local n = assert(hub:negotiate { endpoints = { ep } })
                assert(pool:connect("mixed-" .. ep, n))
            end
            assert.is_true(hub:broadcast("newMessage", { "mixed-auth" }))
            for _, ep in ipairs { "key", "entra" } do
                env.wait(function() return pool:count("mixed-" .. ep, "mixed-auth") == 1 end, 5,
                    "the " .. ep .. " client to get the message")
            end
            -- the Entra ID endpoint's token is its own: the key endpoint
            -- never saw a bearer token from the identity platform
            assert.equal(1, e:stats().entra.token)
            for _, ep in ipairs { "key", "entra" } do pool:send { cmd = "stop", name = "mixed-" .. ep } end
            c:close()
            e:stop()
        end)
    end)

    describe("a plain client", function()
        it("is one endpoint named \"\"", function()
            local c = assert(signalr.new(a.cs))
            local eps = c:endpoints()
            assert.equal(1, #eps)
            assert.equal("", eps[1].name)
            assert.equal("primary", eps[1].type)
            local hub = c:hub("chat")
            assert.is_true(hub:broadcast("m", {}, { endpoints = eps }))
            local ok, msg, d = hub:broadcast("m", {}, { endpoints = { "eu" } })
            assert.is_nil(ok)
            assert.matches("unknown endpoint 'eu'", msg)
            assert.equal("EINVAL", d.code)
            c:close()
        end)
    end)
end)
