--- Persistent mode: messages go over "server connections", WebSockets
-- to the service that speak its service protocol (MessagePack frames),
-- instead of one HTTP request each.  The C core writes and reads the
-- frames and the WebSocket framing; this module keeps the connections
-- alive (handshake with a timeout, keep-alive pings, dead-connection
-- detection, reconnects with capped exponential backoff and jitter),
-- holds what is sent while no connection is up in a bounded queue, and
-- matches acknowledgements to the calls that wait for them.
--
-- Outside nginx the sockets are libcurl's (connect-only), driven from
-- `client:poll()`; inside nginx `signalr.persistent_ngx` drives the same
-- connections over cosockets from a background timer.
-- @module signalr.persistent
local core = require "signalr.core"

local type, pairs, ipairs, tostring, setmetatable, pcall =
    type, pairs, ipairs, tostring, setmetatable, pcall
local floor, min, max, random = math.floor, math.min, math.max, math.random
local lower, concat = string.lower, table.concat
local now = core.monotonic

local _M = {}

-- message types of the service protocol (signalr.h, SIGNALR_SP_*)
local T = {
    HANDSHAKE_RESPONSE = 2, PING = 3, CLOSE = 5, MULTI_CONNECTION = 7, USER = 8,
    MULTI_USER = 9, BROADCAST = 10, GROUP = 13, MULTI_GROUP = 14, ERROR = 15,
    ACK = 20, EVENT = 22,
}
_M.T = T
local WEAK = 2 -- a management connection: sends only, carries no clients

-- Sends: the message type, the id parameter, the list parameter.
local DATA = {
    broadcast = { 10, nil, "excluded" },
    to_user = { 8, "user" },
    to_group = { 13, "group", "excluded" },
    to_connection = { 7, nil, "connection" },
    to_users = { 9, nil, "users" },
    to_groups = { 14, nil, "groups" },
    to_connections = { 7, nil, "connections" },
}
-- Acknowledged operations: type, id parameter, group (true: required,
-- "all": absent means every group), a check (answers a boolean).
local ACKED = {
    add_connection_to_group = { 18, "connection", true },
    remove_connection_from_group = { 19, "connection", true },
    remove_connection_from_all_groups = { 19, "connection", "all" },
    add_user_to_group = { 26, "user", true },
    remove_user_from_group = { 27, "user", true },
    remove_user_from_all_groups = { 27, "user", "all" },
    user_in_group = { 21, "user", true, true },
    group_exists = { 23, "group", false, true },
    connection_exists = { 24, "connection", false, true },
    user_exists = { 25, "user", false, true },
}
_M.DATA, _M.ACKED = DATA, ACKED
-- What the name checks call each parameter.
local WHAT = { user = "user id", connection = "connection id", group = "group",
               users = "user id", connections = "connection id", groups = "group",
               excluded = "connection id" }

-- Bytes a connection may hold that the network has not taken: past it
-- a send answers EQUEUEFULL (memory stays bounded when the service or
-- the network is slower than the sender).
local MAX_UNWRITTEN = 64 * 1024 * 1024
_M.MAX_UNWRITTEN = MAX_UNWRITTEN
-- Sends close together share a write: the first after WRITE_DELAY
-- seconds of quiet goes at once, later ones when WRITE_BATCH bytes wait
-- (or at the next poll).
local WRITE_DELAY, WRITE_BATCH = 0.001, 16 * 1024

_M.DEFAULTS = {
    connection_count = 1, max_message_size = 16 * 1024 * 1024,
    handshake_timeout = 15, keepalive_interval = 5, server_timeout = 30,
    ack_timeout = 10,
}

local guid = core.guid -- random bytes from OpenSSL (the ids must not repeat)
_M.guid = guid

local Pool, Conn = {}, {}
Pool.__index, Conn.__index = Pool, Conn
_M.Pool, _M.Conn = Pool, Conn

--- The persistent half of a client (made by signalr.new).
-- @tparam table client the signalr client
-- @tparam table o its options, defaults filled in
-- @tparam[opt] table driver the I/O driver (nil: libcurl's)
function _M.new(client, o, driver)
    local json_p, mp_p = 0, 0
    for _, p in ipairs(o.protocols or { "json", "messagepack" }) do
        if p == "json" then json_p = 1 elseif p == "messagepack" then mp_p = 2 end
    end
    local protocols = json_p + mp_p
    local p = setmetatable({
        client = client, core = client._core, o = o, hubs = {},
        protocols = protocols, driver = driver,
        server_id = (os.getenv("HOSTNAME") or "lua"):gsub("[^%w%-%.]", "") .. "_"
            .. guid():gsub("%-", ""),
        fds = {},
        -- sent: handed to a connection; requeued: unwritten when their
        -- connection was lost, sent again; expired: failed in the queue
        stats = { sent = 0, queued = 0, requeued = 0, expired = 0 },
        -- data messages on connections lost since the last confirm()
        lost = 0,
    }, Pool)
    return p
end

-- ===== connections =====

local function new_conn(pool, hc)
    return setmetatable({ pool = pool, hc = hc, state = "idle", attempt = 0,
                          retry_at = 0, unconfirmed = 0 }, Conn)
end

-- The hub's connections, opened on first use.
function Pool:hub(name)
    local key = lower(name)
    local hc = self.hubs[key]
    if not hc then
        hc = { name = name, conns = {}, queue = {}, acks = {}, next_ack = 0, rr = 0,
               waiting = 0 }
        for i = 1, self.o.connection_count do hc.conns[i] = new_conn(self, hc) end
        self.hubs[key] = hc
        for _, c in ipairs(hc.conns) do c:start(now()) end
    end
    return hc
end

-- The request line, headers and token of a new connection: url, headers.
function Conn:_target()
    local pool = self.pool
    local client = pool.client
    local want_token = client._auth == nil
    local url, tok, d = pool.core:server_token(self.hc.name, pool.server_id, want_token,
        pool.o.token_lifetime)
    if not url then return nil, tok, d end
    if not want_token then
        -- Microsoft Entra ID: the identity's own token is the bearer
        local t, msg, det = client:_token()
        if not t then return nil, msg, det end
        tok = t
    end
    local scheme, hostport, path = url:match("^(https?)://([^/]+)(/.*)$")
    local headers = "Authorization: Bearer " .. tok .. "\r\n"
        .. "X-Requested-With: XMLHttpRequest\r\n"
        .. "Asrs-User-Agent: " .. (pool.o.product_info or "lua-signalr") .. "\r\n"
        .. "X-ASRS-Server-Id: " .. pool.server_id .. "\r\n"
    return { scheme = scheme, hostport = hostport, path = path .. "&cid=" .. guid(),
             headers = headers }
end

--- Open (again): a new WebSocket with the handshake queued.
function Conn:start(t)
    self.started = t
    self.state = "connecting"
    self.deadline = t + self.pool.o.handshake_timeout
    local target, msg, d = self:_target()
    if target then
        local ws
        ws, msg, d = core.ws(target.hostport, target.path, target.headers)
        if ws then
            -- the byte count of what the network took tells which frames
            -- left: the upgrade request comes first
            self.total, self.mark_head, self.mark_n = ws:unsent(), 1, 0
            self.mark_end, self.mark_frame, self.mark_what = {}, {}, {}
            self.ob, self.ob_what, self.ob_n, self.ob_bytes = {}, {}, 0, 0
            self.ws, self.target = ws, target
            self:_queue(core.sp_handshake(WEAK))
            self:_seal()
            local ok
            ok, msg, d = (self.pool.driver or self):_open_io(self)
            if ok then return true end
        end
    end
    self:fail(msg, d)
    return false
end

-- libcurl: start the socket's connect (finished by step).
function Conn._open_io(_, c)
    local o = c.pool.o
    local base = c.target.scheme .. "://" .. c.target.hostport .. "/"
    local sock, msg, d = core.sock(base, floor((o.connect_timeout or min(o.timeout, 5)) * 1000),
        not o.verify_tls, o.ca_file)
    if not sock then return nil, msg, d end
    c.sock = sock
    return true
end

-- A message of n bytes on the wire (a masked client frame).
local function wire(n)
    return n + (n < 126 and 6 or n < 65536 and 8 or 14)
end

-- Frames wait in a batch; _seal makes the batch one WebSocket message
-- (the service reads a continuous stream: a message may hold several
-- frames), fewer and larger messages than one a frame.
function Conn:_queue(frame, what)
    local n = self.ob_n + 1
    self.ob_n = n
    self.ob[n], self.ob_what[n] = frame, what or false
    self.ob_bytes = self.ob_bytes + #frame
    return true
end

-- The batch onto the WebSocket; each data frame is remembered (with the
-- call's name) until the network took all of its bytes.
function Conn:_seal()
    local n = self.ob_n
    if n == 0 or not self.ws then return true end
    local ob, ow = self.ob, self.ob_what
    local data = n == 1 and ob[1] or concat(ob, "", 1, n)
    local ok, msg, d = self.ws:send(data)
    if not ok then return nil, msg, d end
    local pos = self.total + wire(#data) - #data
    for i = 1, n do
        pos = pos + #ob[i]
        if ow[i] then
            local m = self.mark_n + 1
            self.mark_n = m
            self.mark_end[m], self.mark_frame[m], self.mark_what[m] = pos, ob[i], ow[i]
        end
        ob[i], ow[i] = nil, nil
    end
    self.total = pos
    self.ob_n, self.ob_bytes = 0, 0
    return true
end

-- Messages handed to the connection that the network has not taken.
function Conn:untaken()
    if not self.ws then return 0 end
    self:_taken()
    local n = self.mark_n - self.mark_head + 1
    if n < 0 then n = 0 end
    for i = 1, self.ob_n do
        if self.ob_what[i] then n = n + 1 end
    end
    return n
end

-- Bytes handed to the connection that the network has not taken.
function Conn:unwritten()
    if not self.ws then return 0 end
    return self.ws:unsent() + self.ob_bytes
end

-- Forget the frames the network took.
function Conn:_taken()
    local h, n = self.mark_head, self.mark_n
    if not n or h > n then return end
    local done = self.ws:taken()
    local ends, frames, whats = self.mark_end, self.mark_frame, self.mark_what
    while h <= n and ends[h] <= done do
        ends[h], frames[h], whats[h] = nil, nil, nil
        h = h + 1
    end
    if h > n then h, self.mark_n = 1, 0 end
    self.mark_head = h
end

-- Close the socket and the WebSocket (no handshake: the link is gone).
function Conn:_drop()
    if self.sock then self.sock:close() end
    if self.ws then self.ws:free() end
    self.sock, self.ws, self.want_write = nil, nil, nil
    if self.pool.driver then self.pool.driver:_drop_io(self) end
end

--- The connection failed or was lost: every ack it owed fails, then a
-- reconnect after the backoff (an open connection that drops is retried
-- at once; a failed attempt waits out 2^n s, 60 s at most, plus up to
-- 1 s of jitter, from its start).
function Conn:fail(msg, details)
    local t = now()
    local was_open = self.state == "open"
    if self.ws and self.mark_n then
        -- frames the network never took go again on the next connection
        -- (none of their bytes reached the service whole)
        self:_taken()
        local q, back = self.hc.queue, {}
        for i = self.mark_head, self.mark_n do
            back[#back + 1] = { frame = self.mark_frame[i], what = self.mark_what[i],
                                deadline = t + self.pool.o.timeout }
        end
        for i = 1, self.ob_n do
            if self.ob_what[i] then
                back[#back + 1] = { frame = self.ob[i], what = self.ob_what[i],
                                    deadline = t + self.pool.o.timeout }
            end
        end
        self.ob, self.ob_what, self.ob_n, self.ob_bytes = {}, {}, 0, 0
        if #back > 0 then
            for i = 1, #q do back[#back + 1] = q[i] end
            self.hc.queue = back
            self.pool.stats.requeued = self.pool.stats.requeued + (#back - #q)
        end
        self.mark_n = nil
    end
    -- what it carried since its last confirmation may be lost (taken by
    -- the network, never processed): confirm() reports it once
    self.pool.lost = self.pool.lost + self.unconfirmed
    self.unconfirmed = 0
    self:_drop()
    self.error = msg
    self.error_details = details
    self.state = "backoff"
    for id, a in pairs(self.hc.acks) do
        if a.conn == self then
            self.hc.acks[id] = nil
            self.pool:_settle(a, nil, "the server connection was lost before the service answered ("
                .. tostring(msg) .. ")", { code = "ECONNECT", sent = true })
        end
    end
    if self.pool.closing then self.state = "closed" return end
    if was_open then
        self.attempt = 0
        self.retry_at = t
    else
        local n = self.attempt
        self.attempt = n + 1
        self.retry_at = (self.started or t) + (n <= 5 and 2 ^ n or 60) + random() -- jitter
    end
end

--- Handle what the service sent.
function Conn:_receive(msgs, t)
    for i = 1, #msgs do
        local m = msgs[i]
        local ty = m.type
        if self.state ~= "open" then
            if ty ~= T.HANDSHAKE_RESPONSE then
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
            self.pool:_flush_queue(self.hc)
        elseif ty == T.ACK then
            local a = self.hc.acks[m.ack_id]
            if a then
                self.hc.acks[m.ack_id] = nil
                self.pool:_ack(a, m)
            end
        elseif ty == T.ERROR then
            -- the service stops taking messages on this connection
            return self:fail("the service reported an error: " .. tostring(m.message),
                { code = "ECONNECT" })
        elseif ty == T.CLOSE and m.connection_id == nil then
            return self:fail("the service closed the connection", { code = "ECONNECT" })
        end
        -- pings, events and the rest need no answer from a send-only server
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
                return self:fail("no connection within " .. self.pool.o.handshake_timeout .. " s",
                    { code = "ETIMEDOUT", sent = false })
            end
            return
        end
        self.state = "handshaking"
        self.last_recv, self.last_send = t, t
    end
    self:pump(t)
end

--- Move bytes both ways and handle what came; then the timers.
function Conn:pump(t)
    local ws = self.ws
    if not ws then return end
    self:_seal()
    local open = true
    if self.sock then
        local ok, ww_or_msg, d = self.sock:pump(ws)
        if ok == nil then return self:fail(ww_or_msg, d) end
        open = ok
        if ok then self.want_write = ww_or_msg end
    end
    self:_taken()
    -- what came before a close is read first (a refusal, then the close)
    local msgs, msg, d = ws:messages(self.pool.o.max_message_size)
    if #msgs > 0 then self:_receive(msgs, t) end
    if self.ws ~= ws then return end -- what came ended the connection
    if msg then return self:fail(msg, d) end
    if not open then
        return self:fail("the service closed the connection", { code = "ECONNECT" })
    end
    self:timers(t)
end

--- Deadlines: the handshake's, the service's silence, our keep-alive.
function Conn:timers(t)
    local o = self.pool.o
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
    end
end

--- Hand a frame to the connection (it goes out at once where it can);
-- `what` names the call of a data frame.
function Conn:send(frame, t, what)
    local idle = self.ob_n == 0 and self.ws:unsent() == 0
    local ok, msg, d = self:_queue(frame, what)
    if not ok then return nil, msg, d end
    if what then self.unconfirmed = self.unconfirmed + 1 end
    t = t or now()
    self.last_send = t
    local drv = self.pool.driver
    if drv then
        drv:_kick(self)
    elseif self.sock and self.state ~= "connecting" and not self.want_write then
        -- Written at once when the connection was idle for a while or
        -- WRITE_BATCH bytes are waiting; a frame sent right after another
        -- joins it and leaves with the next send, poll, step, flush or
        -- close (timeout() says so): one system call for a burst.  A
        -- socket that is full already is left for poll to drain.
        if (idle and t - (self.last_write or 0) >= WRITE_DELAY) or self.ob_bytes >= WRITE_BATCH then
            self.last_write = t
            self:_seal()
            local r, ww = self.sock:write(self.ws)
            -- a broken socket: the next step finds it, and fail() sends
            -- again what the network did not take
            if r then self.want_write = ww end
        end
    end
    return true
end

--- When this connection next needs a look (seconds from t), or nil.
function Conn:due(t)
    local st = self.state
    if st == "backoff" then return max(0, self.retry_at - t) end
    if st == "idle" or st == "closed" then return nil end
    local o = self.pool.o
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

-- ===== the pool: sends, acks, the queue =====

-- An open connection of the hub, in turn.
function Pool._pick(_, hc)
    local n = #hc.conns
    for _ = 1, n do
        hc.rr = hc.rr % n + 1
        local c = hc.conns[hc.rr]
        if c.state == "open" then return c end
    end
    return nil
end

-- Is a connection of the hub on its way up (not waiting out a failure)?
local function coming(hc)
    for _, c in ipairs(hc.conns) do
        if c.state == "connecting" or c.state == "handshaking" then return true end
    end
    return false
end

local function last_error(hc)
    for _, c in ipairs(hc.conns) do
        if c.error then return c.error, c.error_details end
    end
    return "not connected", nil
end

-- Why nothing could go now: msg, details.
local function none_up(hc, what)
    local err, d = last_error(hc)
    local details = { code = "ECONNECT", sent = false, last_error = err }
    if d and d.status then details.status = d.status end
    if d and d.code then details.cause = d.code end
    return "signalr." .. what .. ": no server connection is up (last attempt: " .. tostring(err)
        .. "); nothing was sent", details
end

local function check_names(params, key, what)
    local v = params[key]
    if v == nil then return true end
    if type(v) == "table" then
        for i = 1, #v do
            local ok, msg, d = core.validate(WHAT[key], v[i])
            if not ok then return nil, "signalr." .. what .. ": " .. key .. "[" .. i .. "]: " .. msg, d end
        end
        return true
    end
    local ok, msg, d = core.validate(WHAT[key], v)
    if not ok then return nil, "signalr." .. what .. ": " .. msg, d end
    return true
end

--- One call of a hub method: a result, or PASS for the operations that
-- stay REST (tokens, listing, execute, invoke, health, closing many).
_M.PASS = {}
function Pool:call(op, params, what)
    if DATA[op] then return self:_send(op, params, what) end
    if op == "close_connection" then return self:_close_connection(params, what) end
    if ACKED[op] then return self:_acked(op, params, what) end
    return _M.PASS
end

function Pool:_frame_data(op, params, what)
    local spec = DATA[op]
    for _, k in ipairs { "user", "group", "connection", "excluded", "users", "groups", "connections" } do
        local ok, msg, d = check_names(params, k, what)
        if not ok then return nil, msg, d end
    end
    local list = spec[3] and params[spec[3]]
    if type(list) == "string" then list = { list } end
    local frame, msg, d = core.sp_data(spec[1], spec[2] and params[spec[2]], list,
        params.target, params.arguments, self.protocols, self.o.max_message_size)
    if not frame then
        if d and d.code == "ETOOBIG" then
            msg = msg .. " (option max_message_size)"
        end
        return nil, "signalr." .. what .. ": " .. msg, d
    end
    return frame
end

function Pool:_send(op, params, what)
    local frame, msg, d = self:_frame_data(op, params, what)
    if not frame then return nil, msg, d end
    return self:_deliver(self:hub(params.hub), frame, what)
end

-- A frame for clients: to an open connection now (true), else queued
-- while a connection comes up (a request object), else an error.
function Pool:_deliver(hc, frame, what)
    local c = self:_pick(hc)
    if not c and not self.driver then
        -- no loop may be polling (a plain script): each send moves the
        -- connections on, without waiting
        self:_step()
        c = self:_pick(hc)
    end
    if c and c:unwritten() > MAX_UNWRITTEN then
        if not self.driver then c:pump(now()) end
        if c.ws and c:unwritten() > MAX_UNWRITTEN then
            return nil, "signalr." .. what .. ": the server connection has " .. c:unwritten()
                .. " bytes the network has not taken yet; poll or flush before sending more",
                { code = "EQUEUEFULL", sent = false }
        end
    end
    if c and c.state == "open" then
        local ok, msg, d = c:send(frame, nil, what)
        if ok then
            self.stats.sent = self.stats.sent + 1
            return true
        end
        return nil, "signalr." .. what .. ": " .. msg, d
    end
    if not coming(hc) then return nil, none_up(hc, what) end
    local waiting = self:_queued()
    if waiting >= self.o.queue_size then
        return nil, "signalr." .. what .. ": queue full: " .. waiting .. " messages wait for a"
            .. " server connection; poll or flush before sending more", { code = "EQUEUEFULL" }
    end
    local req = self.client:_request(what)
    hc.queue[#hc.queue + 1] = { frame = frame, req = req, what = what, deadline = now() + self.o.timeout }
    self.stats.queued = self.stats.queued + 1
    return req
end

-- Messages waiting in the hubs' queues for a connection.
function Pool:_queued()
    local n = 0
    for _, hc in pairs(self.hubs) do n = n + #hc.queue end
    return n
end

-- Send what waited, in order, on a connection that just opened.
function Pool:_flush_queue(hc)
    local q = hc.queue
    if #q == 0 then return end
    hc.queue = {}
    for i = 1, #q do
        local item = q[i]
        local c = self:_pick(hc)
        local ok, msg, d
        if c then ok, msg, d = c:send(item.frame, nil, item.what) end
        if ok then
            self.stats.sent = self.stats.sent + 1
            if item.req then self.client:_finish(item.req, true) end
        else
            self:_fail_item(item, msg or "no server connection is up", d or { code = "ECONNECT", sent = false })
        end
    end
    if self.driver then self.driver:_wake() end
end

-- A queued message failed: its request reports it (a message sent again
-- after its connection was lost gets one now: its send had answered true).
function Pool:_fail_item(item, msg, details)
    local req = item.req or self.client:_request(item.what)
    if not item.req then req.resent = true end
    self.client:_finish(req, nil, msg, details)
end

-- Queued messages past their time fail (ETIMEDOUT, not sent).
function Pool:_expire(hc, t)
    local q = hc.queue
    if #q == 0 or q[1].deadline > t then return end
    local keep = {}
    for i = 1, #q do
        local item = q[i]
        if item.deadline <= t then
            self.stats.expired = self.stats.expired + 1
            local err = last_error(hc)
            self:_fail_item(item, "no server connection came up within " .. self.o.timeout
                .. " s (last attempt: " .. tostring(err) .. "); nothing was sent",
                { code = "ETIMEDOUT", sent = false })
        else
            keep[#keep + 1] = item
        end
    end
    hc.queue = keep
end

function Pool:_close_connection(params, what)
    local ok, msg, d = check_names(params, "connection", what)
    if not ok then return nil, msg, d end
    local frame
    frame, msg, d = core.sp_op(T.CLOSE, params.connection, nil, params.reason)
    if not frame then return nil, "signalr." .. what .. ": " .. msg, d end
    return self:_deliver(self:hub(params.hub), frame, what)
end

-- Acknowledged operations wait for the service's answer.
function Pool:_acked(op, params, what)
    local spec = ACKED[op]
    for _, k in ipairs { spec[2], "group" } do
        local ok, msg, d = check_names(params, k, what)
        if not ok then return nil, msg, d end
    end
    local group = params.group
    if spec[3] == true and group == nil then
        return nil, "signalr." .. what .. ": the group is missing", { code = "EINVAL" }
    end
    if spec[3] ~= true and spec[3] ~= "all" then group = nil end
    if self.driver and not self.driver.can_wait() then
        return nil, "signalr." .. what .. ": an acknowledged call waits for the service's answer,"
            .. " and nginx's '" .. ngx.get_phase() .. "' phase cannot wait; run it from"
            .. " ngx.timer.at(0, fn) instead", { code = "EPHASE" }
    end
    local hc = self:hub(params.hub)
    hc.next_ack = hc.next_ack % 2147483647 + 1
    local id = hc.next_ack
    local ttl = op == "add_user_to_group" and params.ttl or nil
    local frame, msg, d = core.sp_op(spec[1], params[spec[2]] or params.group, group, nil, nil, id, ttl)
    if not frame then return nil, "signalr." .. what .. ": " .. msg, d end
    local a = { op = op, what = what, check = spec[4], id = id }
    local t = now()
    local deadline = t + self.o.timeout
    -- a connection first (the queue is for sends; an acked call waits)
    local c = self:_pick(hc)
    hc.waiting = hc.waiting + 1
    while not c do
        if not coming(hc) then hc.waiting = hc.waiting - 1 return nil, none_up(hc, what) end
        if now() >= deadline then
            hc.waiting = hc.waiting - 1
            return nil, "signalr." .. what .. ": no server connection came up within "
                .. self.o.timeout .. " s; nothing was sent", { code = "ETIMEDOUT", sent = false }
        end
        self:_wait(0.02, deadline)
        c = self:_pick(hc)
        if self.closing then
            hc.waiting = hc.waiting - 1
            return nil, "signalr." .. what .. ": the client is closed", { code = "ECANCELED", sent = false }
        end
    end
    hc.waiting = hc.waiting - 1
    a.conn = c
    hc.acks[id] = a
    local ok
    ok, msg, d = c:send(frame)
    if not ok then
        hc.acks[id] = nil
        return nil, "signalr." .. what .. ": " .. msg, d
    end
    local ack_deadline = min(deadline, now() + self.o.ack_timeout)
    while not a.done do
        if now() >= ack_deadline then
            hc.acks[id] = nil
            return nil, "signalr." .. what .. ": the service did not acknowledge within "
                .. self.o.ack_timeout .. " s", { code = "ETIMEDOUT", sent = true }
        end
        self:_wait(0.05, ack_deadline, a)
    end
    return a.result, a.msg, a.details
end

-- What an ack means for its call.
function Pool:_ack(a, m)
    local st = m.status
    if st == 1 then return self:_settle(a, true) end
    if st == 2 then
        if a.check then return self:_settle(a, false) end
        return self:_settle(a, nil, "not found (" .. (m.message ~= "" and m.message or a.op) .. ")",
            { code = "ESTATUS", status = 404, service_code = "NotFound", sent = true })
    end
    local text = m.message and m.message ~= "" and (": " .. m.message) or ""
    if st == 3 then
        return self:_settle(a, nil, "the service timed out" .. text, { code = "ETIMEDOUT", sent = true })
    end
    return self:_settle(a, nil, "the service failed (ack status " .. tostring(st) .. ")" .. text,
        { code = "ESTATUS", status = st == 4 and 500 or 0, sent = true })
end

function Pool._settle(_, a, result, msg, details)
    a.done = true
    a.result = result
    if result == nil then
        a.msg = "signalr." .. a.what .. ": " .. msg
        a.details = details
    end
    if a.wake then a.wake() end
end

-- ===== driving (libcurl) =====

--- Wait up to wait seconds (never past deadline) while the connections
-- progress; in nginx the driver waits instead.
function Pool:_wait(wait, deadline, ack)
    if self.driver then return self.driver:_wait(self, wait, deadline, ack) end
    local left = deadline - now()
    self:poll(max(0, min(wait, left)))
end

-- Watch each socket for what it needs.
function Pool:_watch(set)
    local want = {}
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            if c.sock then
                for _, f in ipairs(c.sock:fds()) do
                    local ev = (f.read and 1 or 0) + ((f.write or c.want_write) and 2 or 0)
                    want[f.fd] = ev
                end
            end
        end
    end
    for fd, ev in pairs(want) do
        if self.fds[fd] ~= ev then
            set:watch(fd, ev % 2 == 1, ev >= 2)
            self.fds[fd] = ev
        end
    end
    for fd in pairs(self.fds) do
        if not want[fd] then
            set:remove(fd)
            self.fds[fd] = nil
        end
    end
end

--- One pass over every connection, then a wait of at most timeout
-- seconds for socket activity or a timer, then another pass.
function Pool:poll(timeout)
    if self.driver then return 0 end
    self:_step()
    if timeout and timeout > 0 then
        local set = self:_pollset()
        local due = self:timeout()
        local wait = due and min(timeout, due) or timeout
        if set then
            self:_watch(set)
            if wait > 0 then set:wait(wait) end
        end
        self:_step()
    end
    return 0
end

function Pool:_step()
    local t = now()
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do c:step(t) end
        self:_expire(hc, t)
    end
end

function Pool:_pollset()
    if self.set == nil then
        local set = core.pollset()
        self.set = set or false
    end
    return self.set or nil
end

--- Seconds until poll is due, or nil.
function Pool:timeout()
    local t, best = now(), nil
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            local d = c:due(t)
            if d then best = best and min(best, d) or d end
        end
        local q = hc.queue[1]
        if q then
            local d = max(0, q.deadline - t)
            best = best and min(best, d) or d
        end
    end
    return best
end

--- One descriptor for every socket (epoll), kept current by poll.
function Pool:pollfd()
    local set = self:_pollset()
    if not set then return nil end
    self:_watch(set)
    return set:fd()
end

--- Every socket and its interest.
function Pool:fds()
    local out = {}
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            if c.sock then
                for _, f in ipairs(c.sock:fds()) do
                    out[#out + 1] = { fd = f.fd, read = f.read, write = f.write or c.want_write or false }
                end
            end
        end
    end
    return out
end

--- Messages not yet taken by the network (queued, or on a connection
-- and not written yet), bytes not yet written, acks awaited.
function Pool:pending()
    local n, bytes, acks = self:_queued(), 0, 0
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            bytes = bytes + c:unwritten()
            n = n + c:untaken()
        end
        for _ in pairs(hc.acks) do acks = acks + 1 end
    end
    return n, bytes, acks
end

--- Until every queued message is written to a socket, at most timeout s.
function Pool:flush(timeout)
    if self.driver and not self.driver.can_wait() then
        return nil, "signalr.flush: nginx's '" .. ngx.get_phase() .. "' phase cannot wait",
            { code = "EPHASE" }
    end
    local deadline = timeout and now() + timeout
    while true do
        local n, bytes = self:pending()
        if n == 0 and bytes == 0 then return true end
        if deadline and now() >= deadline then
            return nil, "signalr.flush: " .. n .. " messages and " .. bytes
                .. " bytes not yet written after " .. timeout .. " s",
                { code = "ETIMEDOUT", pending = n, bytes = bytes }
        end
        self:_wait(0.05, deadline or now() + 0.05)
        self.client:_report()
    end
end

-- The connection id a confirmation asks about: an existence check is
-- the cheapest acknowledged message, and its answer does not matter.
local BARRIER_ID = "lua-signalr-confirm"

--- Wait until every message sent so far has reached the service: queued
-- messages are written first, then each connection that carried data
-- since the last confirmation gets an acknowledged message (an existence
-- check) behind them.  The service answers a connection's messages in
-- the order they came (the SDK's message-order guarantee rests on that),
-- so its answer confirms everything written before it.  A connection
-- lost with unconfirmed messages fails the call with ECONNECT and the
-- number that may be lost (`details.lost`): resend what you cannot lose.
function Pool:confirm(timeout)
    local what = "confirm"
    if self.driver and not self.driver.can_wait() then
        return nil, "signalr.confirm: nginx's '" .. ngx.get_phase() .. "' phase cannot wait",
            { code = "EPHASE" }
    end
    local deadline = now() + (timeout or self.o.ack_timeout)
    while self:_queued() > 0 do
        if self.closing then
            return nil, "signalr.confirm: the client is closed", { code = "ECANCELED" }
        end
        if now() >= deadline then
            return nil, "signalr.confirm: " .. self:_queued() .. " messages still wait for a server"
                .. " connection", { code = "ETIMEDOUT", lost = self.lost }
        end
        self:_wait(0.02, deadline)
        self.client:_report()
    end
    local owed = {}
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            if c.state == "open" and c.unconfirmed > 0 then
                hc.next_ack = hc.next_ack % 2147483647 + 1
                local a = { op = what, what = what, check = true, id = hc.next_ack, conn = c }
                local frame, msg, d = core.sp_op(ACKED.connection_exists[1], BARRIER_ID, nil, nil, nil, a.id)
                if not frame then return nil, "signalr.confirm: " .. msg, d end
                hc.acks[a.id] = a
                a.hc = hc
                a.n = c.unconfirmed
                if c:send(frame) then
                    c.unconfirmed = 0
                    owed[#owed + 1] = a
                else
                    hc.acks[a.id] = nil
                    self.lost = self.lost + a.n -- the connection is broken
                end
            end
        end
    end
    for _, a in ipairs(owed) do
        while not a.done and now() < deadline do self:_wait(0.05, deadline, a) end
        if not a.done then
            -- unanswered: what they covered is left for the next call
            for _, b in ipairs(owed) do
                if not b.done then
                    b.hc.acks[b.id] = nil
                    b.conn.unconfirmed = b.conn.unconfirmed + b.n
                end
            end
            return nil, "signalr.confirm: the service did not answer within "
                .. (timeout or self.o.ack_timeout) .. " s", { code = "ETIMEDOUT", lost = self.lost }
        end
        -- any answer confirms what went before it; a connection lost
        -- first fails the answer with ECONNECT
        if a.result == nil and a.details and a.details.code == "ECONNECT" then
            self.lost = self.lost + a.n
        end
    end
    local lost = self.lost
    self.lost = 0
    if lost > 0 then
        return nil, "signalr.confirm: a server connection was lost with up to " .. lost
            .. " messages the service had not confirmed; they may not have reached it",
            { code = "ECONNECT", lost = lost }
    end
    return true
end

--- Close every connection (writing what is queued first, for at most
-- `grace` seconds); queued messages that could not go fail with
-- ECANCELED.
function Pool:close(grace)
    if self.closed then return end
    if grace ~= 0 then pcall(self.flush, self, grace or 1) end
    self.closing = true
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            if c.ws and c.state == "open" then
                c.ws:close(1000, "")
                if not self.driver and c.sock then pcall(c.sock.pump, c.sock, c.ws) end
            end
            c:fail("the client was closed", { code = "ECANCELED" })
            c.state = "closed"
        end
        for _, item in ipairs(hc.queue) do
            self:_fail_item(item, "the client was closed before a server connection"
                .. " came up; nothing was sent", { code = "ECANCELED", sent = false })
        end
        hc.queue = {}
    end
    if self.driver then self.driver:_close(self) end
    if self.set then self.set:close() end
    self.closed = true
end

--- What each hub's connections are doing, for status pages and tests.
function Pool:status()
    local out = {}
    for key, hc in pairs(self.hubs) do
        local conns = {}
        for i, c in ipairs(hc.conns) do
            conns[i] = { state = c.state, attempt = c.attempt, last_error = c.error }
        end
        out[key] = { connections = conns, queued = #hc.queue }
    end
    return out
end

return _M
