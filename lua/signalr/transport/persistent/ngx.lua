--- Persistent mode inside nginx: the I/O driver of the server
-- connections (signalr.transport.persistent.conn's `io`).  Each
-- connection is a cosocket owned by a timer of its own (a reader loop and
-- a writer light thread), and one background timer per pool
-- (`ngx.timer.every`) keeps the connections alive: reconnects after the
-- backoff, keep-alive pings, dead-connection and handshake deadlines,
-- queue expiry.  Handler calls only put frames on the connection's
-- WebSocket (memory) and wake its writer, so a send never blocks the
-- worker and works in every phase; acknowledged calls wait (on a
-- semaphore) where nginx lets a handler yield.  One set of connections
-- per worker and client: make the client once per worker (e.g. in
-- init_worker_by_lua or a module's upvalue).
-- @module signalr.transport.persistent.ngx
local ngx = ngx
local semaphore = require "ngx.semaphore"
local core = require "signalr.core"
local cosockets = require "signalr.transport.ngx"
local conn_mod = require "signalr.transport.persistent.conn"

local tonumber, tostring, pcall, setmetatable, pairs = tonumber, tostring, pcall, setmetatable, pairs
local max, min, floor = math.max, math.min, math.floor
local now = core.monotonic
local WRITE_DELAY, WRITE_BATCH = conn_mod.WRITE_DELAY, conn_mod.WRITE_BATCH

local _M = {}
local D = {}
D.__index = D

local TICK = 0.25 -- seconds between the background timer's passes

--- A driver for the client's options.
function _M.new(o)
    -- per connection: gen (its life: a new one ends the old threads),
    -- sema (wakes the writer), stop (ends the owner's wait)
    return setmetatable({ o = o, conns = setmetatable({}, { __mode = "k" }) }, D)
end

local function log(level, ...)
    ngx.log(level, "signalr persistent: ", ...)
end

-- The background pass: what the pool's poll does outside nginx.
local function tick(premature, pool, driver)
    if premature or pool.closed then
        if not pool.closed then pcall(pool.close, pool, 0) end
        return
    end
    pool:tick(now())
    driver:wake(pool)
end

--- The pool this driver moves the bytes of (its background timer
-- starts with the first connection).
function D:bind(pool)
    self.pool = pool
end

local function start_timer(self)
    if self.ticking then return end
    self.ticking = true
    local ok, err = ngx.timer.every(TICK, tick, self.pool, self)
    if not ok then log(ngx.ERR, "cannot start the background timer: ", err) end
end

-- The writer: what the WebSocket has ready goes out; then it sleeps until
-- a send wakes it (or a second passes).  Sends close together share a
-- write, as they do outside nginx: the first frame after a quiet spell
-- leaves at once (at the end of the handler's event cycle), and a write
-- smaller than WRITE_BATCH is followed by WRITE_DELAY of rest, so the
-- frames handlers send meanwhile leave together in the next one (one
-- system call, and one wake-up of the service's reader, for a burst).
local function writer(c, st, sock, gen)
    while st.gen == gen do
        local out = c:output() -- what handlers sent since: one message
        if out ~= "" then
            local n, err = sock:send(out)
            if st.gen ~= gen then return end
            if not n then
                c:fail("the connection broke while sending: " .. tostring(err), { code = "ECONNECT" })
                return
            end
            c:written(#out)
            if #out < WRITE_BATCH then ngx.sleep(WRITE_DELAY) end
        else
            st.sema:wait(1)
        end
    end
end

-- The reader: bytes from the service into the WebSocket, and what they
-- say handled.  Its read timeout is past server_timeout: the background
-- pass notices a silent service first, and the connection's owner then
-- ends this thread (no read times out, so nginx logs none).
local function reader(c, st, sock, gen)
    while st.gen == gen do
        local data, rerr = sock:receiveany(65536)
        if st.gen ~= gen then return end
        if data then
            c:input(data)
        elseif rerr ~= "timeout" then
            return c:fail(rerr == "closed" and "the service closed the connection"
                or ("the connection broke: " .. tostring(rerr)), { code = "ECONNECT" })
        end
    end
end

-- One connection's life: connect (TLS, SNI, certificate checks as nginx
-- is set up), then a reader and a writer thread until the connection
-- ends or is replaced (its gen changes); then both end and the socket
-- closes.
local function run(premature, c, st, gen, o)
    if premature or st.gen ~= gen then return end
    local scheme, hostport = c:endpoint()
    local host, port = hostport:match("^%[?([^%]]-)%]?:(%d+)$")
    if not host then host = hostport:gsub("^%[(.*)%]$", "%1") end
    local tls = scheme == "https"
    port = tonumber(port) or (tls and 443 or 80)
    local sock = ngx.socket.tcp()
    local ct = floor((o.connect_timeout or min(o.timeout, 5)) * 1000)
    sock:settimeouts(ct, floor(o.timeout * 1000), floor((o.server_timeout + 5) * 1000))
    -- nginx resolves names with its resolver directive; localhost is known
    local ok, err = sock:connect(host == "localhost" and "127.0.0.1" or host, port)
    if ok and tls then ok, err = sock:sslhandshake(nil, host, o.verify_tls ~= false) end
    if st.gen ~= gen then sock:close() return end
    if not ok then
        return c:fail("could not connect: " .. tostring(err), { code = "ECONNECT", sent = false })
    end
    c:connected(now())
    local r = ngx.thread.spawn(reader, c, st, sock, gen)
    local w = ngx.thread.spawn(writer, c, st, sock, gen)
    -- wait for the end: a failure anywhere changes the gen and posts stop
    st.stop = st.stop or semaphore.new()
    while st.gen == gen and not ngx.worker.exiting() do
        st.stop:wait(1)
    end
    local bye = st.farewell
    if bye and bye.gen == gen then
        -- closed for good with nothing left unwritten: the writer is idle
        -- and ends at once; the WebSocket close goes last, before the
        -- reader is killed (that closes the socket), and waits 1 s at most
        st.farewell = nil
        st.sema:post(1)
        ngx.thread.wait(w)
        sock:settimeout(1000)
        sock:send(bye.bytes)
    else
        -- a write still under way stops here: the connection's failure
        -- already counted its frames as not taken (failed, or queued for
        -- another connection), so none of them may reach the service now
        ngx.thread.kill(w)
    end
    ngx.thread.kill(r)
    sock:close()
end

--- Start a connection's I/O (the connection's start calls it).
function D:open(c)
    start_timer(self)
    local st = self.conns[c]
    if not st then
        st = { gen = 0, sema = semaphore.new() }
        self.conns[c] = st
    end
    st.gen = st.gen + 1
    st.farewell = nil
    local ok, err = ngx.timer.at(0, run, c, st, st.gen, self.o)
    if not ok then return nil, "cannot start a timer for the server connection: " .. tostring(err),
        { code = "ECONNECT", sent = false } end
    return true
end

--- The connection is dropped: its loops end at their next look;
-- `farewell` (the bytes of a WebSocket close, when it closes for good)
-- is written on its socket before that closes.
function D:drop(c, farewell)
    local st = self.conns[c]
    if not st then return end
    if farewell then st.farewell = { gen = st.gen, bytes = farewell } end
    st.gen = st.gen + 1
    st.sema:post(1)
    if st.stop then st.stop:post(1) end
end

--- Frames were put on c's WebSocket: wake its writer.
function D:kick(c)
    local st = self.conns[c]
    if st and st.sema:count() < 1 then st.sema:post(1) end
end

--- Requests finished outside a handler: report them (on_done).
function D.wake(_, pool)
    local ok, err = pcall(pool.report, pool)
    if not ok then log(ngx.WARN, "on_done raised: ", err) end
end

--- Wait inside a handler: for an acknowledgement (a semaphore), else a
-- short sleep.  Where nginx cannot yield this raises, and the caller
-- answers EPHASE first (can_wait).
function D.wait(_, wait, deadline, ack)
    local left = max(0.001, deadline - now())
    if ack then
        if not ack.sema then
            ack.sema = semaphore.new()
            ack.wake = function() ack.sema:post(1) end
            if ack.done then return end
        end
        ack.sema:wait(left)
        return
    end
    ngx.sleep(min(wait, left))
end

--- May the current phase wait?
D.can_wait = cosockets.usable

--- The pool closes: every connection's threads end.
function D:close()
    for c in pairs(self.conns) do self:drop(c) end
end

return _M
