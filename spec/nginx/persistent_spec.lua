-- Persistent mode inside a real nginx: the worker's server connection
-- (cosockets, kept by a background timer) carries what handlers send to
-- real JS clients (JSON and MessagePack); acknowledged calls wait on a
-- semaphore; a send in the log phase works; the emulator dropping every
-- server connection is survived, each message delivered once or failed.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local signalr = require "signalr"
local cjson = require "cjson"
local sh = nginx.sh

local function get(n, path)
    return cjson.decode(sh("curl -s '" .. n.base .. path .. "'"))
end

describe("persistent mode inside nginx", function()
    local n, emu, pool, hub, ids = nil, nil, nil, nil, {}
    setup(function()
        local cs_file = os.tmpname()
        n = nginx.start_conf("persistent.conf", { PERSISTENT_CS_FILE = cs_file }, function(x)
            return sh("curl -s -o /dev/null -w '%{http_code}' " .. x.base .. "/ready") == "200"
        end)
        emu = env.emulator("--ping-interval 1")
        nginx.write_cs(cs_file, emu.cs)
        pool = env.clients(emu)
        hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
        for _, c in ipairs { { "json", "json" }, { "mp", "messagepack" } } do
            ids[c[1]] = assert(pool:connect(c[1], assert(hub:negotiate { user_id = "u-" .. c[1] }),
                nil, 4000, { protocol = c[2] }))
        end
    end)
    teardown(function()
        pool:quit()
        -- nginx first: a service gone first would have the worker's timer
        -- reconnect (and nginx log the refused connect) before it stops
        local ok, err = pcall(nginx.stop_clean, n)
        emu:stop()
        assert(ok, err)
    end)

    it("handlers' sends reach both protocols over one server connection, no REST", function()
        local r = get(n, "/send?user=u-json&tag=first&n=1")
        assert.equal(1, r.sent + r.queued)
        env.wait(function() return get(n, "/status").state == "open" end, 10, "the connection")
        r = get(n, "/send?user=u-json&tag=a&n=200")
        assert.equal(200, r.sent)
        r = get(n, "/send?user=u-mp&tag=b&n=50")
        assert.equal(50, r.sent)
        env.wait(function() return pool:count("json", "a") == 200 and pool:count("mp", "b") == 50 end,
            15, "250 messages")
        assert.equal(1, pool:count("json", "first"))
        local st = emu:stats()
        assert.equal(0, st.rest_requests)
        assert.equal(1, st.server_handshakes)
    end)

    it("sends in quick succession share WebSocket messages (a write rests 1 ms after a small one)",
            function()
        env.wait(function() return get(n, "/status").state == "open" end, 10, "the connection")
        local before = emu:stats().server_ws_messages
        local ms = get(n, "/spaced?user=u-json&tag=spaced&n=40").ms
        env.wait(function() return pool:count("json", "spaced") == 40 end, 10, "40 messages")
        local used = emu:stats().server_ws_messages - before
        -- a write per event cycle would take 40 messages; resting 1 ms
        -- (of nginx's cached clock, which moves in whole milliseconds)
        -- after each write, the writer makes at most one per tick of that
        -- clock, and one more for the first; a ping from the service in
        -- the window seals the batch early (a message more, in the same
        -- write), and our keep-alive may add one
        assert.is_true(used >= 1 and used <= math.ceil(ms) + 4,
            ("40 sends over %.1f ms took %d WebSocket messages"):format(ms, used))
        local args = {}
        for _, m in ipairs(pool:messages("json")) do
            if m.args[1] == "spaced" then args[#args + 1] = m.args[2] end
        end
        for i = 1, 40 do assert.equal(i, args[i]) end
    end)

    it("a client closed in a handler ends its server connection with a WebSocket close", function()
        local before = emu:stats().server_clean_closes
        local r = get(n, "/closeown?user=u-json&tag=closeown")
        assert.is_true(r.flushed, r.msg)
        env.wait(function() return pool:count("json", "closeown") == 1 end, 10, "the message")
        env.wait(function() return emu:stats().server_clean_closes == before + 1 end, 10,
            "the emulator to see a clean close")
    end)

    it("a write under way when the client closes: no message is both delivered and failed", function()
        local timers = get(n, "/timers")
        local r = get(n, "/stuck_open?user=u-json&tag=stuck")
        assert.is_true(r.flushed, r.msg)
        env.wait(function() return pool:count("json", "stuck") == 1 end, 10, "the first message")
        -- the service reads nothing for a while: 12 MB of messages fill
        -- the socket buffers, the writer blocks in a write, the close
        -- comes then (after its 1 s of grace)
        sh("kill -STOP " .. emu.pid)
        local ok, err = pcall(function()
            get(n, "/stuck_fill?user=u-json&tag=stuck&n=3000")
            get(n, "/stuck_close?tag=stuck")
        end)
        sh("kill -CONT " .. emu.pid)
        assert(ok, err)
        -- what was delivered and what failed, once both stop moving
        local last, same = nil, 0
        env.wait(function()
            env.sleep(0.2)
            local c = get(n, "/stuck_count?tag=stuck")
            local now = pool:count("json", "stuck") .. "/" .. c.failed
            same = (now == last) and same + 1 or 0
            last = now
            return same >= 4
        end, 30, "deliveries and failures to settle")
        local c = get(n, "/stuck_count?tag=stuck")
        local delivered = pool:count("json", "stuck")
        assert.is_true(c.failed > 0, "the close failed nothing: no write was under way")
        assert.is_true(delivered + c.failed <= c.total, ("%d delivered + %d failed > %d sent")
            :format(delivered, c.failed, c.total))
        -- and the closed connection's timer ended (its writer was blocked)
        env.wait(function() return get(n, "/timers") == timers end, 10, "the connection's timer to end")
    end)

    it("acknowledged calls wait for the service in a handler", function()
        local r = get(n, "/join?conn=" .. ids.mp .. "&group=g")
        assert.is_true(r.result)
        r = get(n, "/join?conn=nope&group=g")
        assert.equal("ESTATUS", r.code)
        assert.equal("true", sh("curl -s '" .. n.base .. "/group?group=g&tag=grp'"):match("%S+"))
        env.wait(function() return pool:count("mp", "grp") == 1 end, 10, "the group message")
        assert.equal(0, pool:count("json", "grp"))
        assert.is_true(get(n, "/exists?user=u-json").result)
        assert.is_false(get(n, "/exists?user=nobody").result)
    end)

    it("a send from the log phase goes; an acked call there answers EPHASE", function()
        sh("curl -s '" .. n.base .. "/logsend' > /dev/null")
        env.wait(function() return pool:count("json", "from-log") == 1 end, 10, "the log-phase message")
    end)

    it("every server connection dropped: the timer reconnects, each message once or failed", function()
        local dropped = emu:http("DELETE", "/_emulator/servers")
        assert.equal(200, dropped)
        local sent, failed = 0, 0
        for round = 1, 20 do
            local r = get(n, "/send?user=u-json&tag=drop-" .. round .. "&n=5")
            sent = sent + r.sent + r.queued
            failed = failed + #r.failed
            if round == 10 then env.sleep(0.5) end
        end
        -- each (round, i) at most once
        local function delivered()
            local seen, count = {}, 0
            for _, m in ipairs(pool:messages("json")) do
                if type(m.args[1]) == "string" and m.args[1]:match("^drop%-") then
                    local k = m.args[1] .. ":" .. tostring(m.args[2])
                    assert.is_nil(seen[k], "delivered twice: " .. k)
                    seen[k] = true
                    count = count + 1
                end
            end
            return count
        end
        env.wait(function() return get(n, "/status").state == "open" end, 15, "the reconnect")
        env.wait(function()
            local st = get(n, "/status")
            return st.queued == 0 and delivered() + failed + st.failed >= 100
        end, 20, "every message accounted for")
        -- nothing lost without an error: delivered, or failed at the call,
        -- or failed later (on_done)
        assert.equal(100, delivered() + failed + get(n, "/status").failed)
        assert.equal(100, sent + failed)
        assert.is_true(emu:stats().server_handshakes >= 2)
    end)

    it("a reload: the old worker's connection ends with a WebSocket close, the new one sends", function()
        env.wait(function() return get(n, "/status").state == "open" end, 15, "the connection")
        local closes = emu:stats().server_clean_closes
        sh("nginx -p " .. n.prefix .. " -c " .. n.prefix .. "/nginx.conf -s reload 2>&1")
        env.wait(function() return emu:stats().server_clean_closes > closes end, 15,
            "the old worker's clean close")
        env.wait(function()
            local r = get(n, "/send?user=u-json&tag=reloaded&n=1")
            return r.sent + r.queued == 1
        end, 10, "a send from the new worker")
        env.wait(function() return pool:count("json", "reloaded") >= 1 end, 15, "the new worker's message")
    end)
end)
