--- One client of a hub server, as the service carries it: the hub
-- handshake, the client's messages read from ConnectionData, its
-- invocations run at most `max_parallel_invocations` at a time (ASP.NET
-- Core's MaximumParallelInvocationsPerClient, 1) after its connected
-- handler, its completions, pings after 15 s without a write, its own
-- bounded queue of frames while the server connection is backed up, and
-- its end, reported once.
-- @module signalr.server.session
local dispatch = require "signalr.server.dispatch"
local context = require "signalr.server.context"

local setmetatable, tostring, pairs, pcall, error, unpack =
    setmetatable, tostring, pairs, pcall, error, table.unpack or unpack
local coroutine = coroutine
local json_null = require("signalr.core").json_null
local concat, remove = table.concat, table.remove

local _M = {}

-- ASP.NET Core's KeepAliveInterval: a ping after this long without a write.
_M.KEEPALIVE = 15
-- Invocations a client may have waiting behind the one running: past it
-- the client is closed (a flood from one client affects no other).
_M.MAX_WAITING = 1024
-- Items of a stream from the client the handler has not read yet: past
-- it the client is closed (ASP.NET Core stops reading the client instead,
-- which a connection shared by many clients cannot do).
_M.MAX_STREAM_BUFFER = 1024

local Session = {}
Session.__index = Session

--- A session for an OpenConnection on server connection `conn`.
function _M.new(server, hub, conn, open)
    local codec = server.codec
    local reader, msg = codec.reader(server.o.max_message_size)
    if not reader then return nil, msg end
    local s = setmetatable({
        server = server, codec = codec, hub_name = hub, conn = conn,
        id = open.connection_id, reader = reader,
        protocol = codec.PROTOCOLS[open.protocol] or codec.PROTOCOLS.json,
        -- a client migrated from another server does not shake hands again
        migrated = open.headers and open.headers["Asrs-Migrate-From"] ~= nil,
        state = "handshake", waiting = {}, running = 0, parts = nil,
        -- frames waiting for room on the server connection (in order)
        outq = nil, outq_head = 1, outq_tail = 0, outq_bytes = 0,
        last_write = server.now(),
        -- server -> client invocations awaiting the client's result, by
        -- id; streams to the client, by invocation id; streams from the
        -- client (upload), by stream id
        results = {}, next_result = 0, streams = {}, uploads = {},
    }, Session)
    s.ctx = context.new(s, open)
    return s
end

-- ===== writing =====

-- Bytes a server connection may hold unwritten before the frames of its
-- clients wait in their own queues (and streams to them wait).
_M.CONN_ROOM = 1024 * 1024

--- Hand hub-protocol bytes for this client to its server connection; while
-- the connection holds CONN_ROOM bytes the network has not taken, they
-- wait in the client's own queue, bounded by the server's
-- client_max_queue_bytes / client_max_queue_messages: past either, the
-- client is closed (it cannot keep up) and nil, msg, EQUEUEFULL returned.
function Session:write(bytes, data_type)
    if self.state == "closed" then
        return nil, "the client's connection is closed", { code = "ECLOSED" }
    end
    local frame, msg, d = self.codec.connection_data(self.id, bytes, data_type)
    if not frame then return nil, msg, d end
    local conn = self.conn
    if self.outq or conn:unwritten() >= _M.CONN_ROOM then
        return self:enqueue(frame)
    end
    local ok
    ok, msg, d = self.server:write(conn, frame)
    if not ok then return nil, msg, d end
    self.last_write = self.server.now()
    return true
end

function Session:enqueue(frame)
    local o = self.server.o
    local q = self.outq
    if not q then
        q = {}
        self.outq, self.outq_head, self.outq_tail, self.outq_bytes = q, 1, 0, 0
        self.server:backlogged(self)
    end
    local n = self.outq_tail - self.outq_head + 1
    if n + 1 > o.max_queue_messages or self.outq_bytes + #frame > o.max_queue_bytes then
        local why = "the client cannot keep up: " .. (n + 1 > o.max_queue_messages
            and ("over " .. o.max_queue_messages .. " messages")
            or ("over " .. o.max_queue_bytes .. " bytes")) .. " wait for it (client_max_queue_"
            .. (n + 1 > o.max_queue_messages and "messages" or "bytes") .. ")"
        self:overflow(why)
        return nil, why, { code = "EQUEUEFULL", sent = false }
    end
    local t = self.outq_tail + 1
    q[t] = frame
    self.outq_tail = t
    self.outq_bytes = self.outq_bytes + #frame
    return true
end

--- Frames of the client's own queue to its connection while there is
-- room; true when the queue is empty.
function Session:drain()
    local q = self.outq
    if not q then return true end
    local conn, server = self.conn, self.server
    local h, t = self.outq_head, self.outq_tail
    while h <= t and conn:unwritten() < _M.CONN_ROOM do
        local frame = q[h]
        q[h] = nil
        h = h + 1
        self.outq_bytes = self.outq_bytes - #frame
        if not server:write(conn, frame) then break end
        self.last_write = server.now()
    end
    self.outq_head = h
    if h > t then
        self.outq = nil
        return true
    end
    return false
end

-- The client ends: what waits in its queue goes first (it is bounded),
-- whatever the connection holds.
function Session:flush_queue()
    local q = self.outq
    if not q then return end
    self.outq = nil
    for i = self.outq_head, self.outq_tail do
        if not self.server:write(self.conn, q[i]) then break end
    end
end

-- Too much waits for a client: its queue dropped, the client closed
-- (CloseConnection straight to the service, past the queue).
function Session:overflow(why)
    self.outq, self.outq_bytes = nil, 0
    self.server:log("warn", "hub client " .. tostring(self.id) .. " closed: " .. why)
    self:finish(why, true, why)
end

--- Invoke a client method (no answer awaited).
function Session:send(target, args)
    local text, msg = self.codec.encode_args(args)
    if not text then
        return nil, "signalr.ctx:send: " .. tostring(msg), { code = "EINVAL" }
    end
    local bytes, m2, d = self.codec.invocation(self.protocol, nil, target, text)
    if not bytes then return nil, "signalr.ctx:send: " .. m2, d end
    local ok, m3, d3 = self:write(bytes, self.codec.DATA_INVOCATION)
    if not ok then return nil, "signalr.ctx:send: " .. m3, d3 end
    return true
end

-- A completion for invocation id: result JSON, or an error text.
function Session:complete(id, result, err)
    local bytes = self.codec.completion(self.protocol, id, result, err)
    if bytes then return self:write(bytes, self.codec.DATA_INVOCATION) end
end

--- A ping when nothing was written for KEEPALIVE seconds.
function Session:keepalive(t)
    if self.state == "open" and not self.outq and t - self.last_write >= _M.KEEPALIVE then
        self:write(self.codec.ping(self.protocol), self.codec.DATA_OTHER)
    end
end

-- ===== ending =====

--- The client's end, reported once: on_disconnected(ctx, err) runs in a
-- coroutine of its own.  `notify`: tell the service (CloseConnection).
function Session:finish(err, notify, reason)
    if self.state == "closed" then return end
    if notify then
        -- what the client was sent before (a Close message last) goes first
        self:flush_queue()
        local frame = self.codec.close_connection(self.id, reason or "")
        if frame then self.server:write(self.conn, frame) end
    end
    self.state = "closed"
    self.waiting = {}
    self.outq = nil
    local sched = self.server.sched
    for id, r in pairs(self.results) do
        self.results[id] = nil
        sched:wake(r.co, nil, "signalr.ctx:invoke: the client disconnected before it answered",
            { code = "ECLOSED" })
    end
    for _, st in pairs(self.streams) do st.cancelled = true end
    for _, up in pairs(self.uploads) do
        up.done, up.err = true, "the client disconnected"
        self:wake_upload(up)
    end
    self.server:ended(self, err)
end

--- Close from the hub (ctx:close): a Close message (with the reason as its
-- error, if any), then CloseConnection; on_disconnected runs once.
function Session:close(reason)
    if self.state == "closed" then return true end
    local bytes = self.codec.close(self.protocol, reason, false)
    if bytes and self.state ~= "handshake" then self:write(bytes, self.codec.DATA_OTHER) end
    self:finish(nil, true, reason)
    return true
end

-- A client that broke the protocol: the close ASP.NET Core sends (error
-- "Connection closed with an error."), then CloseConnection with why.
function Session:fail(why)
    if self.state == "closed" then return end
    if self.state ~= "handshake" then
        local bytes = self.codec.close(self.protocol, "Connection closed with an error.", false)
        if bytes then self:write(bytes, self.codec.DATA_OTHER) end
    end
    self.server:log("warn", "hub client " .. tostring(self.id) .. " closed: " .. tostring(why))
    self:finish(why, true, why)
end

-- ===== reading =====

--- ConnectionData from the service: fragments (partial) wait for the rest.
function Session:data(payload, partial)
    if self.state == "closed" then return end
    if partial then
        self.parts = self.parts or {}
        self.parts[#self.parts + 1] = payload
        return
    end
    if self.parts then
        self.parts[#self.parts + 1] = payload
        payload = concat(self.parts)
        self.parts = nil
    end
    local msgs, msg = self.reader:feed(payload)
    if not msgs then
        if self.state == "handshake" then return self:refuse(msg) end
        return self:fail(msg)
    end
    for i = 1, #msgs do
        if self.state == "closed" then return end
        self:message(msgs[i])
    end
end

-- The handshake refused: its answer carries the reason, then the end.
function Session:refuse(why)
    self:write(self.codec.handshake_response(why), self.codec.DATA_HANDSHAKE)
    self:finish(why, true, why)
end

local T = { HANDSHAKE = 0, INVOCATION = 1, STREAM_ITEM = 2, COMPLETION = 3,
            STREAM_INVOCATION = 4, CANCEL = 5, PING = 6, CLOSE = 7 }
_M.T = T

function Session:message(m)
    local ty = m.type
    if self.state == "handshake" then
        if ty ~= T.HANDSHAKE then return self:fail("a message before the handshake") end
        if not self.migrated then
            self:write(self.codec.handshake_response(nil), self.codec.DATA_HANDSHAKE)
        end
        self.state = "connecting"
        return self.server:connected(self)
    end
    if ty == T.INVOCATION or ty == T.STREAM_INVOCATION then
        if #self.waiting >= _M.MAX_WAITING then
            return self:fail("more than " .. _M.MAX_WAITING .. " invocations waiting")
        end
        self.waiting[#self.waiting + 1] = m
        return self:next()
    elseif ty == T.CLOSE then
        -- the client leaves: its error (if any) goes to on_disconnected
        return self:finish(m.error, true, "")
    elseif ty == T.STREAM_ITEM then
        local up = self.uploads[m.invocation_id]
        if up and not up.done then
            if up.tail - up.head + 1 >= _M.MAX_STREAM_BUFFER then
                return self:fail("over " .. _M.MAX_STREAM_BUFFER .. " stream items the hub has not read")
            end
            up.tail = up.tail + 1
            up.items[up.tail] = m.item
            self:wake_upload(up)
        end
    elseif ty == T.COMPLETION then
        -- an upload stream's end first, then a client result (ASP.NET
        -- Core's order); a completion for anything else is ignored
        local id = m.invocation_id
        local up = self.uploads[id]
        if up then
            up.done, up.err = true, m.error
            self.uploads[id] = nil
            return self:wake_upload(up)
        end
        local r = self.results[id]
        if r then
            self.results[id] = nil
            if m.error then
                return self.server.sched:wake(r.co, nil, "signalr.ctx:invoke: the client answered with an"
                    .. " error: " .. m.error, { code = "ECLIENT", message = m.error })
            end
            local v = json_null
            if m.result then
                local ok, dv = pcall(self.codec.decode, m.result)
                if ok and dv ~= nil then v = dv end
            end
            return self.server.sched:wake(r.co, v)
        end
    elseif ty == T.CANCEL then
        local st = self.streams[m.invocation_id]
        if st then st.cancelled = true end
    end
    -- pings keep nothing alive here (the service watches the client);
    -- stream items, completions and cancels for nothing this hub started
    -- are ignored, as ASP.NET Core does; acks and sequences likewise
end

--- The connected handler ended: invocations that waited may run.
function Session:opened()
    if self.state == "connecting" then
        self.state = "open"
        self:next()
    end
end

--- Run waiting invocations while fewer than max_parallel_invocations run.
function Session:next()
    local max = self.server.o.max_parallel
    while self.running < max and self.state == "open" do
        local m = remove(self.waiting, 1)
        if not m then return end
        self:invoke(m)
    end
end

-- Run one invocation in a coroutine; its outcome becomes the Completion.
function Session:invoke(m)
    local server, id, target = self.server, m.invocation_id, m.target
    local detailed = server.o.detailed_errors
    local streaming = m.type == T.STREAM_INVOCATION
    -- m.error: MessagePack arguments JSON cannot carry (NaN, say): a
    -- failure to bind them, answered as such; the connection lives on
    local args = not m.error and self.codec.decode_args(m.arguments)
    if m.error then server:log("debug", "invocation of '" .. tostring(target) .. "': " .. m.error) end
    local method, why
    if args and m.stream_ids then
        -- the client streams items in: an iterator per stream, after the
        -- arguments, in the order of streamIds
        local ids = self.codec.decode_args(m.stream_ids)
        if not ids then
            args = nil
        else
            for i = 1, ids.n do
                if self.uploads[ids[i]] then
                    if id then self:complete(id, nil, "Invocation ID '" .. tostring(ids[i])
                        .. "' is already in use.") end
                    return
                end
                args.n = args.n + 1
                args[args.n] = self:upload(ids[i])
            end
        end
    end
    if not args then
        why = dispatch.TEXT.binding(target, detailed)
    else
        method, why = dispatch.check(server.registry, target, args.n, detailed)
    end
    if not method then
        -- an invocation without an id (the client's send) gets no answer
        if id then self:complete(id, nil, why) end
        return
    end
    self.running = self.running + 1
    server.sched:spawn(function(ok, ...)
        self.running = self.running - 1
        if not ok then
            local err = ...
            if not dispatch.is_hub_error(err) then
                server:log("error", "hub method '" .. method.name .. "' failed for "
                    .. tostring(self.id) .. ": " .. tostring(err))
            end
        end
        local st = ok and dispatch.is_stream((...)) and (...) or nil
        if ok and (st ~= nil) ~= streaming then
            -- a stream for an invoke, or a value for a stream call
            if id and self.state ~= "closed" then
                self:complete(id, nil, dispatch.TEXT.streaming_mismatch(target, st ~= nil))
            end
        elseif st then
            self:stream_out(id, st)
        elseif id and self.state ~= "closed" then
            local result, err = dispatch.outcome(target, self.codec.encode, detailed, ok, ...)
            self:complete(id, result, err)
        end
        self:next()
    end, method.fn, self.ctx, unpack(args, 1, args.n))
end

-- ===== streams =====

-- A stream to the client waits while its server connection holds
-- CONN_ROOM unwritten bytes or the client's own queue is not empty (items
-- go as the connection can take them).

--- Run a stream to the client (its own coroutine): each item as a
-- StreamItem, then a Completion; a cancel stops it (on_cancel once).
function Session:stream_out(id, st)
    local server, sched, detailed = self.server, self.server.sched, self.server.o.detailed_errors
    self.streams[id] = st
    local conn = self.conn
    local function room()
        return st.cancelled or self.state == "closed"
            or (not self.outq and conn:unwritten() < _M.CONN_ROOM)
    end
    sched:spawn(function(ok, err)
        self.streams[id] = nil
        if st.cancelled and st.on_cancel then
            local cok, cerr = pcall(st.on_cancel)
            if not cok then server:log("error", "a stream's on_cancel failed: " .. tostring(cerr)) end
        end
        if self.state == "closed" then return end
        if not ok then
            if not dispatch.is_hub_error(err) then
                server:log("error", "a stream to " .. tostring(self.id) .. " failed: " .. tostring(err))
            end
            return self:complete(id, nil, dispatch.TEXT.streaming_failed(err, detailed))
        end
        self:complete(id, nil, nil)
    end, function()
        local n = 0
        while not st.cancelled and self.state ~= "closed" do
            local item = st.iter()
            if item == nil or st.cancelled or self.state == "closed" then break end
            local text, msg = self.codec.encode(item)
            if not text then error("a stream item cannot be encoded as JSON: " .. tostring(msg), 0) end
            local bytes = self.codec.stream_item(self.protocol, id, text)
            if bytes then self:write(bytes, self.codec.DATA_INVOCATION) end
            -- other clients go on every 64 items; a full connection waits
            n = n + 1
            if n % 64 == 0 or not room() then sched:wait(room, nil) end
        end
    end)
end

--- An iterator over a stream the client sends in (its StreamItems until
-- its Completion): waits inside the handler for each item.
function Session:upload(stream_id)
    -- items from head to tail wait for the handler
    local up = { items = {}, head = 1, tail = 0, done = false }
    self.uploads[stream_id] = up
    local sched = self.server.sched
    return function()
        while true do
            local h = up.head
            if h <= up.tail then
                local text = up.items[h]
                up.items[h] = nil -- taken
                up.head = h + 1
                local ok, v = pcall(self.codec.decode, text)
                if ok then return v end
                return json_null
            end
            if up.done then
                if up.err then error(dispatch.hub_error("the client's stream failed: " .. up.err)) end
                return nil
            end
            -- woken by name when an item or the end comes (wake_upload)
            up.co = coroutine.running()
            local _, why = sched:wait(nil, nil)
            up.co = nil
            if why == "closed" then error(dispatch.hub_error("the server was closed")) end
        end
    end
end

-- An upload's handler waits for its next item: wake it.
function Session:wake_upload(up)
    local co = up.co
    if co then
        up.co = nil
        self.server.sched:wake(co, true)
    end
end

-- ===== client results =====

--- ctx:invoke: call a client method that returns a value and wait (in a
-- coroutine) for it: the value, or nil, message, details (ECLIENT, the
-- client's error; ETIMEDOUT; ECLOSED, it left).
function Session:invoke_client(target, args, timeout)
    local sched = self.server.sched
    if not sched:inside() then
        error("signalr.ctx:invoke waits for the client's answer: call it from a handler, or from a"
            .. " coroutine of your own (server:poll() resumes it when the answer comes)", 3)
    end
    if self.state == "closed" then
        return nil, "signalr.ctx:invoke: the client's connection is closed", { code = "ECLOSED" }
    end
    local text, msg = self.codec.encode_args(args)
    if not text then return nil, "signalr.ctx:invoke: " .. tostring(msg), { code = "EINVAL" } end
    self.next_result = self.next_result + 1
    local id = "r" .. self.next_result
    local bytes, m2, d = self.codec.invocation(self.protocol, id, target, text)
    if not bytes then return nil, "signalr.ctx:invoke: " .. m2, d end
    local ok, m3, d3 = self:write(bytes, self.codec.DATA_INVOCATION)
    if not ok then return nil, "signalr.ctx:invoke: " .. m3, d3 end
    local r = { co = coroutine.running() }
    self.results[id] = r
    local v, why, details = sched:wait(nil, timeout)
    if self.results[id] == r then
        -- the deadline passed with no answer
        self.results[id] = nil
        return nil, "signalr.ctx:invoke: the client did not answer within " .. timeout .. " s",
            { code = "ETIMEDOUT" }
    end
    if v == nil then return nil, why, details end
    return v
end

-- ===== membership =====

--- ctx:join / ctx:leave: an acknowledged message on the client's own
-- server connection; waits (inside a handler) for the answer.
function Session:group(what, group)
    if self.state == "closed" then
        return nil, "signalr.ctx:" .. what .. ": the client's connection is closed", { code = "ECLOSED" }
    end
    return self.server:group(self, what, group)
end

return _M
