-- req:cancel(): one request ends with ECANCELED at any stage, its outcome
-- reported once, and details.sent says whether it may have reached the
-- service; the others go on.
local signalr = require "signalr"
local env = require "helpers.env"

describe("req:cancel()", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)
    before_each(function()
        emu:http("DELETE", "/_emulator/faults")
        emu:clear()
    end)

    local function client(opts)
        local seen = {}
        opts = opts or {}
        opts.connection_string = emu.cs
        opts.async = true
        opts.on_done = function(r) seen[#seen + 1] = r end
        return assert(signalr.new(opts)), seen
    end

    it("on the wire: ECANCELED once, sent = true; the others finish", function()
        emu:fault { mode = "stall", ms = 800, count = 1 }
        local c, seen = client { max_connections = 2 }
        local h = c:hub("chat")
        local slow = assert(h:broadcast("t", { 1 }))
        env.wait(function() c:step() return #emu:requests() == 1 end, 5, "the first to arrive")
        local fine = assert(h:broadcast("t", { 2 }))
        assert.is_true(slow:cancel())
        assert.is_false(slow:cancel(), "a second cancel changes nothing")
        assert.is_true(c:flush(5))
        assert.equal("ECANCELED", slow.details.code)
        assert.is_true(slow.details.sent)
        assert.equal("signalr.broadcast: canceled: with req:cancel() after the request was sent"
            .. " (it may have been delivered)", slow.error)
        assert.is_true(fine.result)
        assert.equal(2, #seen)
        assert.is_false(slow:cancel())
        c:close()
    end)

    it("waiting for a connection: sent = false, never reaches the service", function()
        emu:fault { mode = "stall", ms = 600, count = 1 }
        local c, seen = client { max_connections = 1 }
        local h = c:hub("chat")
        local a = assert(h:broadcast("t", { "a" }))
        local b = assert(h:broadcast("t", { "b" }))
        env.wait(function() c:step() return #emu:requests() == 1 end, 5, "the first to arrive")
        assert.is_true(b:cancel())
        assert.is_true(c:flush(5))
        assert.is_true(a.result)
        assert.equal("ECANCELED", b.details.code)
        assert.is_false(b.details.sent)
        assert.equal("signalr.broadcast: canceled: with req:cancel() before the request was sent",
            b.error)
        assert.equal(1, #emu:requests())
        assert.equal(2, #seen)
        c:close()
    end)

    it("waiting to retry: sent = false, no further attempt", function()
        emu:fault { mode = "status", status = 503, count = 1 }
        local c = client { retries = 2, retry_delay = 1 }
        local r = assert(c:hub("chat"):broadcast("t"))
        env.wait(function() c:step() return #emu:requests() == 1 end, 5, "the first attempt")
        c:poll(0.1)
        assert.is_true(r:cancel())
        assert.is_true(c:flush(5))
        assert.equal("ECANCELED", r.details.code)
        assert.is_false(r.details.sent)
        env.sleep(1.2)
        c:poll(0)
        assert.equal(1, #emu:requests())
        c:close()
    end)

    it("finished already: false, the outcome stands", function()
        local c, seen = client()
        local r = assert(c:hub("chat"):user_exists("nobody"))
        assert.is_true(c:flush(5))
        assert.is_false(r:cancel())
        assert.is_false(r.result)
        assert.is_nil(r.error)
        assert.equal(1, #seen)
        c:close()
    end)

    it("a listing between pages: the page under way is canceled, one outcome", function()
        local c, seen = client { api_version = "2024-12-01", max_connections = 1 }
        emu:fault { mode = "stall", ms = 600, count = 1 }
        local r = assert(c:hub("chat"):group_connections("g"))
        env.wait(function() c:step() return #emu:requests() == 1 end, 5, "the page to arrive")
        assert.is_true(r:cancel())
        assert.is_true(c:flush(5))
        assert.equal("ECANCELED", r.details.code)
        assert.is_true(r.details.sent)
        assert.same({ r }, seen)
        c:close()
    end)

    it("several endpoints: every part under way", function()
        local other = env.emulator()
        emu:fault { mode = "stall", ms = 600, count = 1 }
        other:fault { mode = "stall", ms = 600, count = 1 }
        local seen = {}
        local c = assert(signalr.new { endpoints = {
            { connection_string = emu.cs, name = "eu" }, { connection_string = other.cs, name = "us" } },
            async = true, retries = 0, health_interval = 60,
            on_done = function(q) seen[#seen + 1] = q end })
        local r = assert(c:hub("chat"):broadcast("t"))
        env.wait(function() c:poll(0.02) return #emu:requests() == 1 and #other:requests() == 1 end,
            5, "both parts to arrive")
        assert.is_true(r:cancel())
        assert.is_true(c:flush(5))
        assert.equal("ECANCELED", r.details.code)
        assert.same({ r }, seen)
        c:close()
        other:stop()
    end)
end)

describe("req:cancel() in persistent mode", function()
    it("a send queued while the connection comes up leaves the queue, sent = false", function()
        -- a listener that never answers the handshake: sends queue
        local srv = require("cqueues.socket").listen("127.0.0.1", 0)
        assert(srv:listen())
        local _, _, port = srv:localname()
        local seen = {}
        local c = assert(signalr.new {
            connection_string = "Endpoint=http://127.0.0.1;Port=" .. port
                .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;",
            mode = "persistent", handshake_timeout = 5,
            on_done = function(q) seen[#seen + 1] = q end })
        local h = assert(c:hub("chat"))
        local a = h:broadcast("t", { 1 })
        local b = h:broadcast("t", { 2 })
        assert.equal("table", type(a))
        assert.equal("table", type(b))
        assert.is_true(a:cancel())
        assert.is_false(a:cancel())
        c:poll(0)
        assert.is_true(a.done)
        assert.equal("ECANCELED", a.details.code)
        assert.is_false(a.details.sent)
        assert.equal("signalr.broadcast: canceled: with req:cancel() before the request was sent",
            a.error)
        assert.same({ a }, seen)
        assert.is_false(b.done)
        c:close()
        srv:close()
    end)
end)
