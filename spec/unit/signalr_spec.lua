-- The public API's shapes: options, programmer errors that raise,
-- negotiate tokens, redaction of secrets.  No network.
local signalr = require "signalr"
local core = require "signalr.core"
local cjson = require "cjson"
local env = require "helpers.env"

local CS = "Endpoint=https://demo.service.signalr.net;AccessKey=" .. env.KEY .. ";Version=1.0;"

describe("signalr", function()
    describe("new()", function()
        it("takes a connection string or an options table", function()
            assert.truthy(signalr.new(CS))
            assert.truthy(signalr.new { connection_string = CS, api_version = "v1", timeout = 2,
                retries = 0, verify_tls = true, user_agent = "game/1", application = "app" })
        end)
        it("reports what it parsed, never the key", function()
            local info = signalr.new(CS):info()
            assert.equal("https://demo.service.signalr.net", info.endpoint)
            assert.equal("https://demo.service.signalr.net", info.audience_base)
            assert.is_true(info.has_key)
            for _, v in pairs(info) do assert.falsy(tostring(v):find(env.KEY, 1, true)) end
            assert.equal("signalr.client (https://demo.service.signalr.net)", tostring(signalr.new(CS)))
        end)
        for _, c in ipairs {
            { "a number", 5, "expected a connection string or an options table, got number" },
            { "an unknown option", { connection_string = CS, tiemout = 1 }, "unknown option 'tiemout'" },
            { "a wrongly typed option", { connection_string = CS, timeout = "1" },
              "option 'timeout' must be a number, got string" },
            { "a missing connection string", { timeout = 1 }, "option 'connection_string' is required" },
            { "a negative timeout", { connection_string = CS, timeout = -1 },
              "option 'timeout' must be a positive number" },
            { "fractional retries", { connection_string = CS, retries = 1.5 },
              "option 'retries' must be an integer from 0 to 100" },
            { "a fractional token lifetime", { connection_string = CS, token_lifetime = 0.5 },
              "option 'token_lifetime' must be a whole number of seconds" },
        } do
            it("raises on " .. c[1], function()
                assert.has_error(function() signalr.new(c[2]) end, "signalr.new: " .. c[3])
            end)
        end
        it("refuses a ca_file with a NUL byte (it would be cut short)", function()
            local c, msg, details = signalr.new { connection_string = CS, ca_file = "/etc/ssl\0/x" }
            assert.is_nil(c)
            assert.equal("EINVAL", details.code)
            assert.truthy(msg:find("ca_file contains a NUL byte", 1, true), msg)
        end)
        it("accepts Entra ID with a token provider; negotiate then fetches a temporary key", function()
            local client = assert(signalr.new { connection_string = "Endpoint=http://127.0.0.1:1;AuthType=azure",
                token_provider = function() return "t" end, retries = 0 })
            assert.is_false(client:info().has_key)
            local ok, msg, details = client:hub("h"):negotiate()
            assert.is_nil(ok)
            assert.equal("ECONNECT", details.code)
            assert.is_false(details.sent)
            assert.truthy(msg:find("^signalr.negotiate: could not connect"), msg)
        end)
        it("a token provider that gives no token: the call fails at once, also in async mode", function()
            for _, async in ipairs { false, true } do
                local c = assert(signalr.new { connection_string = "Endpoint=http://127.0.0.1:1;AuthType=azure",
                    async = async, token_provider = function() return nil, "no credentials here" end })
                local r, msg, d = c:hub("h"):broadcast("t")
                assert.is_nil(r)
                assert.equal("EINVAL", d.code)
                assert.equal("signalr.broadcast: the token provider gave no token: no credentials here", msg)
                if async then assert.equal(0, c:pending()) end
            end
        end)
        it("a token provider's token is cached when it says when it expires", function()
            local calls, exp = 0, nil
            local c = assert(signalr.new { connection_string = "Endpoint=http://127.0.0.1:1;AuthType=azure",
                retries = 0, token_provider = function() calls = calls + 1 return "t" .. calls, exp end })
            local hub = c:hub("h")
            hub:broadcast("x")
            hub:broadcast("x")
            assert.equal(2, calls) -- no expiry: asked every time, as before
            exp = os.time() + 3600
            hub:broadcast("x")
            hub:broadcast("x")
            hub:broadcast("x")
            assert.equal(3, calls)
        end)
        it("certificate credentials: an unreadable file fails the call, naming its setting (not the file),"
            .. " before any I/O", function()
            local c = assert(signalr.new { connection_string = "Endpoint=http://127.0.0.1:1;AuthType=azure.app;"
                .. "ClientId=a;TenantId=t;ClientCertPath=/nonexistent/app.pem",
                authority_host = "http://127.0.0.1:1/" })
            local ok, msg, d = c:hub("h"):broadcast("x")
            assert.is_nil(ok)
            assert.equal("EAUTH", d.code)
            assert.is_false(d.sent)
            assert.equal("signalr.broadcast: Microsoft Entra ID token request (authority http://127.0.0.1:1/,"
                .. " tenant t, client id a): cannot read the certificate file named by ClientCertPath", msg)
        end)
        it("refuses shared_dict outside nginx", function()
            assert.has_error(function()
                signalr.new { connection_string = "Endpoint=https://x;AuthType=azure.msi", shared_dict = "t" }
            end, "signalr.new: option 'shared_dict' names an nginx lua_shared_dict: it is only for"
                .. " clients inside nginx")
        end)
    end)

    it("the README names the User-Agent the library sends", function()
        local readme = assert(env.read(env.root .. "/README.md"))
        local row = assert(readme:match("\n| `user_agent` |([^\n]*)"), "no user_agent row")
        for v in row:gmatch("lua%-signalr/(%d+%.%d+%.%d+)") do
            assert.equal(signalr._VERSION, v, "the README's user_agent row")
        end
        assert.truthy(row:find("lua-signalr/" .. signalr._VERSION, 1, true), row)
    end)

    describe("hub methods", function()
        local hub = signalr.new(CS):hub("Chat")
        for _, c in ipairs {
            { "broadcast target", function() hub:broadcast(5) end,
              "signalr.broadcast: target must be a string, got number" },
            { "broadcast args", function() hub:broadcast("t", "x") end,
              "signalr.broadcast: args must be a table (a sequence of arguments) or nil, got string" },
            { "args with string keys", function() hub:broadcast("t", { a = 1 }) end,
              "signalr.broadcast: args must be a sequence (keys 1..n); found key a"
              .. " (use signalr.null for a JSON null)" },
            { "args with holes", function() hub:broadcast("t", { 1, nil, 3 }) end, nil },
            { "exclude type", function() hub:broadcast("t", {}, { exclude = "c1" }) end,
              "signalr.broadcast: opts.exclude must be a list of connection ids" },
            { "unknown opts", function() hub:broadcast("t", {}, { excluded = {} }) end,
              "signalr.broadcast: unknown option 'excluded'" },
            { "to_user id", function() hub:to_user(42, "t") end,
              "signalr.to_user: user_id must be a string, got number" },
            { "to_group group", function() hub:to_group(nil, "t") end,
              "signalr.to_group: group must be a string, got nil" },
            { "exists id", function() hub:user_exists({}) end,
              "signalr.user_exists: user_id must be a string, got table" },
            { "user_in_group group", function() hub:user_in_group("u", 1) end,
              "signalr.user_in_group: group must be a string, got number" },
            { "ttl type", function() hub:add_user_to_group("u", "g", { ttl = "5" }) end,
              "signalr.add_user_to_group: opts.ttl must be a number" },
            { "reason type", function() hub:close_connection("c", 5) end,
              "signalr.close_connection: reason must be a string, got number" },
            { "dot call", function() hub.broadcast("t") end,
              "signalr.broadcast: call it as hub:broadcast(...)" },
            { "negotiate opts", function() hub:negotiate { lifetime = "1h" } end,
              "signalr.negotiate: opts.lifetime must be a number" },
            { "negotiate unknown", function() hub:negotiate { userId = "u" } end,
              "signalr.negotiate: unknown option 'userId'" },
            { "send action type", function() hub:send("x") end,
              "signalr.send: action must be a table, got string" },
            { "send unknown key", function() hub:send { target = "t", user = "u" } end,
              "signalr.send: unknown action key 'user'" },
            { "send wrong type", function() hub:send { target = "t", userId = 5 } end,
              "signalr.send: action.userId must be a string, got number" },
            { "send without shape", function() hub:send { userId = "u" } end,
              "signalr.send: action needs 'target' (a message) or 'action' (a group action)" },
            { "hub name type", function() signalr.new(CS):hub(5) end,
              "signalr.hub: hub name must be a string, got number" },
        } do
            it("raises on a wrong " .. c[1], function()
                if c[3] then assert.has_error(c[2], c[3]) else assert.has_error(c[2]) end
            end)
        end
    end)

    describe("negotiate()", function()
        it("returns the url and a client token for the user", function()
            local t0 = os.time()
            local n = assert(signalr.new(CS):hub("Chat"):negotiate {
                user_id = "alice", claims = { role = "admin", tags = { "a", "b" } }, lifetime = 600 })
            assert.equal("https://demo.service.signalr.net/client/?hub=chat", n.url)
            local payload = assert(core.jwt_verify(n.accessToken, env.KEY))
            local claims = cjson.decode(payload)
            assert.equal("https://demo.service.signalr.net/client/?hub=chat", claims.aud)
            assert.equal("alice", claims.nameid)
            assert.equal("alice", claims["asrs.s.uid"])
            assert.equal("admin", claims.role)
            assert.same({ "a", "b" }, claims.tags)
            assert.is_true(claims.exp >= t0 + 600 and claims.exp <= os.time() + 600)
        end)
        it("uses ClientEndpoint for the url, Endpoint for the audience", function()
            local n = assert(signalr.new(CS .. "ClientEndpoint=https://proxy.example:8443")
                :hub("Chat"):negotiate())
            assert.equal("https://proxy.example:8443/client/?hub=chat", n.url)
            local payload = assert(core.jwt_verify(n.accessToken, env.KEY))
            local claims = cjson.decode(payload)
            assert.equal("https://demo.service.signalr.net/client/?hub=chat", claims.aud)
            assert.is_nil(claims.nameid)
            assert.is_true(claims.exp - claims.iat == 3600)
        end)
        it("prefixes the hub with the application name", function()
            local n = assert(signalr.new { connection_string = CS, application = "Game" }
                :hub("Chat"):negotiate())
            assert.equal("https://demo.service.signalr.net/client/?hub=game_chat", n.url)
        end)
        it("refuses a token over 4096 characters", function()
            local ok, msg, details = signalr.new(CS):hub("c"):negotiate { claims = { big = string.rep("x", 4000) } }
            assert.is_nil(ok)
            assert.equal("ETOOBIG", details.code)
            assert.truthy(msg:find("4096", 1, true))
        end)
    end)

    it("exposes signalr.null for JSON nulls", function()
        assert.equal(cjson.null, signalr.null)
    end)
end)
