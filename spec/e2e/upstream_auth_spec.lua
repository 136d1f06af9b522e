-- Upstream bearer tokens in a plain Lua server (no nginx): the emulator,
-- its upstream template asking for auth=ManagedIdentity, POSTs each event
-- of a real JS client with its managed identity's RS256 token to
-- spec/e2e/apps/upstream_app.lua, whose signalr.upstream.dispatch checks
-- it against the JWKS the emulator serves; forged tokens are refused.
local env = require "helpers.env"
local rs = require "helpers.rs256"
local signalr = require "signalr"
local cjson = require "cjson"

local AUD = "api://plain-lua-upstream"

local function sh(cmd)
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    return out
end

describe("upstream bearer tokens in a plain Lua server", function()
    local dir, app_pid, port, emu, pool, hub
    local function lines()
        return env.read(dir .. "/log") or ""
    end
    setup(function()
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir))
        -- the app's port first (the emulator's template names it), then
        -- the emulator, then the app's settings (the emulator's JWKS)
        assert(os.execute(string.format("%s LUA_PATH='%s' LUA_CPATH='%s' lua5.4 %s/spec/e2e/apps/upstream_app.lua"
            .. " %s/auth %s/log > %s/out 2> %s/err & echo $! > %s/pid", env.CLEAN, os.getenv("LUA_PATH"),
            os.getenv("LUA_CPATH"), env.root, dir, dir, dir, dir, dir)))
        port = env.wait(function() return (env.read(dir .. "/out") or ""):match("port (%d+)") end, 10,
            "the app to listen (" .. (env.read(dir .. "/err") or "") .. ")")
        app_pid = env.read(dir .. "/pid"):match("%d+")
        emu = env.emulator("--upstream 'http://127.0.0.1:" .. port
            .. "/{event};hub=chat;auth=ManagedIdentity;resource=" .. AUD .. "'")
        local f = assert(io.open(dir .. "/auth", "wb"))
        f:write(cjson.encode { audience = AUD, issuer = "http://localhost:" .. emu.port .. "/managed/v2.0",
                               jwks = sh("curl -s " .. emu.base .. "/managed/discovery/v2.0/keys") })
        f:close()
        pool = env.clients(emu)
        hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
    end)
    teardown(function()
        if pool then pool:quit() end
        if emu then emu:stop() end
        if app_pid then os.execute("kill " .. app_pid .. " 2>/dev/null") end
        env.keep_log(dir .. "/log", "upstream-app") -- for the secrets scan
        os.execute("rm -rf " .. dir)
    end)

    it("a client's events arrive with the service's token; an invocation gets its value", function()
        local id = assert(pool:connect("p1", assert(hub:negotiate { user_id = "plain" }), { "newMessage" }, nil,
            { protocol = "json" }))
        env.wait(function() return lines():find("connected " .. id, 1, true) end, 10, "connected")
        assert.truthy(lines():find("connected " .. id .. " signalr-service-identity", 1, true), lines())
        pool:send { cmd = "call", name = "p1", id = "pe", target = "echo", args = { { a = 1 } } }
        local r = env.wait(function()
            for _, e in ipairs(pool:filter("result")) do if e.id == "pe" then return e end end
        end, 10, "the echo")
        assert.same({ a = 1 }, r.result)
        assert.is_nil(lines():find("refused", 1, true), lines())
    end)

    it("a forged or missing token: 401 with WWW-Authenticate, no handler runs", function()
        local k = rs.key()
        local forged = rs.sign(k, { iss = "http://localhost:" .. emu.port .. "/managed/v2.0", aud = AUD,
                                    exp = os.time() + 600 })
        rs.cleanup(k)
        local base = "curl -s -D - -o /dev/null -X POST -H 'Content-Type: application/json'"
            .. " -H 'X-ASRS-Connection-Id: c1' -H 'X-ASRS-Hub: chat' -H 'X-ASRS-Category: messages'"
            .. " -H 'X-ASRS-Event: echo' --data '{\"type\":1,\"invocationId\":\"1\",\"target\":\"echo\","
            .. "\"arguments\":[1]}' "
        for _, auth in ipairs { "", "-H 'Authorization: Bearer " .. forged .. "' " } do
            local head = sh(base .. auth .. "http://127.0.0.1:" .. port .. "/echo")
            assert.truthy(head:find("^HTTP/1.1 401"), head)
            assert.truthy(head:lower():find('www-authenticate: bearer error="invalid_token"', 1, true), head)
        end
        local log = lines()
        assert.truthy(log:find("refused 401 signalr.upstream: no Authorization header", 1, true), log)
        assert.truthy(log:find("bearer token refused: the signature does not verify", 1, true), log)
        assert.is_nil(log:find(forged:match("[^.]+$"), 1, true))
        local _, echoes = log:gsub("\necho ", "")
        assert.equal(1, echoes)
    end)
end)
