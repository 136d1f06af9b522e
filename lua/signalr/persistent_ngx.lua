--- Persistent mode inside nginx: each server connection is a cosocket
-- owned by a timer of its own (a reader loop and a writer light thread),
-- and one background timer per client (`ngx.timer.every`) keeps the
-- connections alive: reconnects after the backoff, keep-alive pings,
-- dead-connection and handshake deadlines, queue expiry.  Handler calls
-- only put frames on the connection's WebSocket (memory) and wake its
-- writer, so a send never blocks the worker and works in every phase;
-- acknowledged calls wait (on a semaphore) where nginx lets a handler
-- yield.  One set of connections per worker and client: make the client
-- once per worker (e.g. in init_worker_by_lua or a module's upvalue).
-- @module signalr.persistent_ngx
local ngx = ngx
local semaphore = require "ngx.semaphore"
local core = require "signalr.core"

local tonumber, pcall, max, min, floor = tonumber, pcall, math.max, math.min, math.floor
local now = core.monotonic

local _M = {}
local D = {}
D.__index = D

-- Phases where a handler may wait (yield).
local YIELDS = { rewrite = true, access = true, content = true, timer = true,
                 ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
                 preread = true }

local TICK = 0.25 -- seconds between the background timer's passes

--- A driver for the client's options.
function _M.new(o)
    return setmetatable({ o = o }, D)
end

local function log(level, ...)
    ngx.log(level, "signalr persistent: ", ...)
end

-- The background pass: what persistent.lua's poll does outside nginx.
local function tick(premature, pool)
    if premature or pool.closed then
        if not pool.closed then pcall(pool.close, pool, 0) end
        return
    end
    local t = now()
    for _, hc in pairs(pool.hubs) do
        for _, c in ipairs(hc.conns) do
            if c.state == "backoff" then
                if t >= c.retry_at then c:start(t) end
            elseif c.ws then
                c:timers(t)
            end
        end
        pool:_expire(hc, t)
    end
    pool.driver:_wake()
end

function D:_attach(pool)
    if self.pool then return true end
    self.pool = pool
    local ok, err = ngx.timer.every(TICK, tick, pool)
    if not ok then log(ngx.ERR, "cannot start the background timer: ", err) end
    return ok, err
end

-- The writer: what the WebSocket has ready goes out; then it sleeps until
-- a send wakes it (or a second passes).
local function writer(c, sock, gen)
    while c.gen == gen do
        local ws = c.ws
        if ws then c:_seal() end -- what handlers sent since: one message
        local out = ws and ws:output() or ""
        if out ~= "" then
            local n, err = sock:send(out)
            if c.gen ~= gen then return end
            if not n then
                c:fail("the connection broke while sending: " .. tostring(err), { code = "ECONNECT" })
                return
            end
            ws:written(#out)
        else
            c.sema:wait(1)
        end
    end
end

-- The reader: bytes from the service into the WebSocket, and what they
-- say handled.  Its read timeout is past server_timeout: the background
-- pass notices a silent service first, and the connection's owner then
-- ends this thread (no read times out, so nginx logs none).
local function reader(c, sock, gen)
    while c.gen == gen do
        local data, rerr = sock:receiveany(65536)
        if c.gen ~= gen then return end
        if data then
            local okin, msg, d = c.ws:input(data)
            if not okin then return c:fail(msg, d) end
            c:pump(now())
        elseif rerr ~= "timeout" then
            return c:fail(rerr == "closed" and "the service closed the connection"
                or ("the connection broke: " .. tostring(rerr)), { code = "ECONNECT" })
        end
    end
end

-- One connection's life: connect (TLS, SNI, certificate checks as nginx
-- is set up), then a reader and a writer thread until the connection
-- ends or is replaced (c.gen changes); then both end and the socket
-- closes.
local function run(premature, c, gen)
    if premature or c.gen ~= gen then return end
    local o, target = c.pool.o, c.target
    local host, port = target.hostport:match("^%[?([^%]]-)%]?:(%d+)$")
    if not host then host = target.hostport:gsub("^%[(.*)%]$", "%1") end
    local tls = target.scheme == "https"
    port = tonumber(port) or (tls and 443 or 80)
    local sock = ngx.socket.tcp()
    local ct = floor((o.connect_timeout or min(o.timeout, 5)) * 1000)
    sock:settimeouts(ct, floor(o.timeout * 1000), floor((o.server_timeout + 5) * 1000))
    -- nginx resolves names with its resolver directive; localhost is known
    local ok, err = sock:connect(host == "localhost" and "127.0.0.1" or host, port)
    if ok and tls then ok, err = sock:sslhandshake(nil, host, o.verify_tls ~= false) end
    if c.gen ~= gen then sock:close() return end
    if not ok then
        return c:fail("could not connect: " .. tostring(err), { code = "ECONNECT", sent = false })
    end
    local t = now()
    c.state = "handshaking"
    c.last_recv, c.last_send = t, t
    local r = ngx.thread.spawn(reader, c, sock, gen)
    local w = ngx.thread.spawn(writer, c, sock, gen)
    -- wait for the end: a failure anywhere changes c.gen and posts stop
    c.stop = c.stop or semaphore.new()
    while c.gen == gen and not ngx.worker.exiting() do
        c.stop:wait(1)
    end
    ngx.thread.kill(r)
    c.sema:post(1)
    ngx.thread.wait(w)
    sock:close()
end

--- Start a connection's I/O (persistent.lua's Conn:start calls it).
function D:_open_io(c)
    self:_attach(c.pool)
    c.gen = (c.gen or 0) + 1
    c.sema = c.sema or semaphore.new()
    local ok, err = ngx.timer.at(0, run, c, c.gen)
    if not ok then return nil, "cannot start a timer for the server connection: " .. tostring(err),
        { code = "ECONNECT", sent = false } end
    return true
end

--- The connection is dropped: its loops end at their next look.
function D._drop_io(_, c)
    c.gen = (c.gen or 0) + 1
    if c.sema then c.sema:post(1) end
    if c.stop then c.stop:post(1) end
end

--- Frames were put on c's WebSocket: wake its writer.
function D._kick(_, c)
    if c.sema and c.sema:count() < 1 then c.sema:post(1) end
end

--- Requests finished outside a handler: report them (on_done).
function D:_wake()
    local client = self.pool and self.pool.client
    if client and #client._ready > 0 then
        local ok, err = pcall(client._report, client)
        if not ok then log(ngx.WARN, "on_done raised: ", err) end
    end
end

--- Wait inside a handler: for an acknowledgement (a semaphore), else a
-- short sleep.  Where nginx cannot yield this raises, and the caller
-- answers EPHASE first (can_wait).
function D._wait(_, _, wait, deadline, ack)
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
function D.can_wait()
    return YIELDS[ngx.get_phase()] == true
end

function D._close(_, pool)
    for _, hc in pairs(pool.hubs) do
        for _, c in ipairs(hc.conns) do D._drop_io(nil, c) end
    end
end

return _M
