-- The asynchronous mode (libcurl multi): calls queue and return at once,
-- the program drives progress, and every request ends in exactly one
-- outcome, also when the client is closed with requests in flight.
local signalr = require "signalr"
local core = require "signalr.core"
local env = require "helpers.env"

describe("async mode", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)
    before_each(function()
        emu:http("DELETE", "/_emulator/faults")
        emu:clear()
    end)

    local function client(opts)
        opts = opts or {}
        opts.connection_string = emu.cs
        opts.async = true
        return assert(signalr.new(opts))
    end

    it("queues many sends and delivers exactly one outcome each", function()
        local seen = {}
        local c = client { on_done = function(r) seen[#seen + 1] = r end }
        local h = c:hub("chat")
        local reqs = {}
        for i = 1, 200 do reqs[i] = assert(h:broadcast("newMessage", { i })) end
        local check = assert(h:user_exists("nobody"))
        assert.is_false(reqs[1].done)
        assert.equal(201, c:pending())
        assert.is_true(c:flush(10))
        assert.equal(0, c:pending())
        assert.equal(201, #seen)
        local ids = {}
        for _, r in ipairs(seen) do
            assert.is_nil(ids[r.id], "an outcome delivered twice")
            ids[r.id] = true
            assert.is_true(r.done)
        end
        for i = 1, 200 do assert.is_true(reqs[i].result) end
        assert.is_false(check.result)
        assert.equal(201, #emu:requests())
        assert.is_true(emu:stats().rest_connections <= 8 + 1, "connections are reused")
    end)

    it("rejects bad input at once: nothing queued, nothing sent", function()
        local c = client()
        local r, msg, details = c:hub("chat"):to_user("", "t")
        assert.is_nil(r)
        assert.equal("signalr.to_user: user id is empty", msg)
        assert.equal("EINVAL", details.code)
        assert.equal(0, c:pending())
        assert.equal(0, #emu:requests())
    end)

    it("reports service errors on the request", function()
        local c = client()
        local r = assert(c:hub("chat"):add_connection_to_group("gone", "g"))
        assert.is_true(c:flush(5))
        assert.is_nil(r.result)
        assert.equal(404, r.details.status)
        assert.truthy(r.error:find("^signalr%.add_connection_to_group: HTTP 404"), r.error)
    end)

    it("queues operations that answer with data: the result is the blocking call's", function()
        local c = client { api_version = "2024-12-01" }
        local r = assert(c:hub("chat"):group_connections("g"))
        assert.is_true(c:flush(5))
        assert.same({}, r.result, r.error)
        assert.equal(1, #emu:requests())
    end)

    it("has a bounded queue: a clear error, not unbounded growth", function()
        emu:fault { mode = "stall", ms = 600, count = 10 }
        local c = client { queue_size = 5, timeout = 5 }
        local h = c:hub("chat")
        for i = 1, 5 do assert(h:broadcast("t", { i })) end
        local r, msg, details = h:broadcast("t", { 6 })
        assert.is_nil(r)
        assert.equal("EQUEUEFULL", details.code)
        assert.truthy(msg:find("queue full", 1, true), msg)
        assert.is_true(c:flush(10))
        assert(h:broadcast("t", { 7 }), "room again after flush")
        assert.is_true(c:flush(10))
    end)

    it("returns at once while the service stalls, and retries without blocking", function()
        emu:fault { mode = "stall", ms = 500 }
        local c = client { retries = 2, retry_delay = 0.3 }
        local h = c:hub("chat")
        local t0 = core.monotonic()
        local slow = assert(h:broadcast("t", { "slow" }))
        assert.is_true(core.monotonic() - t0 < 0.1, "submit blocked")
        t0 = core.monotonic()
        c:step()
        assert.is_true(core.monotonic() - t0 < 0.1, "step blocked")
        assert.is_true(c:flush(5))
        assert.is_true(slow.result)
        emu:fault { mode = "status", status = 503, count = 2 }
        local r = assert(h:broadcast("t", { "retried" }))
        assert.is_true(c:flush(5))
        assert.is_true(r.result, r.error)
        assert.equal(4, #emu:requests())
    end)

    it("ends in-flight requests with ECANCELED when closed", function()
        emu:fault { mode = "stall", ms = 800, count = 3 }
        local got = {}
        local c = client { on_done = function(r) got[#got + 1] = r end }
        local h = c:hub("chat")
        local reqs = { h:broadcast("t"), h:broadcast("t"), h:user_exists("u") }
        env.wait(function() c:step(); return #emu:requests() == 3 end, 5, "the requests to arrive")
        c:close()
        assert.equal(3, #got)
        for _, r in ipairs(reqs) do
            assert.is_true(r.done)
            assert.equal("ECANCELED", r.details.code)
            -- they were on the wire: the outcome says they may have arrived
            assert.is_true(r.details.sent)
            assert.truthy(r.error:find("may have been delivered", 1, true))
        end
    end)

    it("says which canceled requests were never sent", function()
        -- one connection at most: the second request waits for it
        emu:fault { mode = "stall", ms = 800, count = 3 }
        local c = client { max_connections = 1 }
        local h = c:hub("chat")
        local a, b = h:broadcast("t"), h:broadcast("t")
        env.wait(function() c:step(); return #emu:requests() == 1 end, 5, "the first to arrive")
        c:close()
        assert.is_true(a.details.sent)
        assert.is_false(b.details.sent)
        assert.truthy(b.error:find("before the request was sent", 1, true), b.error)
        assert.equal(1, #emu:requests())
    end)

    it("a request made from on_done during close() gets its outcome at once", function()
        emu:fault { mode = "stall", ms = 500 }
        local late = {}
        local c
        c = client { on_done = function()
            late[#late + 1] = { c:hub("chat"):broadcast("late") }
        end }
        assert(c:hub("chat"):broadcast("t"))
        c:step()
        c:close()
        assert.equal(1, #late)
        assert.is_nil(late[1][1])
        assert.equal("ECANCELED", late[1][3].code)
        assert.is_false(late[1][3].sent)
        -- and after close, calls are refused the same way
        local ok, msg, d = c:hub("chat"):broadcast("x")
        assert.is_nil(ok)
        assert.equal("ECANCELED", d.code)
        assert.truthy(msg:find("the client is closed", 1, true))
    end)

    it("an on_done that raises during close(): the client still closes, then the error", function()
        emu:fault { mode = "stall", ms = 500, count = 2 }
        local calls = 0
        local c = client { on_done = function() calls = calls + 1; error("callback broke") end }
        local r1, r2 = c:hub("chat"):broadcast("a"), c:hub("chat"):broadcast("b")
        c:step()
        assert.has_error(function() c:close() end, "callback broke")
        assert.equal(2, calls)
        assert.is_true(r1.done and r2.done)
        local ok, _, d = c:hub("chat"):broadcast("x")
        assert.is_nil(ok)
        assert.equal("ECANCELED", d.code)
        c:close() -- closing again is fine
    end)

    it("flush gives up after its timeout, saying how many are left", function()
        emu:fault { mode = "stall", ms = 1000 }
        local c = client()
        assert(c:hub("chat"):broadcast("t"))
        local ok, msg, details = c:flush(0.2)
        assert.is_nil(ok)
        assert.equal("ETIMEDOUT", details.code)
        assert.equal(1, details.pending)
        assert.truthy(msg:find("1 requests still pending", 1, true))
        assert.is_true(c:flush(5))
    end)

    it("exposes sockets and a timeout for an existing event loop", function()
        emu:fault { mode = "stall", ms = 300 }
        local c = client()
        assert(c:hub("chat"):broadcast("t"))
        c:step()
        local fds = c:fds()
        assert.is_true(#fds >= 1)
        assert.is_number(fds[1].fd)
        assert.is_boolean(fds[1].read)
        local t = c:timeout()
        assert.is_true(t == nil or t >= 0)
        assert.is_true(c:flush(5))
    end)

    it("a raising callback does not lose outcomes", function()
        local n = 0
        local c = client { on_done = function() n = n + 1; error("boom") end }
        local h = c:hub("chat")
        local a, b = assert(h:broadcast("t")), assert(h:broadcast("t"))
        local ok, err = pcall(c.flush, c, 5)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("boom", 1, true))
        for _ = 1, 100 do
            if c:pending() == 0 then break end
            pcall(c.poll, c, 0.05)
        end
        assert.equal(0, c:pending())
        assert.equal(2, n)
        assert.is_true(a.done and b.done)
    end)

    it("raises on misuse", function()
        local c = client()
        assert.has_error(function() c:poll("soon") end, "signalr.poll: timeout must be a number of seconds")
        local blocking = assert(signalr.new(emu.cs))
        assert.has_error(function() blocking:poll() end,
            "signalr.poll: only for clients made with async = true or mode = \"persistent\"")
        assert.has_error(function() signalr.new { connection_string = emu.cs, queue_size = 0 } end,
            "signalr.new: option 'queue_size' must be a positive integer")
    end)
end)

describe("the core's log lines in async mode", function()
    -- A connect refused at once (a broadcast address): the first attempt
    -- can fail, and log its retry, inside submit itself.
    local CS = "Endpoint=http://255.255.255.255;Port=1;AccessKey=" .. string.rep("k", 44)
    local function drain(c)
        local deadline = core.monotonic() + 5
        while c:pending() > 0 and core.monotonic() < deadline do c:poll(0.02) end
    end
    for _, how in ipairs { "first call", "after a call in a coroutine that is gone", "after one that yielded" } do
        it("reach on_log " .. how .. ", each naming its operation", function()
            local lines = {}
            local c = assert(core.client(CS, { retries = 2, retry_delay = 0.01,
                log = function(_, msg) lines[#lines + 1] = msg end }))
            if how ~= "first call" then
                local co = coroutine.create(function(cl)
                    cl:submit_send("broadcast", "chat", "t", "[1]")
                    drain(cl)
                    coroutine.yield()
                end)
                assert(coroutine.resume(co, c))
                if how:find("gone") then
                    co = nil -- luacheck: ignore 311
                    collectgarbage()
                    collectgarbage()
                end
                lines = {}
            end
            c:submit_send("to_user", "chat", "t", "[1]", "u")
            drain(c)
            assert.equal(2, #lines, table.concat(lines, "\n"))
            for i, line in ipairs(lines) do
                assert.truthy(line:find("^to_user: attempt " .. i .. " failed %(ECONNECT"), line)
            end
            c:close()
        end)
    end
end)
