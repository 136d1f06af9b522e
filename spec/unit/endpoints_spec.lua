-- signalr.endpoints without a service: a transport of transports.  Its
-- options, negotiate's choice (a local signature with AccessKeys, so the
-- chosen endpoint shows in the url), the answer it makes of every
-- endpoint's result, and what it does when endpoints cannot be reached
-- (a refused port: nothing waits).  The e2e spec runs it against
-- emulators.
local signalr = require "signalr"
local endpoints = require "signalr.endpoints"

local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
local function cs(host) return "Endpoint=http://" .. host .. ";Port=1;AccessKey=" .. KEY .. ";Version=1.0;" end

local function two(extra)
    local o = { endpoints = { { connection_string = cs("127.0.0.1"), name = "eu" },
                              { connection_string = cs("127.0.0.2"), name = "us", type = "secondary" } },
                retries = 0, health_interval = 600 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(signalr.new(o))
end

describe("signalr.endpoints", function()
    describe("new()", function()
        it("names each endpoint, its type, and its URLs", function()
            local c = two()
            local eps = c:endpoints()
            assert.same({ "eu", "us" }, { eps[1].name, eps[2].name })
            assert.same({ "primary", "secondary" }, { eps[1].type, eps[2].type })
            assert.equal("http://127.0.0.1:1", eps[1].endpoint)
            assert.is_true(eps[1].online)
            assert.equal("signalr.client (2 endpoints: eu, us)", tostring(c))
            assert.equal(2, #c:info().endpoints)
            c:close()
        end)

        it("checks an entry's own options as signalr.new does", function()
            assert.has_error(function()
                signalr.new { endpoints = { { connection_string = cs("a"), timeout = "5" } } }
            end, "signalr.new: option 'timeout' must be a number, got string")
            assert.has_error(function()
                signalr.new { endpoints = { { connection_string = cs("a"), on_done = print } } }
            end, "signalr.new: endpoints[1]: option 'on_done' is for the whole client, not one endpoint")
        end)

        it("a bad connection string: nil, message naming the entry, details", function()
            local c, msg, d = signalr.new { endpoints = { cs("a"), "Endpoint=nope" } }
            assert.is_nil(c)
            assert.matches("^signalr%.new: endpoints%[2%]: ", msg)
            assert.equal("ECONNSTR", d.code)
        end)
    end)

    describe("negotiate", function()
        it("the router chooses among the endpoints a call names", function()
            local seen
            local c = two { router = function(eps, ctx)
                seen = ctx
                return eps[#eps]
            end }
            local n = assert(c:hub("chat"):negotiate { user_id = "u", context = { region = "us" } })
            assert.equal("http://127.0.0.2:1/client/?hub=chat", n.url)
            assert.same({ hub = "chat", user_id = "u", context = { region = "us" } }, seen)
            n = assert(c:hub("chat"):negotiate { endpoints = { "eu" } })
            assert.equal("http://127.0.0.1:1/client/?hub=chat", n.url)
        end)

        it("without a router: an online primary", function()
            local n = assert(two():hub("chat"):negotiate())
            assert.equal("http://127.0.0.1:1/client/?hub=chat", n.url)
        end)

        it("a router's choice it was not offered is EINVAL", function()
            local c = two { router = function() return "mars" end }
            local ok, msg, d = c:hub("chat"):negotiate()
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.equal("signalr.negotiate: the router chose 'mars', not one it was offered", msg)
        end)

        it("an unknown name is EINVAL, naming the known ones", function()
            local ok, msg = two():hub("chat"):negotiate { endpoints = { "ap" } }
            assert.is_nil(ok)
            assert.equal("signalr.negotiate: unknown endpoint 'ap' (known: eu, us)", msg)
        end)
    end)

    describe("unreachable endpoints", function()
        it("a send no endpoint took: EPARTIAL naming each; then both are offline: EOFFLINE, nothing sent", function()
            local c = two()
            local h = c:hub("chat")
            local ok, msg, d = h:broadcast("m")
            assert.is_nil(ok)
            assert.equal("EPARTIAL", d.code)
            assert.equal(0, d.delivered)
            assert.equal("ECONNECT", d.endpoints.eu.code)
            assert.matches("^signalr%.broadcast: 0 of 2 endpoints took it; eu: could not connect", msg)
            for _, e in ipairs(c:endpoints()) do assert.is_false(e.online) end
            ok, msg, d = h:broadcast("m")
            assert.is_nil(ok)
            assert.equal("EOFFLINE", d.code)
            assert.is_false(d.sent)
            assert.matches("^signalr%.broadcast: no endpoint is online, nothing was sent %(eu: ", msg)
            -- a call that names an endpoint goes there, online or not
            ok, msg, d = h:broadcast("m", {}, { endpoints = { "us" } })
            assert.is_nil(ok)
            assert.matches("^signalr%.broadcast: could not connect", msg)
            assert.equal("ECONNECT", d.code)
            assert.equal("ECONNECT", d.endpoints.us.code)
        end)

        it("bad input fails once, before anything is sent", function()
            local c = two()
            local ok, msg, d = c:hub("chat"):to_group("", "m")
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.equal("signalr.to_group: group name is empty", msg)
            for _, e in ipairs(c:endpoints()) do assert.is_true(e.online) end
        end)

        it("after close, calls answer ECANCELED", function()
            local c = two()
            c:close()
            local ok, msg, d = c:hub("chat"):broadcast("m")
            assert.is_nil(ok)
            assert.equal("ECANCELED", d.code)
            assert.equal("signalr.broadcast: the client is closed (nothing was sent)", msg)
        end)
    end)

    describe("combine()", function()
        local eu, us = { name = "eu" }, { name = "us" }
        it("a send: true when every endpoint took it", function()
            assert.is_true(endpoints.combine("broadcast", "broadcast", { eu, us }, {}, { { true }, { true } }))
        end)
        it("a check: true if any says so, false if every one that answered says no", function()
            assert.is_true(endpoints.combine("user_exists", "user_exists", { eu, us }, {},
                { { false }, { true } }))
            assert.is_false(endpoints.combine("user_exists", "user_exists", { eu, us }, {},
                { { false }, { nil, "signalr.user_exists: HTTP 503", { code = "ESTATUS", status = 503 } } }))
        end)
        it("an endpoint skipped as offline did not take it", function()
            local ok, msg, d = endpoints.combine("to_user", "to_user", { eu },
                { { name = "us", last_error = "down" } }, { { true } })
            assert.is_nil(ok)
            assert.equal("signalr.to_user: 1 of 2 endpoints took it; us: offline, not sent (down)", msg)
            assert.same({ code = "EOFFLINE", sent = false, message = "down" }, d.endpoints.us)
            assert.same({ 1, 1 }, { d.delivered, d.failed })
        end)
        it("a failure that is the same everywhere comes as it is", function()
            local ok, msg, d = endpoints.combine("broadcast", "broadcast", { eu, us }, {},
                { { nil, "signalr.broadcast: x", { code = "EPHASE" } },
                  { nil, "signalr.broadcast: x", { code = "EPHASE" } } })
            assert.is_nil(ok)
            assert.equal("signalr.broadcast: x", msg)
            assert.equal("EPHASE", d.code)
        end)
    end)
end)
