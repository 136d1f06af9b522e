--- One server connection: a WebSocket to the service speaking its
-- service protocol (MessagePack frames written and read by the C core).
-- It opens with a handshake that must answer in time, sends keep-alive
-- pings after a quiet spell, declares the service dead after its
-- silence, reconnects with capped exponential backoff and jitter, and
-- batches frames into WebSocket messages, remembering each data frame
-- until the network took all of its bytes (so a lost connection gives
-- back what never left).
--
-- It reports upward only through the callbacks it is made with (the
-- pool's): `opened`, `failed`, `ack`, `message`.  Its bytes move over a
-- libcurl connect-only socket here, or through an `io` driver (inside
-- nginx, signalr.transport.persistent.ngx) with `open(conn)`,
-- `drop(conn)` and `kick(conn)`.
-- @module signalr.transport.persistent.conn
local core = require "signalr.core"

local floor, min, max, random = math.floor, math.min, math.max, math.random
local concat, tostring, setmetatable, ipairs, pcall = table.concat, tostring, setmetatable, ipairs, pcall
local now = core.monotonic
local SP = core.sp

local _M = {}

local Conn = {}
Conn.__index = Conn
_M.Conn = Conn

-- Sends close together share a write: the first after WRITE_DELAY
-- seconds of quiet goes at once, later ones when WRITE_BATCH bytes wait
-- (or at the next poll).  The nginx driver follows the same rule.
local WRITE_DELAY, WRITE_BATCH = 0.001, 16 * 1024
_M.WRITE_DELAY, _M.WRITE_BATCH = WRITE_DELAY, WRITE_BATCH

--- A connection (idle until `start`).
-- @tparam table spec `o` (the options: timeouts, `timeout` for requeued
--   frames, `max_message_size`, connect settings), `type` (the handshake's
--   connection type, `core.sp.WEAK_CONNECTION` or `DEFAULT_CONNECTION`),
--   `target` (a function: `{ scheme, hostport, path, headers }` | nil,
--   msg, details for each attempt), `events` (`opened(conn)`,
--   `failed(conn, frames, unconfirmed, msg, details, was_open)`,
--   `ack(conn, msg)`, `message(conn, msg)`), `io` (nil: libcurl)
function _M.new(spec)
    return setmetatable({ o = spec.o, type = spec.type, target = spec.target,
                          events = spec.events, io = spec.io, state = "idle", attempt = 0,
                          retry_at = 0, unconfirmed = 0 }, Conn)
end

-- libcurl: start the socket's connect (finished by step).
local function open_sock(c)
    local o = c.o
    local base = c.url.scheme .. "://" .. c.url.hostport .. "/"
    local sock, msg, d = core.sock(base, floor((o.connect_timeout or min(o.timeout, 5)) * 1000),
        not o.verify_tls, o.ca_file, o.proxy)
    if not sock then return nil, msg, d end
    c.sock = sock
    return true
end

--- Open (again): a new WebSocket with the handshake queued.
function Conn:start(t)
    self.started = t
    self.state = "connecting"
    self.deadline = t + self.o.handshake_timeout
    local target, msg, d = self.target()
    if target then
        local ws
        ws, msg, d = core.ws(target.hostport, target.path, target.headers)
        if ws then
            -- the byte count of what the network took tells which frames
            -- left: the upgrade request comes first
            self.total, self.mark_head, self.mark_n = ws:unsent(), 1, 0
            -- per sealed batch that holds data frames: where it ends and
            -- where its frames start on the wire, its frames, their calls,
            -- how many of them are data frames
            self.mark_end, self.mark_start, self.mark_frames = {}, {}, {}
            self.mark_whats, self.mark_count = {}, {}
            self.ob, self.ob_what, self.ob_n, self.ob_bytes, self.ob_data = {}, {}, 0, 0, 0
            self.unsent = 0 -- ws:unsent() as last read (after each write)
            self.ws, self.url = ws, target
            self:queue(core.sp_handshake(self.type))
            self:seal()
            local ok
            if self.io then ok, msg, d = self.io:open(self) else ok, msg, d = open_sock(self) end
            if ok then return true end
        end
    end
    self:fail(msg, d)
    return false
end

--- Where the connection goes: scheme, host and port (from its target).
function Conn:endpoint()
    return self.url.scheme, self.url.hostport
end

-- A message of n bytes on the wire (a masked client frame).
local function wire(n)
    return n + (n < 126 and 6 or n < 65536 and 8 or 14)
end

--- Put a frame in the batch (`what`: the call of a data frame).
function Conn:queue(frame, what)
    local n = self.ob_n + 1
    self.ob_n = n
    self.ob[n], self.ob_what[n] = frame, what or false
    self.ob_bytes = self.ob_bytes + #frame
    if what then self.ob_data = self.ob_data + 1 end
    return true
end

--- The batch onto the WebSocket as one message (the service reads a
-- continuous stream: a message may hold several frames); a batch with
-- data frames is remembered whole (frames, their calls, where they start
-- on the wire) until the network took all of it, so the frames it did
-- not take can be told apart later, and no work is done per frame here.
function Conn:seal()
    local n = self.ob_n
    if n == 0 or not self.ws then return true end
    local ob, ow = self.ob, self.ob_what
    local data = n == 1 and ob[1] or concat(ob, "", 1, n)
    local ws = self.ws
    local ok, msg, d = ws:send(data)
    if not ok then return nil, msg, d end
    local start = self.total + wire(#data) - #data
    self.total = start + #data
    if self.ob_data > 0 then
        local m = self.mark_n + 1
        self.mark_n = m
        self.mark_end[m], self.mark_start[m], self.mark_frames[m] = self.total, start, ob
        self.mark_whats[m], self.mark_count[m] = ow, self.ob_data
        self.ob, self.ob_what = {}, {}
    else
        for i = 1, n do ob[i], ow[i] = nil, nil end
    end
    self.ob_n, self.ob_bytes, self.ob_data = 0, 0, 0
    self.unsent = ws:unsent()
    self.last_send = now()
    return true
end

-- Calls over the data frames of batch m whose last byte is past `done`
-- (not taken by the network): each(frame, what).
local function frames_after(self, m, done, each)
    local pos, frames, whats = self.mark_start[m], self.mark_frames[m], self.mark_whats[m]
    for i = 1, #frames do
        pos = pos + #frames[i]
        if pos > done and whats[i] then each(frames[i], whats[i]) end
    end
end

--- Messages handed to the connection that the network has not taken.
function Conn:untaken()
    if not self.ws then return 0 end
    self:taken()
    local n = self.ob_data
    local h, m = self.mark_head, self.mark_n
    if m and h <= m then
        frames_after(self, h, self.ws:taken(), function() n = n + 1 end)
        local count = self.mark_count
        for i = h + 1, m do n = n + count[i] end
    end
    return n
end

--- Bytes handed to the connection that the network has not taken.
function Conn:unwritten()
    if not self.ws then return 0 end
    return self.ws:unsent() + self.ob_bytes
end

--- Forget the frames the network took.
function Conn:taken()
    local h, n = self.mark_head, self.mark_n
    if not n or h > n then return end
    local ends = self.mark_end
    local done = self.ws:taken()
    if ends[h] > done then return end
    local starts, frames, whats, count = self.mark_start, self.mark_frames, self.mark_whats, self.mark_count
    while h <= n and ends[h] <= done do
        ends[h], starts[h], frames[h], whats[h], count[h] = nil, nil, nil, nil, nil
        h = h + 1
    end
    if h > n then h, self.mark_n = 1, 0 end
    self.mark_head = h
end

-- Close the socket and the WebSocket (no handshake: the link is gone).
local function drop(self)
    if self.sock then self.sock:close() end
    if self.ws then self.ws:free() end
    self.sock, self.ws, self.want_write = nil, nil, nil
    if self.io then self.io:drop(self, self.farewell) end
    self.farewell = nil
end

-- The data frames the network never took (none of their bytes reached
-- the service whole), to go again on another connection.
local function untaken_frames(self, t)
    local back = {}
    self:taken()
    local deadline = t + self.o.timeout
    local function add(frame, what)
        back[#back + 1] = { frame = frame, what = what, deadline = deadline }
    end
    local done = self.ws:taken()
    for m = self.mark_head, self.mark_n do frames_after(self, m, done, add) end
    for i = 1, self.ob_n do
        if self.ob_what[i] then add(self.ob[i], self.ob_what[i]) end
    end
    self.ob, self.ob_what, self.ob_n, self.ob_bytes, self.ob_data = {}, {}, 0, 0, 0
    self.mark_n = nil
    return back
end

--- The connection failed or was lost: its owner learns it (with the
-- frames to send again and the messages it carried since the last
-- confirmation), then a reconnect after the backoff (an open connection
-- that drops is retried at once; a failed attempt waits out 2^n s, 60 s
-- at most, plus up to 1 s of jitter, from its start).
function Conn:fail(msg, details)
    local t = now()
    local was_open = self.state == "open"
    local back = (self.ws and self.mark_n) and untaken_frames(self, t) or nil
    local unconfirmed = self.unconfirmed
    self.unconfirmed = 0
    drop(self)
    self.error = msg
    self.error_details = details
    self.state = "backoff"
    self.events.failed(self, back, unconfirmed, msg, details, was_open)
    if self.closing then self.state = "closed" return end
    if was_open then
        self.attempt = 0
        self.retry_at = t
    else
        local n = self.attempt
        self.attempt = n + 1
        self.retry_at = (self.started or t) + (n <= 5 and 2 ^ n or 60) + random() -- jitter
    end
    local log = self.o.log
    if log then
        log("warn", "server connection " .. (was_open and "lost" or "failed") .. ": " .. tostring(msg)
            .. "; reconnecting in " .. string.format("%.1f", max(0, self.retry_at - t)) .. " s")
    end
end

--- Handle what the service sent: the handshake's answer, acks, the
-- service's error or close of this connection; pings need no answer;
-- anything else goes to the `message` callback.
function Conn:receive(msgs, t)
    local ev = self.events
    for i = 1, #msgs do
        local m = msgs[i]
        local ty = m.type
        if self.state ~= "open" then
            if ty ~= SP.HANDSHAKE_RESPONSE then
                return self:fail("the service sent message type " .. ty
                    .. " before its handshake answer", { code = "EREPLY" })
            end
            if m.error and m.error ~= "" then
                return self:fail("the service refused the handshake: " .. m.error,
                    { code = "EHANDSHAKE" })
            end
            self.state = "open"
            self.attempt = 0
            self.error, self.error_details = nil, nil
            ev.opened(self)
        elseif ty == SP.ACK then
            ev.ack(self, m)
        elseif ty == SP.SERVICE_ERROR then
            -- the service stops taking messages on this connection
            return self:fail("the service reported an error: " .. tostring(m.message),
                { code = "ECONNECT" })
        elseif ty == SP.CLOSE_CONNECTION and m.connection_id == nil then
            return self:fail("the service closed the connection", { code = "ECONNECT" })
        elseif ty ~= SP.PING then
            ev.message(self, m)
        end
    end
    self.last_recv = t
end

--- Progress the connection (libcurl): connect, move bytes, read, timers.
function Conn:step(t)
    local st = self.state
    if st == "backoff" then
        if t >= self.retry_at then self:start(t) end
        return
    end
    if st == "idle" or st == "closed" then return end
    local sock = self.sock
    if st == "connecting" then
        local ok, msg, d = sock:connect()
        if ok == nil then return self:fail(msg, d) end
        if not ok then
            if t > self.deadline then
                return self:fail("no connection within " .. self.o.handshake_timeout .. " s",
                    { code = "ETIMEDOUT", sent = false })
            end
            return
        end
        self:connected(t)
    end
    self:pump(t)
end

--- The transport is up (the socket connected): the handshake is next.
function Conn:connected(t)
    self.state = "handshaking"
    self.last_recv, self.last_send = t, t
end

--- Without socket I/O (a driver moves the bytes): reconnect when the
-- backoff is over, else the deadlines.
function Conn:tick(t)
    if self.state == "backoff" then
        if t >= self.retry_at then self:start(t) end
    elseif self.ws then
        self:timers(t)
    end
end

--- Move bytes both ways and handle what came; then the timers.
function Conn:pump(t)
    local ws = self.ws
    if not ws then return end
    self:seal()
    local open = true
    if self.sock then
        local ok, ww_or_msg, d = self.sock:pump(ws)
        if ok == nil then return self:fail(ww_or_msg, d) end
        open = ok
        if ok then self.want_write = ww_or_msg end
    end
    self.unsent = ws:unsent()
    self:taken()
    -- what came before a close is read first (a refusal, then the close)
    local msgs, msg, d = ws:messages(self.o.max_message_size)
    if #msgs > 0 then self:receive(msgs, t) end
    if self.ws ~= ws then return end -- what came ended the connection
    if msg then return self:fail(msg, d) end
    if not open then
        return self:fail("the service closed the connection", { code = "ECONNECT" })
    end
    self:timers(t)
end

--- Bytes from the service (a driver's read): into the WebSocket, then
-- handled.
function Conn:input(data)
    local ok, msg, d = self.ws:input(data)
    if not ok then return self:fail(msg, d) end
    self:pump(now())
end

--- What the WebSocket has ready to write (a driver's write; the batch
-- is sealed first), "" for nothing; `written(n)` after n bytes went.
function Conn:output()
    local ws = self.ws
    if not ws then return "" end
    self:seal()
    return ws:output()
end

function Conn:written(n)
    local ws = self.ws
    ws:written(n)
    self.unsent = ws:unsent()
end

--- Deadlines: the handshake's, the service's silence, our keep-alive.
function Conn:timers(t)
    local o = self.o
    if not self.ws then return end
    if self.state ~= "open" then
        if t > self.deadline then
            self:fail("no handshake answer within " .. o.handshake_timeout .. " s",
                { code = "ETIMEDOUT", sent = false })
        end
        return
    end
    if t - (self.last_recv or t) > o.server_timeout then
        return self:fail("nothing from the service for " .. o.server_timeout
            .. " s: the connection is dead", { code = "ETIMEDOUT" })
    end
    if t - (self.last_send or 0) >= o.keepalive_interval then
        self:send(core.sp_ping(), t)
        self.last_send = t -- once per interval, even before its batch is sealed
    end
end

--- Hand a frame to the connection (it goes out at once where it can);
-- `what` names the call of a data frame (counted for confirm()).
-- The frame joins the batch (as `queue` puts it) without a call.
function Conn:send(frame, t, what)
    local n = self.ob_n
    local idle = n == 0 and self.unsent == 0
    n = n + 1
    self.ob_n = n
    self.ob[n], self.ob_what[n] = frame, what or false
    local bytes = self.ob_bytes + #frame
    self.ob_bytes = bytes
    if what then
        self.ob_data = self.ob_data + 1
        self.unconfirmed = self.unconfirmed + 1
    end
    if self.io then
        self.io:kick(self)
    elseif self.sock and not self.want_write and self.state ~= "connecting" then
        -- Written at once when the connection was idle for a while or
        -- WRITE_BATCH bytes are waiting; a frame sent right after another
        -- joins it and leaves with the next send, poll, step, flush or
        -- close (timeout() says so): one system call for a burst.  A
        -- socket that is full already is left for poll to drain.  (The
        -- batch's seal stamps last_send for the keep-alive.)
        if idle then
            t = t or now()
            if t - (self.last_write or 0) < WRITE_DELAY then return true end
        elseif bytes < WRITE_BATCH then
            return true
        end
        self.last_write = t or now()
        self:seal()
        local ws = self.ws
        local r, ww = self.sock:write(ws)
        -- a broken socket: the next step finds it, and fail() sends
        -- again what the network did not take
        if r then self.want_write = ww end
        self.unsent = ws:unsent()
    end
    return true
end

--- When this connection next needs a look (seconds from t), or nil.
function Conn:due(t)
    local st = self.state
    if st == "backoff" then return max(0, self.retry_at - t) end
    if st == "idle" or st == "closed" then return nil end
    local o = self.o
    local d = self.deadline and (self.deadline - t) or nil
    if st == "connecting" then
        local s = self.sock and self.sock:timeout()
        if s then d = d and min(d, s) or s end
        return max(0, min(d or 1, 1))
    end
    if st == "open" then
        d = min(o.server_timeout - (t - (self.last_recv or t)),
                o.keepalive_interval - (t - (self.last_send or t)))
        -- frames waiting for their batch: poll is due now
        if not self.want_write and self.ws and self:unwritten() > 0 then d = 0 end
    end
    return max(0, d or 1)
end

--- Append the socket's descriptors and their interest to out.
function Conn:fds(out)
    local sock = self.sock
    if not sock then return out end
    for _, f in ipairs(sock:fds()) do
        out[#out + 1] = { fd = f.fd, read = f.read, write = f.write or self.want_write or false }
    end
    return out
end

--- Close for good: a WebSocket close when open (written at once over
-- libcurl; inside nginx the driver writes it last on the connection's
-- own socket, when nothing is left before it: frames the network had not
-- taken are failed here, and must not reach the service after that),
-- then the failure `msg`, `details` for what it still held.
function Conn:close(msg, details)
    self.closing = true
    local ws = self.ws
    if ws and self.state == "open" then
        if not self.io then
            ws:close(1000, "")
            if self.sock then pcall(self.sock.pump, self.sock, ws) end
        elseif ws:unsent() == 0 then
            ws:close(1000, "")
            self.farewell = ws:output()
        end
    end
    self:fail(msg, details)
    self.state = "closed"
end

--- The connection's state for status pages: state, attempt, last error.
function Conn:status()
    return { state = self.state, attempt = self.attempt, last_error = self.error }
end

return _M
