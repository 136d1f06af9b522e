-- signalr.transport.persistent.pool and .conn without a service: the
-- connection's states (handshake, backoff, what it consumes and what it
-- hands on), and the seam a hub server builds on (the connection type,
-- on_message, on_lost, write on one connection), through a stand-in I/O
-- driver.  No network.
local core = require "signalr.core"
local options = require "signalr.options"
local pool_mod = require "signalr.transport.persistent.pool"
local conn_mod = require "signalr.transport.persistent.conn"

local SP = core.sp
local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
local CS = "Endpoint=http://127.0.0.1;Port=1;AccessKey=" .. KEY .. ";Version=1.0;"

-- A driver that records what the connections ask of it.
local function stand_in_io()
    local io = { opened = {}, kicked = 0, dropped = 0 }
    function io.open(_, c) io.opened[#io.opened + 1] = c return true end
    function io.kick() io.kicked = io.kicked + 1 end
    function io.drop() io.dropped = io.dropped + 1 end
    function io.bind(_, pool) io.pool = pool end
    function io.wake() end
    function io.can_wait() return true end
    function io.wait() end
    function io.close() end
    return io
end

local function opts(extra)
    local o = options.fill { connection_string = CS, mode = "persistent" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
end

local function new_pool(spec)
    spec = spec or {}
    spec.handle = spec.handle or assert(core.client(CS, opts()))
    spec.io = spec.io or stand_in_io()
    return pool_mod.new(opts(spec.o), spec), spec.io
end

-- Bring a connection up as the service would: connected, then the
-- handshake's answer.
local function up(c)
    c:connected(core.monotonic())
    c:receive({ { type = SP.HANDSHAKE_RESPONSE } }, core.monotonic())
end

describe("signalr.transport.persistent.conn", function()
    local function conn(events, target)
        local seen = { failed = {}, messages = {}, acks = {}, opened = 0 }
        events = events or {
            opened = function() seen.opened = seen.opened + 1 end,
            failed = function(_, back, unconfirmed, msg, d, was_open)
                seen.failed[#seen.failed + 1] = { back = back, unconfirmed = unconfirmed, msg = msg,
                                                  details = d, was_open = was_open }
            end,
            ack = function(_, m) seen.acks[#seen.acks + 1] = m end,
            message = function(_, m) seen.messages[#seen.messages + 1] = m end,
        }
        local c = conn_mod.new { o = opts(), type = SP.WEAK_CONNECTION, io = stand_in_io(), events = events,
            target = target or function()
                return { scheme = "http", hostport = "127.0.0.1:1", path = "/server/?hub=h&cid=x",
                         headers = "Authorization: Bearer t\r\n" }
            end }
        return c, seen
    end

    it("opens with the handshake, then is open once the service answers", function()
        local c, seen = conn()
        assert.equal("idle", c.state)
        assert.is_true(c:start(core.monotonic()))
        assert.equal("connecting", c.state)
        assert.truthy(c:output():find("^GET /server/%?hub=h&cid=x HTTP/1%.1\r\n"))
        up(c)
        assert.equal("open", c.state)
        assert.equal(1, seen.opened)
    end)

    it("consumes pings and acks, hands every other message on", function()
        local c, seen = conn()
        c:start(core.monotonic())
        up(c)
        c:receive({ { type = SP.PING, values = {} }, { type = SP.ACK, ack_id = 3, status = 1 },
                    { type = SP.OPEN_CONNECTION }, { type = SP.CLOSE_CONNECTION, connection_id = "c1" },
                    { type = SP.SERVICE_EVENT } }, core.monotonic())
        assert.equal(1, #seen.acks)
        assert.same({ SP.OPEN_CONNECTION, SP.CLOSE_CONNECTION, SP.SERVICE_EVENT },
            { seen.messages[1].type, seen.messages[2].type, seen.messages[3].type })
        assert.equal("open", c.state)
    end)

    it("the service's error or close of the connection fails it, open: retried at once", function()
        for _, m in ipairs { { type = SP.SERVICE_ERROR, message = "bye" }, { type = SP.CLOSE_CONNECTION } } do
            local c, seen = conn()
            c:start(core.monotonic())
            up(c)
            c:receive({ m }, core.monotonic())
            assert.equal("backoff", c.state)
            assert.is_true(seen.failed[1].was_open)
            assert.equal("ECONNECT", seen.failed[1].details.code)
            assert.is_true(c:due(core.monotonic()) <= 0.001)
        end
    end)

    it("a refused handshake waits out a backoff, then starts again", function()
        local c, seen = conn()
        local t0 = core.monotonic()
        c:start(t0)
        c:receive({ { type = SP.HANDSHAKE_RESPONSE, error = "no" } }, t0)
        assert.equal("backoff", c.state)
        assert.equal("EHANDSHAKE", seen.failed[1].details.code)
        assert.is_false(seen.failed[1].was_open)
        assert.is_true(c.retry_at >= t0 + 1 and c.retry_at <= t0 + 2 + 0.001)
        c:tick(c.retry_at)
        assert.equal("connecting", c.state)
    end)

    it("a message before the handshake's answer is a protocol error", function()
        local c, seen = conn()
        c:start(core.monotonic())
        c:connected(core.monotonic())
        c:receive({ { type = SP.ACK, ack_id = 1, status = 1 } }, core.monotonic())
        assert.equal("EREPLY", seen.failed[1].details.code)
    end)

    it("gives back the data frames the network never took", function()
        local c, seen = conn()
        c:start(core.monotonic())
        up(c)
        assert.is_true(c:send("frame-1", nil, "broadcast"))
        assert.is_true(c:send("frame-2", nil, "to_user"))
        assert.equal(2, c:untaken())
        c:fail("gone", { code = "ECONNECT" })
        local back = seen.failed[1].back
        assert.same({ "frame-1", "frame-2" }, { back[1].frame, back[2].frame })
        assert.same({ "broadcast", "to_user" }, { back[1].what, back[2].what })
        assert.equal(2, seen.failed[1].unconfirmed)
    end)

    it("tells the frames of a sealed batch the network took from those it did not", function()
        -- a WebSocket stand-in whose count of bytes taken the test sets
        local function fake_ws()
            local w = { taken_n = 0, queued = 0 }
            function w.send(_, data)
                w.queued = w.queued + #data + 6 -- a masked frame under 126 bytes
                return true
            end
            function w.unsent() return w.queued - w.taken_n end
            function w.taken() return w.taken_n end
            function w.free() end
            return w
        end
        for _, case in ipairs {
            -- bytes taken -> the frames given back
            { 0, { "AAAA", "BBBBBB", "CC" } },
            { 10, { "BBBBBB", "CC" } }, -- the first batch's header and its first frame
            { 16, { "BBBBBB", "CC" } }, -- the ping too, B one byte short
            { 17, { "CC" } },           -- all of the first batch
            { 24, { "CC" } },           -- the second batch's header and one byte of C
            { 25, {} },
        } do
            local c, seen = conn()
            c:start(core.monotonic())
            up(c)
            local ws = fake_ws()
            c.ws, c.total = ws, 0
            c:send("AAAA", nil, "broadcast")
            c:send("p", nil) -- not a data frame (a ping): never given back
            c:send("BBBBBB", nil, "to_user")
            assert.is_true(c:seal()) -- bytes 0-5 header, A 6-9, p 10, B 11-16
            c:send("CC", nil, "to_group")
            assert.is_true(c:seal()) -- bytes 17-22 header, C 23-24
            ws.taken_n = case[1]
            assert.equal(#case[2], c:untaken(), "taken " .. case[1])
            c:fail("gone", { code = "ECONNECT" })
            local got = {}
            for i, item in ipairs(seen.failed[1].back) do got[i] = item.frame end
            assert.same(case[2], got, "taken " .. case[1])
            assert.equal(3, seen.failed[1].unconfirmed)
        end
    end)

    it("a target that cannot be made fails the attempt", function()
        local c, seen = conn(nil, function() return nil, "no token", { code = "EAUTH" } end)
        assert.is_false(c:start(core.monotonic()))
        assert.equal("EAUTH", seen.failed[1].details.code)
    end)
end)

describe("signalr.transport.persistent.pool", function()
    it("opens the hub's connections on first use, with the connection type it was given", function()
        local types = {}
        local real = core.sp_handshake
        core.sp_handshake = function(ty) types[#types + 1] = ty return real(ty) end
        finally(function() core.sp_handshake = real end)
        local weak = new_pool()
        weak:open("chat")
        local default = new_pool { type = SP.DEFAULT_CONNECTION, o = { connection_count = 2 } }
        default:open("Chat")
        default:open("CHAT") -- hub names are case-insensitive: the same connections
        assert.same({ SP.WEAK_CONNECTION, SP.DEFAULT_CONNECTION, SP.DEFAULT_CONNECTION }, types)
        assert.equal(2, #default:status().chat.connections)
    end)

    it("hands on_message what it does not consume, with the connection it came on", function()
        local got = {}
        local pool, io = new_pool { on_message = function(c, m) got[#got + 1] = { c, m } end }
        pool:open("chat")
        local c = io.opened[1]
        up(c)
        c:receive({ { type = SP.OPEN_CONNECTION }, { type = SP.PING, values = {} } }, core.monotonic())
        assert.equal(1, #got)
        assert.equal(c, got[1][1])
        assert.equal(SP.OPEN_CONNECTION, got[1][2].type)
    end)

    it("reports the loss of an open connection to on_lost (not a failed attempt)", function()
        local lost = {}
        local pool, io = new_pool { on_lost = function(c, msg, d) lost[#lost + 1] = { c, msg, d } end }
        pool:open("chat")
        local c = io.opened[1]
        c:fail("could not connect", { code = "ECONNECT" })
        assert.equal(0, #lost)
        c:tick(c.retry_at)
        up(c)
        c:fail("the service closed the connection", { code = "ECONNECT" })
        assert.equal(1, #lost)
        assert.equal(c, lost[1][1])
        assert.equal("the service closed the connection", lost[1][2])
    end)

    it("writes a frame on the connection a caller names", function()
        local pool, io = new_pool { o = { connection_count = 2 } }
        pool:open("chat")
        local a, b = io.opened[1], io.opened[2]
        local ok, msg, d = pool:write(a, "frame")
        assert.is_nil(ok)
        assert.equal("ECONNECT", d.code)
        assert.is_false(d.sent)
        assert.equal("signalr.write: the server connection is not open (connecting); nothing was sent", msg)
        up(a)
        up(b)
        assert.is_true(pool:write(b, "frame", "reply"))
        assert.equal(0, a:untaken() + a.unconfirmed)
        assert.equal(1, b.unconfirmed)
        assert.equal(1, pool.stats.sent)
    end)

    it("a frame bound to its connection is dropped with it, never sent again on another", function()
        local pool, io = new_pool { o = { connection_count = 2 } }
        local hc = pool:open("chat")
        local a, b = io.opened[1], io.opened[2]
        up(a)
        up(b)
        assert.is_true(pool:write(a, "client-frame", "server", true))
        assert.is_true(pool:write(a, "data-frame", "broadcast"))
        assert.equal(1, a:untaken())
        a:fail("gone", { code = "ECONNECT" })
        -- only the unbound data frame waits to go again
        assert.equal(1, #hc.queue)
        assert.equal("data-frame", hc.queue[1].frame)
        assert.equal(0, b:untaken())
    end)

    it("a hub's sender: the frame sp_send makes, on the open connection, as deliver would", function()
        local ARGS = { "a", { x = 1 } }
        local want = assert(core.sp_send(SP.GROUP_BROADCAST, "g", "t", ARGS, 3, 1024))
        for _, count in ipairs { 1, 2 } do
            local pool, io = new_pool { o = { connection_count = count } }
            local send = pool:sender("chat", SP.GROUP_BROADCAST, "to_group", 3, 1024)
            -- no connection yet: queued (deliver opens the hub)
            local req = send("t", ARGS, "g")
            assert.equal("to_group", req.op)
            assert.equal(count, #io.opened)
            for i = 1, count do up(io.opened[i]) end
            assert.equal(0, pool:queued())
            local kicked = io.kicked
            assert.is_true(send("t", ARGS, "g"))
            assert.is_true(send("t", ARGS, "g"))
            assert.equal(kicked + 2, io.kicked)
            local frames, unconfirmed = {}, 0
            for i = 1, count do
                local c = io.opened[i]
                for j = 1, c.ob_n do frames[#frames + 1] = c.ob[j] assert.equal("to_group", c.ob_what[j]) end
                unconfirmed = unconfirmed + c.unconfirmed
            end
            assert.same({ want, want, want }, frames)
            assert.equal(3, unconfirmed)
            assert.equal(3, pool.stats.sent)
            -- what the sender leaves to the general path: false
            assert.is_false(send(5, ARGS, "g"))
            assert.is_false(send("t", ARGS, "a\nb"))
            assert.is_false(send("t", { string.rep("x", 2000) }, "g"))
            -- a connection holding 64 MiB: deliver answers EQUEUEFULL
            for i = 1, count do io.opened[i].ob_bytes = pool_mod.MAX_UNWRITTEN + 1 end
            local ok, msg, d = send("t", ARGS, "g")
            assert.is_nil(ok)
            assert.equal("EQUEUEFULL", d.code, msg)
            for i = 1, count do io.opened[i].ob_bytes = 0 end
            pool:close(0)
            assert.is_false(send("t", ARGS, "g"))
        end
    end)

    it("queues sends while a connection comes up, in its request queue, and sends them in order", function()
        local pool, io = new_pool()
        local req = pool:deliver("chat", "f1", "broadcast")
        assert.equal("broadcast", req.op)
        assert.equal(1, pool:queued())
        assert.equal(1, pool.requests.open)
        up(io.opened[1])
        assert.equal(0, pool:queued())
        assert.equal(1, pool:report())
        assert.is_true(req.done and req.result)
        assert.is_true(pool:deliver("chat", "f2", "broadcast"))
    end)

    it("an acknowledged message waits for its answer; the answer's status is the result", function()
        local pool, io = new_pool()
        pool:open("chat")
        local c = io.opened[1]
        up(c)
        -- the stand-in driver's wait answers the ack as the service would
        function io.wait(_, _, _, ack)
            c:receive({ { type = SP.ACK, ack_id = ack.id, status = 2, message = "" } }, core.monotonic())
        end
        local frames = {}
        local r = pool:acked("chat", function(id)
            frames[#frames + 1] = id
            return "ack-frame"
        end, "user_exists", true)
        assert.is_false(r)
        local ok, msg, d = pool:acked("chat", function() return "f" end, "add_user_to_group", false)
        assert.is_nil(ok)
        assert.equal(404, d.status)
        assert.equal("signalr.add_user_to_group: not found (add_user_to_group)", msg)
        assert.same({ 1 }, frames)
    end)

    it("is a loop object: timeout, fds, poll", function()
        local pool = new_pool()
        assert.is_nil(pool:timeout())
        assert.same({}, pool:fds())
        assert.equal(0, pool:poll(0))
        pool:open("chat")
        assert.is_number(pool:timeout())
    end)

    it("closing fails what waits with ECANCELED", function()
        local pool = new_pool()
        local req = pool:deliver("chat", "f1", "to_group")
        pool:close(0)
        pool:report()
        assert.equal("ECANCELED", req.details.code)
        assert.is_false(req.details.sent)
        assert.equal("closed", pool:status().chat.connections[1].state)
    end)
end)
