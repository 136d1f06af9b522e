-- Async clients in real event loops: the exact descriptor set (none left
-- out past fd 1024 or past 64 sockets), the one pollable descriptor, the
-- luv and cqueues adapters, and fd numbers reused after connections close.
local signalr = require "signalr"
local env = require "helpers.env"
local uv = require "luv"
local cqueues = require "cqueues"

describe("async mode in event loops", function()
    local emu, files
    setup(function()
        emu = env.emulator()
        -- 2000 open files first: every socket libcurl opens is numbered
        -- above 2000, where fd_set-based code (FD_SETSIZE 1024) loses them
        files = {}
        for i = 1, 2000 do
            files[i] = io.open("/dev/null", "rb")
            assert(files[i], "could not open 2000 files (raise ulimit -n)")
        end
    end)
    teardown(function()
        for _, f in ipairs(files) do f:close() end
        emu:stop()
    end)
    before_each(function()
        emu:clear()
        emu:http("DELETE", "/_emulator/faults")
    end)

    local function delivered()
        local n = 0
        for _, r in ipairs(emu:requests()) do if r.status == 202 then n = n + 1 end end
        return n
    end

    local function async_client(extra)
        local o = { connection_string = emu.cs, async = true }
        for k, v in pairs(extra or {}) do o[k] = v end
        return assert(signalr.new(o))
    end

    it("reports every socket, numbered past 2000, and 200 of them at once", function()
        emu:fault { mode = "stall", ms = 2000, count = 200 }
        local c = async_client { max_connections = 200, queue_size = 400 }
        local hub = assert(c:hub("Chat"))
        for i = 1, 200 do assert(hub:broadcast("newMessage", { i })) end
        local most, high = 0, 0
        local deadline = os.time() + 10
        while most < 200 and os.time() < deadline do
            c:poll(0.02)
            local fds = c:fds()
            local seen = {}
            for _, f in ipairs(fds) do
                assert.is_nil(seen[f.fd], "a descriptor listed twice")
                seen[f.fd] = true
                assert.truthy(f.read or f.write)
                if f.fd > high then high = f.fd end
            end
            if #fds > most then most = #fds end
        end
        assert.equal(200, most)
        assert.truthy(high > 2000, high)
        assert(c:flush(15))
        assert.equal(200, delivered())
        assert.equal(0, #c:fds())
        c:close()
    end)

    it("pollfd(): one descriptor a loop can wait on (cqueues.poll on the bare fd)", function()
        local c = async_client()
        local fd = c:pollfd()
        assert.is_number(fd)
        assert.equal("r", c:events())
        local hub = assert(c:hub("Chat"))
        local reqs = {}
        for i = 1, 20 do reqs[i] = assert(hub:broadcast("newMessage", { i })) end
        local cq = cqueues.new()
        cq:wrap(function()
            local deadline = cqueues.monotime() + 10
            while c:pending() > 0 and cqueues.monotime() < deadline do
                cqueues.poll({ pollfd = fd, events = "r" }, c:timeout() or 1)
                c:poll(0)
            end
        end)
        assert(cq:loop())
        for i = 1, 20 do assert.is_true(reqs[i].result, reqs[i].error) end
        assert.equal(20, delivered())
        c:close()
    end)

    -- run the luv loop until done() says so (checked every 20 ms), at most
    -- limit seconds
    local function run_luv(done, limit)
        local guard, check = uv.new_timer(), uv.new_timer()
        guard:start(limit * 1000, 0, function() uv.stop() end)
        check:start(20, 20, function() if done() then uv.stop() end end)
        uv.run()
        for _, t in ipairs { guard, check } do t:stop() t:close() end
    end

    it("the luv adapter: requests queued before and during the loop all finish", function()
        local done = 0
        local c = async_client { on_done = function(req)
            assert.is_true(req.result, req.error)
            done = done + 1
        end }
        local hub = assert(c:hub("Chat"))
        local handle = require("signalr.loop.luv").attach(c, uv)
        for i = 1, 10 do assert(hub:broadcast("newMessage", { "before", i })) end
        -- more from a timer inside the loop, after it went idle
        local later = uv.new_timer()
        later:start(300, 0, function()
            for i = 1, 10 do assert(hub:broadcast("newMessage", { "during", i })) end
        end)
        run_luv(function() return done == 20 end, 10)
        later:stop()
        later:close()
        assert.equal(20, done)
        assert.equal(20, delivered())
        c:close() -- detaches the adapter
        assert.is_nil(c._adapter)
        uv.run("nowait") -- let libuv close the handles
        handle.detach() -- a second detach is harmless
    end)

    it("the luv adapter drives a client of several endpoints through its one descriptor", function()
        -- (here, where luv is loaded once: busted reloads modules per file,
        -- and a second luv load shares libuv's default loop with the first)
        local other = env.emulator()
        local c = assert(signalr.new { async = true, retries = 0, endpoints = {
            { connection_string = emu.cs, name = "eu" }, { connection_string = other.cs, name = "us" } } })
        local hub = c:hub("chat")
        require("signalr.loop.luv").attach(c, uv)
        local reqs = {}
        for i = 1, 20 do reqs[i] = assert(hub:broadcast("m", { i })) end
        run_luv(function() return c:pending() == 0 end, 5)
        for i = 1, 20 do assert.is_true(reqs[i].result, "request " .. i) end
        assert.equal(20, delivered())
        c:close() -- detaches the adapter
        uv.run("nowait") -- let libuv close the handles
        other:stop()
    end)

    it("the cqueues adapter: the client is pollable itself", function()
        local c = async_client()
        local hub = assert(c:hub("Chat"))
        local cq = cqueues.new()
        local handle = require("signalr.loop.cqueues").attach(c, cq)
        local reqs = {}
        cq:wrap(function()
            for i = 1, 10 do reqs[#reqs + 1] = assert(hub:broadcast("newMessage", { i })) end
            cqueues.sleep(0.2) -- the client idles, then more arrive
            for i = 11, 20 do reqs[#reqs + 1] = assert(hub:broadcast("newMessage", { i })) end
            local deadline = cqueues.monotime() + 10
            while c:pending() > 0 and cqueues.monotime() < deadline do cqueues.sleep(0.02) end
            handle.detach()
        end)
        assert(cq:loop())
        for i = 1, 20 do assert.is_true(reqs[i].result, reqs[i].error) end
        assert.equal(20, delivered())
        c:close()
    end)

    it("fd numbers reused after connections close do not strand a request (luv)", function()
        local c = async_client { retries = 0 }
        local hub = assert(c:hub("Chat"))
        local handle = require("signalr.loop.luv").attach(c, uv)
        local outcomes, rounds = {}, 15
        local round
        round = function(i)
            if i > rounds then return uv.stop() end
            -- the service resets the connection: the next request opens a
            -- new socket, very likely with the number just freed
            emu:fault { mode = "reset" }
            local r1 = assert(hub:user_exists("u" .. i))
            local r2 = assert(hub:user_exists("v" .. i))
            local t = uv.new_timer()
            t:start(10, 10, function()
                if r1.done and r2.done then
                    t:stop()
                    t:close()
                    outcomes[#outcomes + 1] = { r1, r2 }
                    round(i + 1)
                end
            end)
        end
        local guard = uv.new_timer()
        guard:start(20000, 0, function() uv.stop() end)
        round(1)
        uv.run()
        guard:stop()
        guard:close()
        assert.equal(rounds, #outcomes)
        for _, o in ipairs(outcomes) do
            -- one of the two met the reset (an error), the other answered
            local answered = (o[1].result == false and 1 or 0) + (o[2].result == false and 1 or 0)
            assert.truthy(answered >= 1, tostring(o[1].error) .. " / " .. tostring(o[2].error))
        end
        handle.detach()
        c:close()
        uv.run("nowait") -- let libuv close the handles
    end)
end)
