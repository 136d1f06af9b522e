-- The emulator's own checks, through raw HTTP (curl): authentication like
-- the service (signature, exp, aud), limits, names, negotiate and the
-- WebSocket endpoint's refusals, CORS, health, admin hooks.
local core = require "signalr.core"
local cjson = require "cjson"
local env = require "helpers.env"

local function token(claims, key)
    return assert(core.jwt_sign(cjson.encode(claims), key or env.KEY))
end

describe("signalr-emulator", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)

    local PATH = "/api/hubs/chat/:send"
    local BODY = '{"target":"t","arguments":[]}'
    local function post(tok, path, body, extra)
        local h = { ["Content-Type"] = "application/json" }
        if tok then h.Authorization = "Bearer " .. tok end
        for k, v in pairs(extra or {}) do h[k] = v end
        return emu:http("POST", (path or PATH) .. "?api-version=2022-06-01", body or BODY, h)
    end
    local function good(path)
        return token { aud = "http://localhost" .. (path or PATH), exp = os.time() + 60 }
    end

    describe("REST authentication", function()
        it("accepts a good token (aud with or without port, with a query)", function()
            assert.equal(202, (post(good())))
            assert.equal(202, (post(token { aud = "http://localhost:" .. emu.port .. PATH, exp = os.time() + 60 })))
            assert.equal(202, (post(token { aud = "http://localhost" .. PATH .. "?api-version=2022-06-01",
                                             exp = os.time() + 60 })))
        end)
        for _, c in ipairs {
            { "no token", nil, "no bearer token" },
            { "a wrong key", token({ aud = "http://localhost" .. PATH, exp = os.time() + 60 }, "other"),
              "signature does not match the access key" },
            { "an expired token", token { aud = "http://localhost" .. PATH, exp = os.time() - 1 },
              "token has expired" },
            { "no exp", token { aud = "http://localhost" .. PATH }, "claim 'exp' is missing" },
            { "no aud", token { exp = os.time() + 60 }, "claim 'aud' is missing" },
            { "aud for another path", token { aud = "http://localhost/api/hubs/chat/users/u/:send",
                                               exp = os.time() + 60 }, "the audience is invalid: it names" },
            { "aud for another host", token { aud = "http://evil.example" .. PATH, exp = os.time() + 60 },
              "host 'evil.example' is not this service" },
        } do
            it("refuses " .. c[1] .. " with 401 saying why", function()
                local status, body = post(c[2])
                assert.equal(401, status)
                local e = cjson.decode(body)
                assert.equal("Error.Unauthorized", e.code)
                assert.truthy(e.message:find(c[3], 1, true), e.message)
            end)
        end
    end)

    describe("limits and names", function()
        it("413 for a body over the limit", function()
            local big = '{"target":"t","arguments":["' .. string.rep("a", 1024 * 1024) .. '"]}'
            local status, body = post(good(), nil, big)
            assert.equal(413, status)
            assert.equal("Error.Payload.TooLarge", cjson.decode(body).code)
        end)
        it("431 for headers over 16 KB", function()
            local status = post(good(), nil, nil, { ["X-Big"] = string.rep("h", 17000) })
            assert.truthy(status == 431 or status == 400, tostring(status))
        end)
        for _, c in ipairs {
            { "an invalid hub name", "/api/hubs/chat-room/:send", "Error.Hub.Invalid" },
            { "a blank group", "/api/hubs/chat/groups/%20%20/:send", "Error.Group.Invalid" },
            { "a group over 1024 bytes", "/api/hubs/chat/groups/" .. string.rep("g", 1025) .. "/:send",
              "Error.Group.Invalid" },
        } do
            it("400 for " .. c[1], function()
                local status, body = post(good(c[2]), c[2])
                assert.equal(400, status)
                assert.equal(c[3], cjson.decode(body).code)
            end)
        end
        it("400 for a message without target, or with arguments not an array", function()
            assert.equal(400, (post(good(), nil, '{"arguments":[]}')))
            assert.equal(400, (post(good(), nil, '{"target":"t","arguments":{}}')))
            assert.equal(400, (post(good(), nil, '{"target":"t","extra":1}')))
            assert.equal(202, (post(good(), nil, '{"Target":"t","Arguments":[1]}')))
        end)
        it("400 without api-version outside /api/v1", function()
            local status, body = emu:http("POST", PATH, BODY, { Authorization = "Bearer " .. good() })
            assert.equal(400, status)
            assert.equal("Error.ApiVersion.Invalid", cjson.decode(body).code)
        end)
        it("404 for an unknown route, 405 for a wrong method", function()
            local p = "/api/hubs/chat/nothing"
            assert.equal(404, (emu:http("POST", p .. "?api-version=2022-06-01", BODY,
                { Authorization = "Bearer " .. good(p) })))
            p = "/api/hubs/chat/users/u/groups"
            assert.equal(405, (emu:http("PUT", p .. "?api-version=2022-06-01", nil,
                { Authorization = "Bearer " .. good(p) })))
        end)
        it("answers health without a token", function()
            assert.equal(200, (emu:http("HEAD", "/api/health?api-version=2022-06-01")))
            assert.equal(200, (emu:http("HEAD", "/api/v1/health")))
            -- both swagger files define HEAD only
            assert.equal(405, (emu:http("GET", "/api/v1/health")))
        end)
        it("checks api-version as the service does", function()
            local p = "/api/hubs/chat/:send"
            local auth = { Authorization = "Bearer " .. good(p) }
            local st, body = emu:http("POST", p, BODY, auth)
            assert.equal(400, st)
            assert.truthy(body:find("api-version is missing", 1, true), body)
            st, body = emu:http("POST", p .. "?api-version=2021-01-01", BODY, auth)
            assert.equal(400, st)
            assert.truthy(body:find("'2021-01-01' is not supported", 1, true), body)
            assert.equal(202, (emu:http("POST", p .. "?api-version=2024-12-01", BODY, auth)))
            -- a route newer than the request's api-version does not exist
            p = "/api/hubs/chat/:generateToken"
            st, body = emu:http("POST", p .. "?api-version=2022-06-01", nil,
                { Authorization = "Bearer " .. good(p) })
            assert.equal(404, st)
            assert.truthy(body:find("needs 2022-11-01", 1, true), body)
        end)
        it("accepts a send to an unknown connection (202: the swagger has no 404)", function()
            local p = "/api/hubs/chat/connections/nobody/:send"
            assert.equal(202, (emu:http("POST", p .. "?api-version=2022-06-01", BODY,
                { Authorization = "Bearer " .. good(p) })))
        end)
    end)

    describe("clients", function()
        local function negotiate(hub, claims)
            claims = claims or {}
            claims.aud = claims.aud or ("http://localhost/client/?hub=" .. hub)
            claims.exp = claims.exp or os.time() + 60
            return emu:http("POST", "/client/negotiate?hub=" .. hub .. "&negotiateVersion=1", "",
                { Authorization = "Bearer " .. token(claims) })
        end
        it("negotiate offers every transport of the official client, with a connection token", function()
            local status, body = negotiate("chat", { nameid = "u1" })
            assert.equal(200, status)
            local n = cjson.decode(body)
            assert.equal(1, n.negotiateVersion)
            assert.truthy(n.connectionId and n.connectionToken)
            assert.same({
                { transport = "WebSockets", transferFormats = { "Text", "Binary" } },
                { transport = "ServerSentEvents", transferFormats = { "Text" } },
                { transport = "LongPolling", transferFormats = { "Text", "Binary" } },
            }, n.availableTransports)
        end)
        it("negotiate checks the client audience", function()
            assert.equal(401, (negotiate("chat", { aud = "http://localhost/client/?hub=other" })))
            assert.equal(401, (negotiate("chat", { exp = os.time() - 5 })))
            assert.equal(200, (negotiate("Chat", { aud = "http://localhost/client/?hub=chat" })))
        end)
        it("the socket: 404 for an unknown id, 409 for a second socket", function()
            local _, body = negotiate("chat")
            local n = cjson.decode(body)
            local tok = token { aud = "http://localhost/client/?hub=chat", exp = os.time() + 60 }
            local ws = "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13'"
                .. " -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='"
            local function open(id, background)
                local cmd = env.CLEAN .. "curl -s -o /dev/null -w '%{http_code}' --max-time 3 " .. ws
                    .. " '" .. emu.base .. "/client/?hub=chat&id=" .. id .. "&access_token=" .. tok .. "'"
                if background then return os.execute(cmd .. " > /dev/null 2>&1 &") end
                local p = io.popen(cmd)
                local s = p:read("*a")
                p:close()
                return tonumber(s)
            end
            assert.equal(404, open("nope"))
            open(n.connectionToken, true)
            env.sleep(0.5)
            assert.equal(409, open(n.connectionToken))
        end)
        it("CORS: preflight answered, origin echoed with credentials", function()
            local p = io.popen(env.CLEAN .. "curl -s -i -X OPTIONS -H 'Origin: http://app.example' "
                .. "-H 'Access-Control-Request-Headers: authorization' '"
                .. emu.base .. "/client/negotiate?hub=chat'")
            local head = p:read("*a"):lower()
            p:close()
            assert.truthy(head:find("access-control-allow-origin: http://app.example", 1, true))
            assert.truthy(head:find("access-control-allow-credentials: true", 1, true))
            assert.truthy(head:find("access-control-allow-headers: authorization", 1, true))
        end)
    end)

    describe("admin hooks", function()
        it("injects faults for the next N requests only", function()
            emu:fault { mode = "status", status = 503, count = 2, retry_after = 3 }
            assert.equal(503, (post(good())))
            assert.equal(503, (post(good())))
            assert.equal(202, (post(good())))
        end)
        it("refuses a malformed fault", function()
            assert.equal(400, (emu:http("POST", "/_emulator/faults", '{"mode":"explode"}')))
        end)
    end)
end)
