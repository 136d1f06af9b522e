-- Option on_log(level, message): retries (blocking and async), a fixed
-- retry mode's delays, Entra ID token fetches and refusals, a persistent
-- connection lost and reopened; and never a key, secret or token in a line.
local signalr = require "signalr"
local core = require "signalr.core"
local env = require "helpers.env"

local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
local SECRET = "on-log-client-secret-W4eR7tY1uI9o"

-- A logger that keeps (level, message) pairs.
local function recorder()
    local lines = {}
    return lines, function(level, msg) lines[#lines + 1] = { level, msg } end
end

local function matching(lines, pattern)
    local out = {}
    for _, l in ipairs(lines) do
        if l[2]:find(pattern) then out[#out + 1] = l end
    end
    return out
end

-- no key, secret or token in any line
local function clean(lines, extra)
    for _, l in ipairs(lines) do
        assert.is_string(l[1])
        assert.is_string(l[2])
        assert.falsy(l[2]:find(KEY:sub(1, 20), 1, true), "the key leaked: " .. l[2])
        assert.falsy(l[2]:find(SECRET:sub(1, 16), 1, true), "the secret leaked: " .. l[2])
        assert.falsy(l[2]:find("eyJ[%w_-]+%.eyJ"), "a token leaked: " .. l[2])
        for _, s in ipairs(extra or {}) do
            assert.falsy(l[2]:find(s, 1, true), "a secret leaked: " .. l[2])
        end
    end
end

describe("on_log", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)
    before_each(function()
        emu:http("DELETE", "/_emulator/faults")
        emu:clear()
    end)

    it("raises on a wrong type, and retry_mode on a wrong value", function()
        assert.has_error(function() signalr.new { connection_string = emu.cs, on_log = "x" } end,
            "signalr.new: option 'on_log' must be a function, got string")
        assert.has_error(function() signalr.new { connection_string = emu.cs, retry_mode = "linear" } end,
            "signalr.new: option 'retry_mode' must be \"exponential\" or \"fixed\"")
    end)

    it("logs each retry of a blocking call, as it is scheduled", function()
        local lines, log = recorder()
        local h = assert(signalr.new { connection_string = emu.cs, retries = 2, retry_delay = 0.05,
                                       on_log = log }):hub("chat")
        emu:fault { mode = "status", status = 503, count = 2 }
        assert.is_true(h:broadcast("t"))
        local r = matching(lines, "^broadcast: attempt")
        assert.equal(2, #r)
        assert.equal("warn", r[1][1])
        assert.matches("^broadcast: attempt 1 failed %(ESTATUS: HTTP 503[^)]*%); retrying in 50 ms$", r[1][2])
        assert.matches("^broadcast: attempt 2 failed %(ESTATUS: HTTP 503.*retrying in 100 ms$", r[2][2])
        clean(lines)
    end)

    it("logs retries in async mode, and an on_log that raises changes nothing", function()
        local lines, log = recorder()
        local c = assert(signalr.new { connection_string = emu.cs, async = true, retries = 1,
                                       retry_delay = 0.05,
                                       on_log = function(l, m) log(l, m) error("boom") end })
        emu:fault { mode = "status", status = 503, count = 1 }
        local r = assert(c:hub("chat"):broadcast("t"))
        assert.is_true(c:flush(5))
        assert.is_true(r.result, r.error)
        assert.equal(1, #matching(lines, "^broadcast: attempt 1 failed %(ESTATUS: HTTP 503.*retrying in 50 ms$"))
        c:close()
    end)

    it("retry_mode = \"fixed\": the same delay before every attempt (blocking and async)", function()
        for _, async in ipairs { false, true } do
            local lines, log = recorder()
            local c = assert(signalr.new { connection_string = emu.cs, async = async, retries = 3,
                                           retry_delay = 0.2, retry_mode = "fixed", on_log = log })
            emu:clear()
            emu:fault { mode = "status", status = 503, count = 3 }
            local t0 = core.monotonic()
            local r = assert(c:hub("chat"):broadcast("t"))
            if async then
                assert.is_true(c:flush(5))
                assert.is_true(r.result, r.error)
            end
            local took = core.monotonic() - t0
            local retries = matching(lines, "^broadcast: attempt")
            assert.equal(3, #retries)
            for i = 1, 3 do assert.matches("retrying in 200 ms$", retries[i][2]) end
            assert.equal(4, #emu:requests())
            -- 3 x 0.2 s; exponential would be 0.2 + 0.4 + 0.8
            assert.is_true(took >= 0.55 and took < 1.3, took)
            c:close()
        end
    end)

    it("the binding's retry rule (nginx's retries) takes the mode", function()
        -- core.retry_delay(op, attempt, failure, status, retry_after, retries, base, max[, mode])
        assert.equal(0.4, core.retry_delay("broadcast", 3, "ESTATUS", 503, -1, 3, 0.1, 10))
        assert.equal(0.1, core.retry_delay("broadcast", 3, "ESTATUS", 503, -1, 3, 0.1, 10, "fixed"))
        assert.is_nil(core.retry_delay("broadcast", 4, "ESTATUS", 503, -1, 3, 0.1, 10, "fixed"))
    end)

    it("exponential (the default) doubles; the delays say so", function()
        local lines, log = recorder()
        local h = assert(signalr.new { connection_string = emu.cs, retries = 3, retry_delay = 0.05,
                                       on_log = log }):hub("chat")
        emu:fault { mode = "status", status = 503, count = 3 }
        assert.is_true(h:broadcast("t"))
        local r = matching(lines, "^broadcast: attempt")
        assert.matches("retrying in 50 ms$", r[1][2])
        assert.matches("retrying in 100 ms$", r[2][2])
        assert.matches("retrying in 200 ms$", r[3][2])
    end)

    it("persistent mode: a lost server connection and its reopening", function()
        local lines, log = recorder()
        local e2 = env.emulator("--ping-interval 1")
        local c = assert(signalr.new { connection_string = e2.cs, mode = "persistent", on_log = log })
        local h = assert(c:hub("chat"))
        h:broadcast("t")
        assert(c:flush(10))
        env.wait(function() c:poll(0.05) return #matching(lines, "open$") >= 1 end, 10, "open")
        e2:kill()
        e2:restart()
        env.wait(function() c:poll(0.05) return #matching(lines, "open$") >= 2 end, 20, "reopened")
        local lost = matching(lines, "^server connection lost")
        assert.is_true(#lost >= 1)
        assert.equal("warn", lost[1][1])
        assert.matches("reconnecting in [%d.]+ s$", lost[1][2])
        assert.equal("info", matching(lines, "^server connection for hub chat open$")[1][1])
        clean(lines)
        c:close()
        e2:stop()
    end)
end)

describe("on_log with several endpoints", function()
    it("an endpoint going offline", function()
        local a, b = env.emulator(), env.emulator()
        local lines, log = recorder()
        local c = assert(signalr.new { endpoints = { { connection_string = a.cs, name = "eu" },
            { connection_string = b.cs, name = "us" } }, retries = 0, health_interval = 60,
            on_log = log })
        local h = c:hub("chat")
        assert.is_true(h:broadcast("t"))
        b:kill()
        assert.is_nil(h:broadcast("t"))
        local off = matching(lines, "^endpoint us is offline: ")
        assert.equal(1, #off)
        assert.equal("warn", off[1][1])
        clean(lines)
        c:close()
        a:stop()
    end)
end)

describe("on_log under Microsoft Entra ID", function()
    it("token fetches and refusals are logged; no secret or token ever is", function()
        local emu = env.emulator("--disable-local-auth --entra-app logapp:" .. SECRET)
        local lines, log = recorder()
        local c = assert(signalr.new {
            connection_string = "Endpoint=http://localhost;Port=" .. emu.port
                .. ";AuthType=azure.app;ClientId=logapp;ClientSecret=" .. SECRET
                .. ";TenantId=tenant1;Version=1.0;",
            authority_host = emu.base .. "/", retries = 1, retry_delay = 0.05, on_log = log })
        local h = c:hub("chat")
        assert.is_true(h:broadcast("t"))
        local fetched = matching(lines, "^Microsoft Entra ID token fetched")
        assert.equal(1, #fetched)
        assert.equal("info", fetched[1][1])
        -- the service refuses the token once: logged, and a new one comes
        emu:fault { mode = "status", status = 401, count = 1 }
        assert.is_true(h:broadcast("t"))
        assert.equal(1, #matching(lines, "refused the Microsoft Entra ID token"))
        assert.equal(2, #matching(lines, "^Microsoft Entra ID token fetched"))
        -- a failing token endpoint: retried and logged
        local n = assert(h:negotiate { user_id = "u" })
        assert.equal(1, #matching(lines, "negotiate signs with a new temporary access key$"))
        clean(lines, { n.accessToken })
        c:close()
        emu:stop()
    end)

    it("the logger redacts what looks like a secret", function()
        local lines, log = recorder()
        local logger = require("signalr.util").logger(log)
        logger("warn", "Endpoint=http://x;AccessKey=" .. KEY .. ";Version=1.0;")
        logger("warn", "Authorization: Bearer abc.def.ghi")
        logger("warn", "client_secret=" .. SECRET .. "&x=1")
        logger("warn", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")
        clean(lines, { "abc.def.ghi" })
        assert.equal("Endpoint=http://x;AccessKey=<redacted>;Version=1.0;", lines[1][2])
        assert.equal("Authorization: Bearer <redacted>", lines[2][2])
    end)
end)
