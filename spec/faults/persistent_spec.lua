-- Persistent mode under faults, outside nginx: the emulator killed and
-- started again mid-run, every server connection dropped, handshakes
-- refused, the service gone silent (no pings, no acks).  Each case sends
-- tagged messages to a real JS client and counts what was sent, delivered,
-- errored (at the call, or later through on_done) and duplicated; nothing
-- may be lost without an error, nothing may arrive twice.
local signalr = require "signalr"
local env = require "helpers.env"

local function ledger(pool)
    local L = { total = 0, now_err = 0, later_err = 0, later_ok = 0, codes = {} }
    -- every message delivered to `name` with a tag of this run, each once
    function L.delivered(name, prefix)
        local seen, n = {}, 0
        for _, m in ipairs(pool:messages(name)) do
            local tag = m.args[1]
            if type(tag) == "string" and tag:sub(1, #prefix) == prefix then
                assert.is_nil(seen[tag], "delivered twice: " .. tag)
                seen[tag] = true
                n = n + 1
            end
        end
        return n
    end
    function L.on_done(req)
        if req.error then
            L.later_err = L.later_err + 1
            L.codes[req.details.code] = (L.codes[req.details.code] or 0) + 1
        else
            L.later_ok = L.later_ok + 1
        end
    end
    return L
end

describe("persistent mode under faults", function()
    local emu, pool = nil, nil
    local function connect_client(name, user)
        local h = assert(assert(signalr.new(emu.cs)):hub("chat"))
        assert(pool:connect(name, assert(h:negotiate { user_id = user }), nil, 4000,
            { protocol = "messagepack" }))
    end

    setup(function()
        emu = env.emulator("--ping-interval 0.5")
        pool = env.clients(emu)
    end)
    teardown(function()
        pool:quit()
        emu:stop()
    end)

    -- A client with short timers, its ledger, and a sender.
    local function setup_client(opts)
        local L = ledger(pool)
        local o = { connection_string = emu.cs, mode = "persistent", timeout = 4,
                    server_timeout = 1.5, keepalive_interval = 0.3, handshake_timeout = 1.5,
                    ack_timeout = 1, on_done = L.on_done }
        for k, v in pairs(opts or {}) do o[k] = v end
        local c = assert(signalr.new(o))
        local h = assert(c:hub("chat"))
        function L.send(user, tag)
            L.total = L.total + 1
            local r, _, d = h:to_user(user, "newMessage", { tag })
            if r == nil then
                L.now_err = L.now_err + 1
                L.codes[d.code] = (L.codes[d.code] or 0) + 1
            end
            c:poll(0.005)
        end
        function L.until_open(secs)
            env.wait(function()
                c:poll(0.05)
                return c:status().hubs.chat.connections[1].state == "open"
            end, secs or 10, "the server connection to open")
        end
        function L.settle(name, prefix, secs)
            -- everything accounted for: delivered, or failed now or later
            env.wait(function()
                c:poll(0.05)
                return L.delivered(name, prefix) + L.now_err + L.later_err >= L.total
            end, secs or 15, "every message of " .. prefix .. " accounted for")
            assert.equal(L.total, L.delivered(name, prefix) + L.now_err + L.later_err)
        end
        return c, h, L
    end

    it("the emulator killed and started again mid-run", function()
        connect_client("k1", "killed")
        local c, _, L = setup_client()
        for i = 1, 30 do L.send("killed", "k-" .. i) end
        L.settle("k1", "k-")
        assert.equal(30, L.delivered("k1", "k-"))
        emu:kill()
        -- the client notices the closed socket in poll, then keeps trying
        env.wait(function()
            c:poll(0.05)
            return c:status().hubs.chat.connections[1].state ~= "open"
        end, 10, "the drop to be noticed")
        for i = 31, 50 do L.send("killed", "k-" .. i) end
        emu:restart()
        connect_client("k2", "killed")
        L.until_open(15)
        for i = 51, 80 do L.send("killed", "k-" .. i) end
        -- k1 saw the first 30; k2 (connected to the new process) the rest
        -- that were not failed
        env.wait(function()
            c:poll(0.05)
            return 30 + L.delivered("k2", "k-") + L.now_err + L.later_err >= 80
        end, 15, "every message accounted for")
        assert.equal(80, 30 + L.delivered("k2", "k-") + L.now_err + L.later_err)
        assert.is_true(L.delivered("k2", "k-") >= 30) -- after the reconnect everything went
        assert.is_true(L.now_err + L.later_err >= 1)  -- and the down time said so
        c:close()
    end)

    it("kill -9 mid-burst: confirm() reports, as lost, every message it cannot confirm", function()
        connect_client("b1", "burst")
        local c, h, L = setup_client({ ack_timeout = 5 })
        for i = 1, 20 do L.send("burst", "b-" .. i) end
        L.until_open()
        assert.is_true(c:confirm(5))
        assert.equal(20, L.delivered("b1", "b-")) -- confirmed before they all arrived? then it lied
        -- a burst that returned true, then the service dies before it read all of it
        local took = {}
        for i = 21, 2020 do
            if h:to_user("burst", "newMessage", { "b-" .. i }) == true then took[#took + 1] = "b-" .. i end
        end
        emu:kill()
        emu:restart()
        connect_client("b2", "burst")
        local ok, msg, d = c:confirm(15)
        local lost = 0
        if not ok then
            assert.equal("ECONNECT", d.code, msg)
            assert.matches("lost with up to %d+ messages", msg)
            lost = d.lost
        end
        assert.is_true(lost <= #took + 20)
        -- what was not counted as lost reached the service (the new process
        -- delivers what was sent again to b2)
        local arrived = {}
        for _, name in ipairs { "b1", "b2" } do
            L.delivered(name, "b-") -- each once per client
            for _, m in ipairs(pool:messages(name)) do arrived[m.args[1]] = true end
        end
        local missing = 0
        for _, tag in ipairs(took) do if not arrived[tag] then missing = missing + 1 end end
        assert.is_true(missing <= lost, missing .. " messages missing, " .. lost .. " reported lost")
        -- reported once: the next confirmation covers only what follows
        for i = 2021, 2030 do L.send("burst", "b-" .. i) end
        assert.is_true(c:confirm(10))
        c:close()
    end)

    it("confirm() waits out a silent service and then counts a dropped connection's messages", function()
        connect_client("w1", "silent")
        local c, h, L = setup_client({ ack_timeout = 5, server_timeout = 30 })
        assert.is_true(c:confirm(5)) -- nothing sent yet: nothing to confirm
        L.send("silent", "w-0")
        L.until_open()
        assert.is_true(c:confirm(5))
        emu:fault { scope = "server", mode = "stall" }
        for i = 1, 5 do assert.is_true(h:to_user("silent", "newMessage", { "w-" .. i })) end
        local ok, msg, d = c:confirm(0.5)
        assert.is_nil(ok)
        assert.equal("ETIMEDOUT", d.code, msg)
        -- the service drops the connection before it answered: those 5 may be lost
        assert.equal(200, (emu:http("DELETE", "/_emulator/servers")))
        assert.equal(204, (emu:http("DELETE", "/_emulator/faults")))
        ok, msg, d = c:confirm(10)
        assert.is_nil(ok)
        assert.equal("ECONNECT", d.code, msg)
        assert.equal(5, d.lost)
        assert.equal("signalr.confirm: a server connection was lost with up to 5 messages the service had"
            .. " not confirmed; they may not have reached it", msg)
        L.until_open()
        assert.is_true(h:to_user("silent", "newMessage", { "w-6" }))
        assert.is_true(c:confirm(10))
        c:close()
    end)

    it("every server connection dropped by the service", function()
        connect_client("d1", "dropped")
        local c, _, L = setup_client()
        for i = 1, 20 do L.send("dropped", "d-" .. i) end
        L.until_open()
        local before = emu:stats().server_handshakes
        assert.equal(200, (emu:http("DELETE", "/_emulator/servers")))
        env.wait(function()
            c:poll(0.02)
            return c:status().hubs.chat.connections[1].state ~= "open"
        end, 10, "the drop to be noticed")
        for i = 21, 60 do L.send("dropped", "d-" .. i) end
        L.settle("d1", "d-")
        assert.is_true(L.delivered("d1", "d-") >= 50)
        assert.is_true(emu:stats().server_handshakes - before >= 1)
        c:close()
    end)

    it("handshakes refused twice, then accepted: queued messages wait and go", function()
        connect_client("r1", "refused")
        emu:fault { scope = "server", mode = "refuse", count = 2, message = "try later" }
        local before = emu:stats().server_handshakes
        local c, h, L = setup_client({ timeout = 10 })
        local first = h:to_user("refused", "newMessage", { "r-1" })
        L.total = 1
        assert.is_table(first) -- queued: the connection is coming up
        env.wait(function()
            c:poll(0.02)
            local e = c:status().hubs.chat.connections[1].last_error
            return e and e:find("refused the handshake: try later", 1, true)
        end, 10, "the first refusal")
        for i = 2, 10 do L.send("refused", "r-" .. i) end
        L.settle("r1", "r-", 20)
        assert.truthy(first.done and first.result == true)
        assert.equal(1, emu:stats().server_handshakes - before)
        c:close()
    end)

    it("the service stops answering (no pings, no acks): dead after server_timeout", function()
        connect_client("s1", "stalled")
        local c, h, L = setup_client()
        for i = 1, 5 do L.send("stalled", "s-" .. i) end
        L.until_open()
        local before = emu:stats().server_handshakes
        emu:fault { scope = "server", mode = "stall" }
        -- an acknowledged call gets no answer: ETIMEDOUT, and it may have gone
        local r, _, d = h:user_exists("stalled")
        assert.is_nil(r)
        assert.equal("ETIMEDOUT", d.code)
        assert.is_true(d.sent)
        env.wait(function()
            c:poll(0.05)
            local st = c:status().hubs.chat.connections[1]
            return st.state ~= "open" and st.last_error and st.last_error:find("dead", 1, true)
        end, 10, "the dead connection to be noticed")
        for i = 6, 20 do L.send("stalled", "s-" .. i) end
        assert.equal(204, (emu:http("DELETE", "/_emulator/faults")))
        L.until_open(15)
        for i = 21, 30 do L.send("stalled", "s-" .. i) end
        L.settle("s1", "s-")
        assert.is_true(L.delivered("s1", "s-") >= 15)
        assert.is_true(emu:stats().server_handshakes - before >= 1)
        c:close()
    end)

    it("while the handshake goes unanswered sends queue; a full queue says EQUEUEFULL; close cancels them", function()
        emu:fault { scope = "server", mode = "stall" }
        local c, h, L = setup_client({ queue_size = 2, timeout = 10, handshake_timeout = 10 })
        local a, b = h:broadcast("newMessage", { "q1" }), h:broadcast("newMessage", { "q2" })
        assert.is_table(a)
        assert.is_table(b)
        local r, msg, d = h:broadcast("newMessage", { "q3" })
        assert.is_nil(r)
        assert.equal("EQUEUEFULL", d.code)
        assert.matches("queue full", msg)
        c:close()
        assert.equal("ECANCELED", a.details.code)
        assert.equal("ECANCELED", b.details.code)
        assert.equal(2, L.later_err)
        assert.equal(204, (emu:http("DELETE", "/_emulator/faults")))
    end)

    it("an upgrade refused with 503 is the connection's error; the next attempt goes", function()
        emu:fault { scope = "server", mode = "status", status = 503, count = 1 }
        local c, h, L = setup_client({ timeout = 10 })
        local first, _, d = h:broadcast("newMessage", { "q1" })
        -- queued while the attempt runs, or refused at once if it already failed
        assert.truthy(first or d.code == "ECONNECT")
        env.wait(function()
            c:poll(0.02)
            local e = c:status().hubs.chat.connections[1].last_error
            return e and e:find("503", 1, true)
        end, 10, "the refused upgrade")
        L.until_open()
        assert.is_true(h:broadcast("newMessage", { "q2" }))
        assert(c:flush(15))
        if type(first) == "table" then assert.is_true(first.result) end
        c:close()
    end)
end)
