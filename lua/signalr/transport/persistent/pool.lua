--- A pool of server connections: per hub, `connection_count`
-- connections (signalr.transport.persistent.conn) opened on first use;
-- frames go to an open one in turn, or wait in a bounded queue while one
-- comes up; acknowledged messages wait for the service's answer; a
-- confirmation puts an acknowledged message behind every connection's
-- sends.  It implements the event-loop contract (signalr.loop): `poll`,
-- `pollfd`, `timeout`, `fds`.
--
-- The seam for a hub server: `new` takes the connection type
-- (`core.sp.DEFAULT_CONNECTION` carries clients), `on_message(conn, msg)`
-- for everything the pool does not consume itself (the handshake's
-- answer, pings, acks, the service's error or close of a connection),
-- and `on_lost(conn, msg, details)` when an open connection is lost;
-- `write(conn, frame)` sends on the connection that carries a client.
-- @module signalr.transport.persistent.pool
local core = require "signalr.core"
local conn_mod = require "signalr.transport.persistent.conn"
local request = require "signalr.request"
local loop = require "signalr.loop"

local pairs, ipairs, tostring, setmetatable, pcall =
    pairs, ipairs, tostring, setmetatable, pcall
local min, max = math.min, math.max
local lower = string.lower
local now = core.monotonic
local SP = core.sp
local sp_send = core.sp_send
local conn_send = conn_mod.Conn.send -- (the senders' one call: no method lookup)

local _M = {}

local Pool = {}
Pool.__index = Pool
_M.Pool = Pool

-- Bytes a connection may hold that the network has not taken: past it
-- a send answers EQUEUEFULL (memory stays bounded when the service or
-- the network is slower than the sender).
_M.MAX_UNWRITTEN = 64 * 1024 * 1024
local MAX_UNWRITTEN = _M.MAX_UNWRITTEN
-- Below this a connection's own count of its unwritten bytes needs no
-- look at the WebSocket (the margin: control frames queued since)
local ROOM = MAX_UNWRITTEN - 4096

-- The connection id a confirmation asks about: an existence check is
-- the cheapest acknowledged message, and its answer does not matter.
local BARRIER_ID = "lua-signalr-confirm"

local guid = core.guid -- random bytes from OpenSSL (the ids must not repeat)

--- A pool.
-- @tparam table o the options (`connection_count`, `queue_size`,
--   `timeout`, `ack_timeout`, `token_lifetime`, `product_info`, the
--   connections' timeouts)
-- @tparam table spec `handle` (the core's client: `server_token`),
--   `token` (Entra ID: a function giving a bearer token | nil, msg,
--   details; nil: the AccessKey signs), `type` (the connection type,
--   default `core.sp.WEAK_CONNECTION`), `requests` (a signalr.request
--   queue for sends that wait for a connection; default a new one),
--   `on_message(conn, msg)`, `on_lost(conn, msg, details)`, `io` (a
--   driver; nil: libcurl sockets polled here)
function _M.new(o, spec)
    local self = setmetatable({
        o = o, handle = spec.handle, token = spec.token,
        type = spec.type or SP.WEAK_CONNECTION,
        requests = spec.requests or request.queue(),
        on_message = spec.on_message, on_lost = spec.on_lost, io = spec.io,
        hubs = {}, named = {}, sockets = loop.sockets(),
        server_id = (os.getenv("HOSTNAME") or "lua"):gsub("[^%w%-%.]", "") .. "_"
            .. guid():gsub("%-", ""),
        -- sent: handed to a connection; requeued: unwritten when their
        -- connection was lost, sent again; expired: failed in the queue
        stats = { sent = 0, queued = 0, requeued = 0, expired = 0 },
        -- data messages on connections lost since the last confirm()
        lost = 0,
    }, Pool)
    if self.io then self.io:bind(self) end
    return self
end

-- ===== connections =====

-- The request line, headers and token of a hub's new connection.
local function target(self, name)
    local want_token = self.token == nil
    local url, tok, d = self.handle:server_token(name, self.server_id, want_token,
        self.o.token_lifetime)
    if not url then return nil, tok, d end
    if not want_token then
        -- Microsoft Entra ID: the identity's own token is the bearer
        local t, msg, det = self.token()
        if not t then return nil, msg, det end
        tok = t
    end
    local scheme, hostport, path = url:match("^(https?)://([^/]+)(/.*)$")
    local headers = "Authorization: Bearer " .. tok .. "\r\n"
        .. "X-Requested-With: XMLHttpRequest\r\n"
        .. "Asrs-User-Agent: " .. (self.o.product_info or "lua-signalr") .. "\r\n"
        .. "X-ASRS-Server-Id: " .. self.server_id .. "\r\n"
    return { scheme = scheme, hostport = hostport, path = path .. "&cid=" .. guid(),
             headers = headers }
end

-- What a hub's connections tell the pool.
local function events(self, hc)
    local log = self.o.log
    return {
        opened = function()
            if log then log("info", "server connection for hub " .. hc.name .. " open") end
            self:flush_queue(hc)
        end,
        ack = function(_, m)
            local a = hc.acks[m.ack_id]
            if a then
                hc.acks[m.ack_id] = nil
                self:answer(a, m)
            end
        end,
        message = function(c, m)
            if self.on_message then
                self.on_message(c, m)
            elseif log then
                log("debug", "hub " .. hc.name .. ": dropped a service message of type "
                    .. tostring(m.type) .. " (nothing here handles it)")
            end
        end,
        failed = function(c, back, unconfirmed, msg, details, was_open)
            if back and #back > 0 then
                local q = hc.queue
                for i = 1, #q do back[#back + 1] = q[i] end
                self.stats.requeued = self.stats.requeued + (#back - #q)
                hc.queue = back
            end
            -- what it carried since its last confirmation may be lost (taken
            -- by the network, never processed): confirm() reports it once
            self.lost = self.lost + unconfirmed
            if log and ((back and #back > 0) or unconfirmed > 0) then
                log("warn", "hub " .. hc.name .. ": " .. (back and #back or 0) .. " frames queued to send"
                    .. " again; " .. unconfirmed .. " sent since the last confirmation may be lost")
            end
            for id, a in pairs(hc.acks) do
                if a.conn == c then
                    hc.acks[id] = nil
                    self:settle(a, nil, "the server connection was lost before the service answered ("
                        .. tostring(msg) .. ")", { code = "ECONNECT", sent = true })
                end
            end
            if was_open and self.on_lost then self.on_lost(c, msg, details) end
        end,
    }
end

--- The hub's connections (opened on first use): its state table.
-- @tparam string name the hub
function Pool:open(name)
    local hc = self.named[name] -- by the name as given: no lower() per send
    if hc then return hc end
    local key = lower(name)
    hc = self.hubs[key]
    if not hc then
        hc = { name = name, conns = {}, queue = {}, acks = {}, next_ack = 0, rr = 0, waiting = 0 }
        local spec = { o = self.o, type = self.type, io = self.io, events = events(self, hc),
                       target = function() return target(self, name) end }
        for i = 1, self.o.connection_count do hc.conns[i] = conn_mod.new(spec) end
        if #hc.conns == 1 then hc.one = hc.conns[1] end
        self.hubs[key] = hc
        for _, c in ipairs(hc.conns) do c:start(now()) end
    end
    self.named[name] = hc
    return hc
end

-- An open connection of the hub, in turn.
local function pick(hc)
    local conns, i = hc.conns, hc.rr
    local n = #conns
    for _ = 1, n do
        i = i < n and i + 1 or 1
        local c = conns[i]
        if c.state == "open" then
            hc.rr = i
            return c
        end
    end
    hc.rr = i
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

-- A connection holding MAX_UNWRITTEN bytes the network has not taken:
-- the failure of a send on it (nil when there is room).
local function too_full(self, c, what)
    -- the connection's own count first (no call); it is exact but for
    -- control frames the WebSocket queued since its last write
    if (c.unsent or 0) + (c.ob_bytes or 0) < ROOM then return nil end
    if c:unwritten() <= MAX_UNWRITTEN then return nil end
    if not self.io then c:pump(now()) end
    if c.ws and c:unwritten() > MAX_UNWRITTEN then
        return "signalr." .. what .. ": the server connection has " .. c:unwritten()
            .. " bytes the network has not taken yet; poll or flush before sending more",
            { code = "EQUEUEFULL", sent = false }
    end
end

--- Write a frame on one connection (a hub server's client lives on the
-- connection that carries it): true | nil, msg, details.
-- @tparam table c a connection of this pool (from `on_message`)
-- @tparam string frame a service-protocol frame
-- @tparam[opt] string what the call, for messages (default "write")
-- @tparam[opt] boolean bound true: the frame belongs to this connection
--   (a hub server's message for a client it carries): if the connection
--   is lost before the network took it, it is dropped, not sent again on
--   another connection (the service closed that client with it)
function Pool:write(c, frame, what, bound)
    what = what or "write"
    if c.state ~= "open" then
        return nil, "signalr." .. what .. ": the server connection is not open (" .. c.state
            .. "); nothing was sent", { code = "ECONNECT", sent = false, last_error = c.error }
    end
    local full, fd = too_full(self, c, what)
    if full then return nil, full, fd end
    local ok, msg, d = c:send(frame, nil, not bound and what or nil)
    if not ok then return nil, "signalr." .. what .. ": " .. msg, d end
    self.stats.sent = self.stats.sent + 1
    return true
end

-- A message for a hub with no connection up yet: queued, as a request.
-- (Its own function: a closure in deliver would make every return there
-- close an upvalue, which LuaJIT does not compile, and the send path
-- would run interpreted.)
local function enqueue(self, hc, frame, what)
    local waiting = self:queued()
    if waiting >= self.o.queue_size then
        return nil, "signalr." .. what .. ": queue full: " .. waiting .. " messages wait for a"
            .. " server connection; poll or flush before sending more", { code = "EQUEUEFULL" }
    end
    local req = self.requests:request(what)
    local item = { frame = frame, req = req, what = what, deadline = now() + self.o.timeout }
    hc.queue[#hc.queue + 1] = item
    -- req:cancel(): out of the queue (nothing was sent)
    req._cancel = function()
        for i = 1, #hc.queue do
            if hc.queue[i] == item then
                table.remove(hc.queue, i)
                self.requests:canceled(req)
                return true
            end
        end
        return false
    end
    self.stats.queued = self.stats.queued + 1
    return req
end

--- A frame for clients of a hub: to an open connection now (true), else
-- queued while a connection comes up (a request object, reported by the
-- pool's request queue), else nil, msg, details.
-- @tparam string hub
-- @tparam string frame
-- @tparam string what the call, for messages
function Pool:deliver(hub, frame, what)
    local hc = self.named[hub] or self:open(hub)
    local c = hc.one -- a hub of one connection needs no turn
    if c then
        if c.state ~= "open" then c = nil end
    else
        c = pick(hc)
    end
    if not c and not self.io then
        -- no loop may be polling (a plain script): each send moves the
        -- connections on, without waiting
        self:step()
        c = pick(hc)
    end
    if c and c.unsent + c.ob_bytes >= ROOM then
        local full, fd = too_full(self, c, what)
        if full then return nil, full, fd end
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
    return enqueue(self, hc, frame, what)
end

--- A hub's sender of one kind of data message, for the hub's common
-- case: `send(target, args[, id])` makes the frame from the argument
-- list (`core.sp_send`) and, when the hub's one connection is open and
-- has room, hands it over in the same Lua call; otherwise as `deliver`.
-- It answers false where `core.sp_send` does (anything but the common
-- case, a failure included) and once the pool closes: the caller's
-- general path then does the send or explains why not.
-- (A send is one call to the hub and this one: each Lua call more costs
-- Lua 5.4 about as much as the frame's encoding takes.)
-- @tparam string name the hub
-- @tparam integer ty the message type (`core.sp`)
-- @tparam string what the hub method, for messages and the connection
-- @tparam integer protocols the protocols the frame carries
-- @tparam integer max_size the frame's bound
-- @treturn function send
function Pool:sender(name, ty, what, protocols, max_size)
    local stats, hc = self.stats, self.named[name]
    return function(to, args, id)
        if self.refusing then return false end
        local frame = sp_send(ty, id, to, args, protocols, max_size)
        if not frame then return false end
        local c = hc and hc.one
        if c and c.state == "open" and c.unsent + c.ob_bytes < ROOM then
            local ok, msg, d = conn_send(c, frame, nil, what)
            if not ok then return nil, "signalr." .. what .. ": " .. msg, d end
            stats.sent = stats.sent + 1
            return true
        end
        local ok, msg, d = self:deliver(name, frame, what)
        hc = self.named[name]
        return ok, msg, d
    end
end

--- Messages waiting in the hubs' queues for a connection.
function Pool:queued()
    local n = 0
    for _, hc in pairs(self.hubs) do n = n + #hc.queue end
    return n
end

-- A queued message failed: its request reports it (a message sent again
-- after its connection was lost gets one now: its send had answered true).
local function fail_item(self, item, msg, details)
    local req = item.req or self.requests:request(item.what)
    if not item.req then req.resent = true end
    self.requests:finish(req, nil, msg, details)
end

--- Send what waited, in order, on a connection that just opened.
function Pool:flush_queue(hc)
    local q = hc.queue
    if #q == 0 then return end
    hc.queue = {}
    for i = 1, #q do
        local item = q[i]
        local c = pick(hc)
        local ok, msg, d
        if c then ok, msg, d = c:send(item.frame, nil, item.what) end
        if ok then
            self.stats.sent = self.stats.sent + 1
            if item.req then self.requests:finish(item.req, true) end
        else
            fail_item(self, item, msg or "no server connection is up", d or { code = "ECONNECT", sent = false })
        end
    end
    -- a driver's connection opened outside any poll: report now
    if self.io then self.io:wake(self) end
end

--- Queued messages past their time fail (ETIMEDOUT, not sent).
function Pool:expire(hc, t)
    local q = hc.queue
    if #q == 0 or q[1].deadline > t then return end
    local keep = {}
    for i = 1, #q do
        local item = q[i]
        if item.deadline <= t then
            self.stats.expired = self.stats.expired + 1
            local err = last_error(hc)
            fail_item(self, item, "no server connection came up within " .. self.o.timeout
                .. " s (last attempt: " .. tostring(err) .. "); nothing was sent",
                { code = "ETIMEDOUT", sent = false })
        else
            keep[#keep + 1] = item
        end
    end
    hc.queue = keep
end

-- ===== acknowledged messages =====

local function next_ack(hc)
    hc.next_ack = hc.next_ack % 2147483647 + 1
    return hc.next_ack
end

--- Send an acknowledged message and wait for the service's answer (at
-- most `ack_timeout`; first a connection, at most `timeout`).
-- @tparam string hub
-- @tparam function make_frame `make_frame(ack_id)`: the frame | nil, msg, details
-- @tparam string what the call, for messages
-- @tparam boolean check true: the answer is a boolean (an existence check)
-- @return true | false (checks) | nil, msg, details
function Pool:acked(hub, make_frame, what, check)
    if self.io and not self.io.can_wait() then
        return nil, "signalr." .. what .. ": an acknowledged call waits for the service's answer,"
            .. " and nginx's '" .. ngx.get_phase() .. "' phase cannot wait; run it from"
            .. " ngx.timer.at(0, fn) instead", { code = "EPHASE" }
    end
    local hc = self:open(hub)
    local id = next_ack(hc)
    local frame, msg, d = make_frame(id)
    if not frame then return nil, "signalr." .. what .. ": " .. msg, d end
    local a = { op = what, what = what, check = check, id = id }
    local deadline = now() + self.o.timeout
    -- a connection first (the queue is for sends; an acked call waits)
    local c = pick(hc)
    hc.waiting = hc.waiting + 1
    while not c do
        if not coming(hc) then hc.waiting = hc.waiting - 1 return nil, none_up(hc, what) end
        if now() >= deadline then
            hc.waiting = hc.waiting - 1
            return nil, "signalr." .. what .. ": no server connection came up within "
                .. self.o.timeout .. " s; nothing was sent", { code = "ETIMEDOUT", sent = false }
        end
        self:wait(0.02, deadline)
        c = pick(hc)
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
        self:wait(0.05, ack_deadline, a)
    end
    return a.result, a.msg, a.details
end

--- Send an acknowledged message on connection `c` without waiting (a
-- hub server's handler waits in its own coroutine): the record `a`, whose
-- `done`, `result`, `msg` and `details` the answer sets (calling
-- `wake()` if given), or the connection's loss (ECONNECT); nil, msg,
-- details when it could not be sent.  `forget(hub, a)` gives up on it.
-- @tparam table c a connection of this pool
-- @tparam string hub
-- @tparam function make_frame `make_frame(ack_id)`: the frame | nil, msg, details
-- @tparam string what the call, for messages
-- @tparam boolean check true: the answer is a boolean
-- @tparam[opt] function wake
function Pool:ack_on(c, hub, make_frame, what, check, wake)
    local hc = self:open(hub)
    local id = next_ack(hc)
    local frame, msg, d = make_frame(id)
    if not frame then return nil, "signalr." .. what .. ": " .. msg, d end
    local a = { op = what, what = what, check = check, id = id, conn = c, wake = wake }
    hc.acks[id] = a
    local ok
    -- bound to c: its answer comes on c, and c's loss fails it
    ok, msg, d = self:write(c, frame, what, true)
    if not ok then
        hc.acks[id] = nil
        return nil, msg, d
    end
    return a
end

--- Stop waiting for the answer to `a` (from ack_on).
function Pool:forget(hub, a)
    local hc = self.hubs[lower(hub)]
    if hc then hc.acks[a.id] = nil end
end

-- An ack's status (the service protocol's AckStatus; not in core.sp).
local ACK_OK, ACK_NOT_FOUND, ACK_TIMEOUT, ACK_ERROR = 1, 2, 3, 4

--- What an ack means for its call.
function Pool:answer(a, m)
    local st = m.status
    if st == ACK_OK then return self:settle(a, true) end
    if st == ACK_NOT_FOUND then
        if a.check then return self:settle(a, false) end
        return self:settle(a, nil, "not found (" .. (m.message ~= "" and m.message or a.op) .. ")",
            { code = "ESTATUS", status = 404, service_code = "NotFound", sent = true })
    end
    local text = m.message and m.message ~= "" and (": " .. m.message) or ""
    if st == ACK_TIMEOUT then
        return self:settle(a, nil, "the service timed out" .. text, { code = "ETIMEDOUT", sent = true })
    end
    return self:settle(a, nil, "the service failed (ack status " .. tostring(st) .. ")" .. text,
        { code = "ESTATUS", status = st == ACK_ERROR and 500 or 0, sent = true })
end

--- An awaited ack is settled (its waiter wakes).
function Pool.settle(_, a, result, msg, details)
    a.done = true
    a.result = result
    if result == nil then
        a.msg = "signalr." .. a.what .. ": " .. msg
        a.details = details
    end
    if a.wake then a.wake() end
end

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
    if self.io and not self.io.can_wait() then
        return nil, "signalr.confirm: nginx's '" .. ngx.get_phase() .. "' phase cannot wait",
            { code = "EPHASE" }
    end
    local deadline = now() + (timeout or self.o.ack_timeout)
    while self:queued() > 0 do
        if self.closing then
            return nil, "signalr.confirm: the client is closed", { code = "ECANCELED" }
        end
        if now() >= deadline then
            return nil, "signalr.confirm: " .. self:queued() .. " messages still wait for a server"
                .. " connection", { code = "ETIMEDOUT", lost = self.lost }
        end
        self:wait(0.02, deadline)
        self:report()
    end
    local owed = {}
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            if c.state == "open" and c.unconfirmed > 0 then
                local a = { op = what, what = what, check = true, id = next_ack(hc), conn = c }
                local frame, msg, d = core.sp_op(SP.CHECK_CONNECTION_EXISTENCE, BARRIER_ID, nil, nil, nil, a.id)
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
        while not a.done and now() < deadline do self:wait(0.05, deadline, a) end
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

-- ===== driving =====

--- Wait up to wait seconds (never past deadline) while the connections
-- progress; a driver waits its own way (for the ack, when given).
function Pool:wait(wait, deadline, ack)
    if self.io then return self.io:wait(wait, deadline, ack) end
    local left = deadline - now()
    self:poll(max(0, min(wait, left)))
end

--- One pass over every connection (libcurl): connect, move bytes, read,
-- timers; then the queues' deadlines.
function Pool:step()
    local t = now()
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do c:step(t) end
        self:expire(hc, t)
    end
end

--- One pass without socket I/O (a driver moves the bytes): reconnects
-- after the backoff, deadlines, the queues' deadlines.
function Pool:tick(t)
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do c:tick(t) end
        self:expire(hc, t)
    end
end

--- Report the requests that finished (on_done).
function Pool:report()
    return self.requests:report()
end

--- One pass over every connection, then a wait of at most timeout
-- seconds for socket activity or a timer, then another pass.
function Pool:poll(timeout)
    if self.io then return 0 end
    self:step()
    if timeout and timeout > 0 then
        local due = self:timeout()
        local wait = due and min(timeout, due) or timeout
        self.sockets:wait(self:fds(), wait)
        self:step()
    end
    return 0
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
    return self.sockets:fd(self:fds())
end

--- Every socket and its interest.
function Pool:fds()
    local out = {}
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do c:fds(out) end
    end
    return out
end

--- Messages not yet taken by the network (queued, or on a connection
-- and not written yet), bytes not yet written, acks awaited.
function Pool:pending()
    local n, bytes, acks = self:queued(), 0, 0
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
    if self.io and not self.io.can_wait() then
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
        self:wait(0.05, deadline or now() + 0.05)
        self:report()
    end
end

--- Close every connection (writing what is queued first, for at most
-- `grace` seconds); queued messages that could not go fail with
-- ECANCELED.
function Pool:close(grace)
    if self.closed then return end
    self.refusing = true -- the senders' sends take the general path
    if grace ~= 0 then pcall(self.flush, self, grace or 1) end
    self.closing = true
    for _, hc in pairs(self.hubs) do
        for _, c in ipairs(hc.conns) do
            c:close("the client was closed", { code = "ECANCELED" })
        end
        for _, item in ipairs(hc.queue) do
            fail_item(self, item, "the client was closed before a server connection"
                .. " came up; nothing was sent", { code = "ECANCELED", sent = false })
        end
        hc.queue = {}
    end
    if self.io then self.io:close() end
    self.sockets:close()
    self.closed = true
end

--- What each hub's connections are doing, for status pages and tests:
-- `{ [hub] = { connections = { { state, attempt, last_error }, ... }, queued = n } }`.
function Pool:status()
    local out = {}
    for key, hc in pairs(self.hubs) do
        local conns = {}
        for i, c in ipairs(hc.conns) do conns[i] = c:status() end
        out[key] = { connections = conns, queued = #hc.queue }
    end
    return out
end

return _M
