--- The client side of the emulator: negotiate, then the WebSocket with the
-- JSON or the MessagePack hub protocol (handshake, invocations, pings,
-- close).  With upstream templates (--upstream), client events and hub
-- method invocations go to the app's upstream and completions come back
-- to the invoking client; without one that matches, clients are
-- listen-only: one that invokes a hub method is disconnected with a close
-- message saying why.
--
-- In Default mode (--service-mode default), and in Classic mode when a
-- hub server is connected as the client comes, the client is routed to a
-- hub server (signalr_emulator.server): the emulator reads its handshake
-- request only to learn its protocol, then carries its bytes both ways;
-- the hub server answers the handshake, pings and everything else.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local websocket = require "http.websocket"
local core = require "signalr.core"
local rand = require "openssl.rand"
local util = require "signalr_emulator.util"
local auth = require "signalr_emulator.auth"
local hubs_mod = require "signalr_emulator.hubs"
local upstream = require "signalr_emulator.upstream"
local msgpack = require "signalr_emulator.msgpack"
local server = require "signalr_emulator.server"

local cjson = util.json
local type, pcall, tostring = type, pcall, tostring
local concat, format, byte = table.concat, string.format, string.byte

local _M = {}

local RS = "\30"

-- Serverless clients only send a handshake, pings and close messages: a
-- message may take at most this many bytes (its frames and their headers
-- together; util.strict_websocket closes with 1009 past it).
local MAX_MESSAGE = 64 * 1024
-- A routed client (Default mode) calls hub methods: its messages may be
-- larger (its hub server applies its own limit; ASP.NET Core's is 32 KB).
local MAX_ROUTED_MESSAGE = 1024 * 1024
_M.MAX_ROUTED_MESSAGE = MAX_ROUTED_MESSAGE

-- What the service answers a client's handshake with in Default mode when
-- no hub server is connected (seen from the service by its users).
local NO_SERVER = "SignalR Service is now in 'Default' service mode. Current mode works as a proxy"
    .. " that routes client traffic to the connected app servers. However app servers are not connected."
_M.NO_SERVER = NO_SERVER

local function random_id(n)
    local b = rand.bytes(n)
    return (b:gsub(".", function(c) return format("%02x", byte(c)) end))
end

local function hub_param(query)
    local h = query.hub and query.hub[#query.hub]
    if not h or h == "" then return nil end
    return h
end

-- The token of a client request, checked: claims | nil after replying.
-- The Authorization header, else (query given: the connection itself) the
-- last access_token query value.
local function authorize(emu, stream, req, method, query, hub)
    local token = (req:get("authorization") or ""):match("^[Bb]earer%s+(%S+)$")
    if not token and query and query.access_token then token = query.access_token[#query.access_token] end
    local key, reason = emu:client_key(token)
    local claims
    if key then claims, reason = auth.client(key, token, hub, req:get(":authority")) end
    if not claims then
        util.error_reply(stream, 401, "Error.Unauthorized", "authorization failed: " .. reason, method)
    end
    return claims
end

--- POST /client/negotiate?hub=...&negotiateVersion=1
function _M.negotiate(emu, stream, req, method, query)
    if method ~= "POST" then
        util.error_reply(stream, 405, "Error.Method.NotAllowed", "negotiate takes POST", method)
        return 405
    end
    local hub = hub_param(query)
    local ok, why = false, "the hub query parameter is required"
    if hub then
        ok, why = core.validate("hub", hub)
        why = why and ("invalid hub name: " .. why)
    end
    if not ok then
        util.error_reply(stream, 400, "Error.Hub.Invalid", why, method)
        return 400
    end
    local claims = authorize(emu, stream, req, method, nil, hub)
    if not claims then return 401 end
    -- negotiate takes no body: one is read over, up to --max-body
    local _, too_big = util.read_body(stream, emu.max_body, emu.timeout, method)
    if too_big then return too_big end
    local version = tonumber(query.negotiateVersion and query.negotiateVersion[1] or "0") or 0
    local id = random_id(11)
    local ctoken = version >= 1 and random_id(16) or id
    emu.pending[ctoken] = {
        id = id, key = hubs_mod.key(hub), user = auth.user_of(claims),
        hub = hub, claims = claims, expires = os.time() + 60,
    }
    local body = {
        negotiateVersion = version >= 1 and 1 or 0,
        connectionId = id,
        availableTransports = {
            { transport = "WebSockets", transferFormats = { "Text", "Binary" } },
            { transport = "ServerSentEvents", transferFormats = { "Text" } },
            { transport = "LongPolling", transferFormats = { "Text", "Binary" } },
        },
    }
    if version >= 1 then body.connectionToken = ctoken end
    util.reply(stream, 200, cjson.encode(body), nil, method)
    return 200
end

-- Parse the records of one text message: { record or false, its text }.
local function records(data)
    local out = {}
    for rec in data:gmatch("([^" .. RS .. "]*)" .. RS) do
        local ok, msg = pcall(cjson.decode, rec)
        out[#out + 1] = { ok and type(msg) == "table" and msg or false, rec }
    end
    return out
end

-- The messages of one binary (MessagePack) message: { record or false,
-- its bytes without the length prefix }.
local function mp_records(data)
    local out = {}
    local parts = msgpack.split(data)
    if not parts then return { { false, "" } } end
    for _, b in ipairs(parts) do out[#out + 1] = { msgpack.to_record(b) or false, b } end
    return out
end

-- ===== Server-Sent Events and Long Polling: a session per connection =====
-- Client messages arrive by POST into the session's inbox; the service's
-- go out on the held event stream (SSE) or in the answer to the next
-- poll (Long Polling).  A session looks like the WebSocket to serve().

local Session = {}
Session.__index = Session

local function now() return cqueues.monotime() end

local function new_session(kind, stream)
    return setmetatable({ kind = kind, stream = stream, inbox = {}, in_cond = condition.new(),
                          outbox = {}, out_cond = condition.new(), closed = false,
                          max_message = MAX_MESSAGE }, Session)
end

-- the next client message (nil, "timeout" after timeout s; nil once closed)
function Session:receive(timeout)
    local deadline = timeout and now() + timeout
    while #self.inbox == 0 do
        if self.closed then return nil end
        local left = deadline and deadline - now()
        if left and left <= 0 then return nil, "timeout" end
        self.in_cond:wait(left)
    end
    return table.remove(self.inbox, 1), "text"
end

function Session:send(data)
    if self.closed then return nil end
    if self.kind == "sse" then
        -- one event per message; a line break starts another data line
        local ok = self.stream:write_chunk("data: " .. data:gsub("\n", "\ndata: ") .. "\r\n\r\n", false)
        if not ok then self:close() end
        return ok
    end
    self.outbox[#self.outbox + 1] = data
    self.out_cond:signal()
    return true
end

function Session:close()
    if self.closed then return end
    self.closed = true
    self.in_cond:signal()
    self.out_cond:signal()
    if self.kind == "sse" then pcall(self.stream.write_chunk, self.stream, "", true) end
end

-- POST /client/?hub=&id=: a message from an SSE or Long Polling client;
-- DELETE: a Long Polling client leaves; GET without an upgrade: a poll.
local function session_request(emu, stream, method, id)
    local sess = emu.sessions[id]
    if not sess then
        util.error_reply(stream, 404, "Error.Connection.NotExisted", "no connection " .. id, method)
        return 404
    end
    if method == "POST" then
        local body, too_big = util.read_body(stream, sess.max_message, emu.timeout, method)
        if not body then
            sess:close()
            return too_big
        end
        sess.inbox[#sess.inbox + 1] = body
        sess.in_cond:signal()
        util.reply(stream, 200, nil, nil, method)
        return 200
    elseif method == "DELETE" then
        sess:close()
        util.reply(stream, 202, nil, nil, method)
        return 202
    end
    -- a poll: what is waiting, else wait for it (at most 100 s); 204 once closed
    local deadline = now() + (emu.poll_timeout or 100)
    while #sess.outbox == 0 and not sess.closed and now() < deadline do
        sess.out_cond:wait(deadline - now())
    end
    if #sess.outbox == 0 and sess.closed then
        util.reply(stream, 204, nil, nil, method)
        return 204
    end
    local data = concat(sess.outbox)
    sess.outbox = {}
    local h = require("http.headers").new()
    h:append(":status", "200")
    h:append("content-type", "application/octet-stream")
    h:append("content-length", string.format("%d", #data))
    stream:write_headers(h, false)
    stream:write_chunk(data, true)
    return 200
end

--- /client/?hub=...&id=...: GET with an upgrade to WebSocket, GET with
-- Accept: text/event-stream (SSE), a first GET (Long Polling), and the
-- POSTs, polls and DELETE of SSE and Long Polling connections.
function _M.connect(emu, stream, req, method, query)
    local hub = hub_param(query)
    local id = query.id and query.id[#query.id]
    if (method ~= "GET" and method ~= "POST" and method ~= "DELETE") or not hub or not id then
        util.error_reply(stream, 400, "Error.Request.Invalid",
            "expected GET, POST or DELETE /client/?hub=<hub>&id=<connectionToken>", method)
        return 400
    end
    if not authorize(emu, stream, req, method, query, hub) then return 401 end
    if method ~= "GET" or (emu.sessions[id] and not websocket.new_from_stream(stream, req)) then
        return session_request(emu, stream, method, id)
    end
    local p = emu.pending[id]
    if not p or p.expires < os.time() then
        util.error_reply(stream, 404, "Error.Connection.NotExisted", "no negotiated connection " .. id, method)
        return 404
    end
    if p.active then
        util.error_reply(stream, 409, "Error.Connection.Duplicate", "connection " .. id .. " is already open", method)
        return 409
    end
    p.query = (req:get(":path") or ""):match("(%?.*)$")
    -- the request's headers, for a hub server's OpenConnection (lua-http
    -- keeps Host as :authority)
    p.headers = { req:has(":authority") and { "host", req:get(":authority") } or nil }
    for k, v in req:each() do
        if k:sub(1, 1) ~= ":" and k ~= "host" then p.headers[#p.headers + 1] = { k, v } end
    end
    local ws = websocket.new_from_stream(stream, req)
    local transport, name, result = ws, "WebSockets", 101
    if ws then
        assert(ws:accept())
        util.strict_websocket(ws, MAX_MESSAGE)
    elseif (req:get("accept") or ""):find("text/event-stream", 1, true) then
        local h = require("http.headers").new()
        h:append(":status", "200")
        h:append("content-type", "text/event-stream")
        h:append("cache-control", "no-cache")
        stream:write_headers(h, false)
        -- a first line, so the client sees the stream open
        stream:write_chunk(":\r\n", false)
        transport, name, result = new_session("sse", stream), "ServerSentEvents", 200
        -- the event stream's socket: its end is the client's leaving
        transport.sock = stream.connection.socket
        emu.sessions[id] = transport
    else
        -- Long Polling: the first poll answers at once; the session lives on
        transport, name, result = new_session("lp"), "LongPolling", 200
        emu.sessions[id] = transport
        util.reply(stream, 200, nil, nil, method)
    end
    p.active = true
    emu:log("info", "client %s connected to hub %s over %s (user %s)", p.id, p.key, name, tostring(p.user))
    if name == "LongPolling" then
        -- served from its own thread: this request is answered
        cqueues.running():wrap(function()
            _M.serve(emu, transport, p)
            transport:close()
            emu.sessions[id] = nil
            emu.pending[id] = nil
        end)
        return result
    end
    _M.serve(emu, transport, p)
    if name == "ServerSentEvents" then
        transport:close()
        emu.sessions[id] = nil
    else
        -- gone without a close frame: the socket is closed here
        util.finish_websocket(transport)
    end
    emu.pending[id] = nil
    return result
end

-- A record (JSON text) as bytes in the client's protocol: MessagePack
-- clients get each record transcoded (the arguments as they were sent).
--- A client's invoke: send(frame) an invocation frame with invocationId
-- id and wait up to timeout seconds for its Completion (the reader puts
-- it in waiting[id].record): the record, or nil and "gone" / "timeout".
local function invoker(waiting, gone, send)
    return function(id, frame, timeout)
        if gone() then return nil, "gone" end
        local w = { cond = condition.new() }
        waiting[id] = w
        send(frame)
        w.cond:wait(timeout)
        waiting[id] = nil
        if w.record then return w.record end
        return nil, w.gone and "gone" or "timeout"
    end
end

local function encoder(emu, id, binary)
    return function(frame)
        if not binary then return frame end
        local out = {}
        for rec in frame:gmatch("([^" .. RS .. "]*)" .. RS) do
            local ok, b = pcall(msgpack.from_record, rec)
            if ok then
                out[#out + 1] = b
            else
                emu:log("warn", "client %s: cannot send as MessagePack: %s", id, tostring(b))
            end
        end
        return concat(out)
    end
end

-- The Close message the service sends when it closes a client.
local function close_record(reason, allow_reconnect)
    return cjson.encode { type = 7, error = reason, allowReconnect = allow_reconnect or false } .. RS
end

-- Completions for the service's own invocations (REST :invoke) taken out
-- of a routed client's message: what is left for its hub server.  The
-- message goes as it is unless it is whole and well formed.
local function take_completions(msg, binary, waiting)
    local items, taken, left = binary and msgpack.split(msg), false, {}
    if binary then
        if not items then return msg end
        for i, b in ipairs(items) do items[i] = { msgpack.to_record(b), b } end
    else
        if msg:sub(-1) ~= RS then return msg end
        items = records(msg)
    end
    for _, item in ipairs(items) do
        local r, raw = item[1], item[2]
        local w = r and r.type == 3 and type(r.invocationId) == "string" and waiting[r.invocationId]
        if w then
            w.record = r
            w.cond:signal()
            taken = true
        else
            left[#left + 1] = binary and (msgpack.varint(#raw) .. raw) or (raw .. RS)
        end
    end
    return taken and concat(left) or msg
end

-- The life of a client routed to hub server sc (Default mode): first is
-- what it sent first (its handshake request), protocol the one it asked.
local function serve_routed(emu, ws, p, protocol, first, sc)
    local binary = protocol == "messagepack"
    local kind = binary and "binary" or "text"
    local encode = encoder(emu, p.id, binary)
    ws.max_message = MAX_ROUTED_MESSAGE
    -- out: bytes for the client, in order; held: the service's own
    -- messages (REST, persistent mode), until the server's handshake
    -- answer has gone out; pending: the bytes of both
    local out, held, pending, cond = {}, {}, 0, condition.new()
    local closing, done, greeted, answer_seen = nil, false, false, 0
    -- why the service dropped it, when its server is told why
    local close_reason
    -- closed by its server (or with it): no CloseConnection goes back
    local quiet = false
    local conn = { id = p.id, user = p.user, groups = {}, protocol = protocol, server = sc }
    local waiting = {}

    local function push(list, bytes)
        if closing then return end
        pending = pending + #bytes
        if pending > emu.max_client_buffer then
            emu:log("warn", "client %s does not read: over %d bytes wait for it (--max-client-buffer):"
                .. " disconnected", p.id, emu.max_client_buffer)
            out, held = {}, {}
            close_reason = "the client does not read its messages"
            conn.close(close_reason)
            -- the writer may be stuck writing to it: the socket goes, so
            -- the writer and the reader end and its server hears at once
            local sock = ws.socket or ws.sock
            if sock and sock.shutdown then pcall(sock.shutdown, sock) end
            return
        end
        list[#list + 1] = bytes
        cond:signal()
    end
    -- ConnectionData from a hub server: to the client as it is; the first
    -- record separator ends the handshake answer
    function conn.from_server(bytes)
        if closing then return end
        push(out, bytes)
        if not greeted then
            answer_seen = answer_seen + #bytes
            if bytes:find(RS, 1, true) or answer_seen > MAX_MESSAGE then
                greeted = true
                for _, b in ipairs(held) do push(out, b) end
                held = nil
            end
        end
    end
    local function service_message(bytes)
        push(greeted and out or held, bytes)
    end
    function conn.send(frame) service_message(encode(frame)) end
    function conn.send_raw(bytes) service_message(bytes) end
    conn.invoke = invoker(waiting, function() return closing or done end, function(f) conn.send(f) end)
    -- how: nil, the service closes it (REST, a management connection):
    -- a Close message with reason, and CloseConnection to its server;
    -- "server": its hub server's CloseConnection (a Close message only
    -- when the server gave a reason); "offline": its server is gone
    function conn.close(reason, how)
        if closing then return end
        quiet = how ~= nil
        if how == "offline" then reason = "ServerOffline" end
        if how == "server" and not reason then
            closing = ""
        elseif not greeted then
            -- before the server's handshake answer, the client expects one
            closing = cjson.encode { error = reason or "The connection was closed by the service." } .. RS
        else
            closing = encode(close_record(reason, how == "offline"))
        end
        emu.state:remove(p.key, p.id)
        cond:signal()
    end

    emu.state:add(p.key, conn)
    emu.stats.routed_clients = (emu.stats.routed_clients or 0) + 1
    if not server.attach(emu, sc, conn, p, first) then conn.close(nil, "offline") end
    emu:log("info", "client %s routed to server connection %s (%s)", p.id, sc.id, protocol)

    if ws.kind == "sse" and ws.sock then
        -- nothing is written unless the server speaks (the emulator does
        -- not ping routed clients): the end of the event stream's
        -- connection, which lua-http reads for a next request, is watched
        local sock = ws.sock
        cqueues.running():wrap(function()
            while not done and not ws.closed do
                if sock:eof("r") then
                    ws:close()
                    break
                end
                cqueues.sleep(0.25)
            end
        end)
    end

    local writer_done = condition.new()
    cqueues.running():wrap(function()
        while true do
            if #out == 0 and not closing and not done then cond:wait() end
            if #out > 0 then
                local batch = concat(out)
                out, pending = {}, 0
                if not ws:send(batch, kind) then break end
            end
            if closing then
                if closing ~= "" then ws:send(closing, kind) end
                ws:close(1000, "")
                break
            end
            if done and #out == 0 then break end
        end
        writer_done:signal()
        writer_done = nil
    end)

    local why = ""
    while true do
        local msg = ws:receive()
        if not msg then
            local failed = ws.failed
            if failed and failed.code == 1009 then
                emu:log("warn", "client %s sent a message over %d bytes: disconnected", p.id, MAX_ROUTED_MESSAGE)
                why = "the client sent a message over " .. MAX_ROUTED_MESSAGE .. " bytes"
            elseif failed then
                emu:log("warn", "client %s: %s: disconnected (close %d)", p.id, failed.reason, failed.code)
                why = failed.reason
            end
            break
        end
        if next(waiting) then msg = take_completions(msg, binary, waiting) end
        if msg ~= "" and not closing then server.forward(emu, sc, p.id, msg) end
    end
    done = true
    cond:signal()
    if writer_done then writer_done:wait(5) end
    for _, w in pairs(waiting) do
        w.gone = true
        w.cond:signal()
    end
    emu.state:remove(p.key, p.id)
    emu.stats.routed_clients = emu.stats.routed_clients - 1
    server.detach(emu, sc, p.id, not quiet and (close_reason or why) or nil)
    emu:log("info", "client %s disconnected from hub %s (server connection %s)", p.id, p.key, sc.id)
end

-- The life of one connected client.
function _M.serve(emu, ws, p)
    -- handshake: {"protocol":"json"|"messagepack","version":1}<RS>
    local data = ws:receive(emu.handshake_timeout)
    local first = data and records(data)[1]
    first = first and first[1]
    if ws.failed then
        emu:log("warn", "client %s: %s: disconnected (close %d)", p.id, ws.failed.reason, ws.failed.code)
        return
    elseif not first or (first.protocol ~= "json" and first.protocol ~= "messagepack") then
        local why = first and ("protocol '" .. tostring(first.protocol)
            .. "' is not supported (json, messagepack)") or "no handshake received"
        ws:send(cjson.encode { error = why } .. RS, "text")
        ws:close(1000, "")
        emu:log("info", "client %s refused: %s", p.id, why)
        return
    end
    local mode = emu.service_mode or "serverless"
    if mode ~= "serverless" then
        -- Default and Classic: to a hub server, when one is connected
        local sc = server.pick(emu, p.key)
        if sc then return serve_routed(emu, ws, p, first.protocol, data, sc) end
        if mode == "default" then
            emu.stats.no_server_refusals = (emu.stats.no_server_refusals or 0) + 1
            ws:send(cjson.encode { error = NO_SERVER } .. RS, "text")
            ws:close(1000, "")
            emu:log("info", "client %s refused: hub %s has no hub server connected", p.id, p.key)
            return
        end
        -- Classic without a hub server: serverless for the client's life
    end
    local serverless = mode == "serverless"
    local binary = first.protocol == "messagepack"
    ws:send("{}" .. RS, "text")
    local info = { id = p.id, hub = p.hub, user = p.user, claims = p.claims, query = p.query }

    local queue, cond, closing, done = {}, condition.new(), nil, false
    -- the serverless upstream is the Serverless mode's
    local connected_up = serverless and upstream.match(emu.upstreams, p.hub, "connections", "connected")
    local disconnected_up = serverless and upstream.match(emu.upstreams, p.hub, "connections", "disconnected")
    local conn = { id = p.id, user = p.user, groups = {}, protocol = first.protocol }
    local encode = encoder(emu, p.id, binary)
    -- invocations waiting for the client's Completion (client results)
    local waiting = {}
    conn.invoke = invoker(waiting, function() return closing or done end, function(f) conn.send(f) end)
    function conn.send(frame)
        if closing then return end
        queue[#queue + 1] = encode(frame)
        cond:signal()
    end
    -- bytes already in the client's protocol (an upstream's completion)
    function conn.send_raw(bytes)
        if closing then return end
        queue[#queue + 1] = bytes
        cond:signal()
    end
    function conn.close(reason)
        if closing then return end
        closing = encode(close_record(reason))
        -- gone for REST at once, even before the socket is closed
        emu.state:remove(p.key, p.id)
        cond:signal()
    end
    emu.state:add(p.key, conn)
    if connected_up then
        upstream.post(emu, connected_up, info, "connections", "connected", '{"type":10}', "application/json")
    end

    -- writer: drains the queue, pings every ping_interval seconds
    local writer_done = condition.new()
    cqueues.running():wrap(function()
        while not done do
            if #queue == 0 and not closing then
                if not cond:wait(emu.ping_interval) and not done then
                    queue[1] = encode('{"type":6}' .. RS)
                end
            end
            if #queue > 0 then
                local batch = concat(queue)
                queue = {}
                if not ws:send(batch, binary and "binary" or "text") then break end
            end
            if closing then
                ws:send(closing, binary and "binary" or "text")
                ws:close(1000, "")
                break
            end
        end
        writer_done:signal()
        writer_done = nil
    end)

    while true do
        local msg = ws:receive()
        if not msg then
            local failed = ws.failed
            if failed and failed.code == 1009 then
                emu:log("warn", "client %s sent a message over %d bytes: disconnected", p.id, MAX_MESSAGE)
            elseif failed then
                emu:log("warn", "client %s: %s: disconnected (close %d)", p.id, failed.reason, failed.code)
            end
            break
        end
        local stop
        for _, item in ipairs(binary and mp_records(msg) or records(msg)) do
            local r, raw = item[1], item[2]
            local up = serverless and r and r.type == 1 and type(r.target) == "string"
                and upstream.match(emu.upstreams, p.hub, "messages", r.target)
            if not r then
                conn.close(binary and "Invalid message: not MessagePack" or "Invalid message: not JSON")
                stop = true
            elseif up then
                -- a hub method call: to the upstream, in order; its answer
                -- to the client when the call expects one
                local status, body = upstream.post(emu, up, info, "messages", r.target, raw,
                    binary and "application/x-msgpack" or "application/json")
                local inv = r.invocationId
                if type(inv) == "string" then
                    if status == 200 and body ~= "" then
                        conn.send_raw(body)
                    elseif status == 200 or status == 204 then
                        conn.send(cjson.encode { type = 3, invocationId = inv } .. RS)
                    else
                        conn.send(cjson.encode { type = 3, invocationId = inv,
                            error = "Invocation failed, status code " .. (status == 0 and 500 or status) } .. RS)
                    end
                end
            elseif r.type == 7 then
                stop = true
            elseif r.type == 3 and type(r.invocationId) == "string" and waiting[r.invocationId] then
                -- a Completion for an invocation the service is waiting on
                local w = waiting[r.invocationId]
                w.record = r
                w.cond:signal()
            elseif r.type ~= 6 and not serverless then
                -- Classic mode, no hub server when it came: the service's answer
                conn.close("No server available")
                emu:log("info", "client %s sent type %s with no hub server: disconnecting", p.id, tostring(r.type))
            elseif r.type ~= 6 then
                conn.close("Invocation is not allowed: in serverless mode clients "
                    .. "are listen-only (message type " .. tostring(r.type)
                    .. (r.target and (", target '" .. tostring(r.target) .. "'") or "") .. ")")
                emu:log("info", "client %s sent type %s: disconnecting", p.id, tostring(r.type))
            end
        end
        if stop then break end
    end
    done = true
    cond:signal()
    -- what the writer has to say (a close message) goes before the socket closes
    if writer_done then writer_done:wait(5) end
    for _, w in pairs(waiting) do
        w.gone = true
        w.cond:signal()
    end
    emu.state:remove(p.key, p.id)
    if disconnected_up then
        upstream.post(emu, disconnected_up, info, "connections", "disconnected", '{"type":11}',
            "application/json")
    end
    emu:log("info", "client %s disconnected from hub %s", p.id, p.key)
end

return _M
