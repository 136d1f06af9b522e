--- Small helpers of the emulator: query strings, raw JSON members, replies,
-- bounded bodies, and the reader of WebSocket frames from peers.
local core = require "signalr.core"
local headers = require "http.headers"
local cjson = require("cjson").new()
local monotime = require("cqueues").monotime
local EPIPE = require("cqueues.errno").EPIPE
local bxor = require("http.bit").bxor
local utf8lib = utf8 or require "compat53.utf8"

local byte, char, find, sub, lower = string.byte, string.char, string.find, string.sub, string.lower
local concat, max = table.concat, math.max
local tostring, pcall = tostring, pcall

local _M = { json = cjson }

--- Split "a=1&b=2&b=3" into { a = {"1"}, b = {"2","3"} } (decoded, + = space).
function _M.parse_query(q)
    local out = {}
    if not q or q == "" then return out end
    for part in (q .. "&"):gmatch("([^&]*)&") do
        if part ~= "" then
            local k, v = part:match("^([^=]*)=?(.*)$")
            k = core.url_decode(k, true)
            v = core.url_decode(v, true)
            if k and v then
                local list = out[k]
                if not list then list = {}; out[k] = list end
                list[#list + 1] = v
            end
        end
    end
    return out
end

-- Index just past the JSON string that starts at s[i] == '"'.
local function skip_string(s, i)
    local j = i + 1
    while true do
        local k = find(s, '["\\]', j)
        if not k then return nil end
        if byte(s, k) == 92 then j = k + 2 else return k + 1 end
    end
end

-- Index just past the value starting at s[i] (after white space).
local function skip_value(s, i)
    i = find(s, "%S", i)
    if not i then return nil end
    local c = byte(s, i)
    if c == 34 then return skip_string(s, i) end
    if c ~= 123 and c ~= 91 then
        local k = find(s, "[,}%]%s]", i)
        return k or #s + 1
    end
    local depth, j = 0, i
    while true do
        local k = find(s, '[%[%]{}"]', j)
        if not k then return nil end
        local d = byte(s, k)
        if d == 34 then
            j = skip_string(s, k)
            if not j then return nil end
        else
            if d == 123 or d == 91 then depth = depth + 1 else depth = depth - 1 end
            j = k + 1
            if depth == 0 then return j end
        end
    end
end

--- The raw text of top-level member `key` (matched case-insensitively, as
-- the service matches property names) of a JSON object, so values are
-- forwarded byte for byte.
function _M.raw_member(s, key)
    local i = find(s, "{", 1, true)
    if not i then return nil end
    i = i + 1
    while true do
        i = find(s, "%S", i)
        if not i or byte(s, i) ~= 34 then return nil end
        local e = skip_string(s, i)
        if not e then return nil end
        local name = sub(s, i + 1, e - 2)
        local colon = find(s, "%S", e)
        if not colon or byte(s, colon) ~= 58 then return nil end
        local vs = find(s, "%S", colon + 1)
        local ve = vs and skip_value(s, vs)
        if not ve then return nil end
        if lower(name) == key then return sub(s, vs, ve - 1) end
        i = find(s, "%S", ve)
        if not i or byte(s, i) ~= 44 then return nil end
        i = i + 1
    end
end

--- Write a complete reply.  body may be nil; for HEAD the body is dropped.
function _M.reply(stream, status, body, extra, method)
    local h = headers.new()
    h:append(":status", string.format("%d", status))
    if extra then
        for k, v in pairs(extra) do h:append(k, v) end
    end
    if body and not h:has("content-type") then
        h:append("content-type", "application/json; charset=utf-8")
    end
    if status ~= 204 and status ~= 304 then
        h:append("content-length", tostring(body and #body or 0))
    end
    if not body or method == "HEAD" then
        stream:write_headers(h, true)
    else
        stream:write_headers(h, false)
        stream:write_chunk(body, true)
    end
end

--- A stand-in for obj: the methods in `overrides` replace obj's, every
-- other method is called on obj itself, other fields read through.
function _M.proxy(obj, overrides)
    return setmetatable(overrides, { __index = function(_, k)
        local v = obj[k]
        if type(v) == "function" then
            return function(_, ...) return v(obj, ...) end
        end
        return v
    end })
end

--- An ErrorDetail body plus the x-ms-error-code header, as the service.
function _M.error_reply(stream, status, code, message, method, extra)
    local h = extra or {}
    h["x-ms-error-code"] = code
    _M.reply(stream, status, cjson.encode { code = code, message = message }, h, method)
end

--- Close the TCP connection at once, without reading what is left: for
-- requests whose framing cannot be trusted or whose body is too large.
function _M.drop(stream)
    local sock = stream.connection:take_socket()
    if sock then sock:close() end
end

--- The request body, read up to limit bytes within timeout seconds: the
-- body ("" when there is none), or nil, 413 after answering 413 and
-- closing the connection (the rest of the body is not read).
function _M.read_body(stream, limit, timeout, method)
    local body = stream:get_body_chars(limit + 1, timeout)
    if body and #body > limit then
        _M.error_reply(stream, 413, "Error.Payload.TooLarge", "the body exceeds " .. limit .. " bytes", method)
        _M.drop(stream)
        return nil, 413
    end
    return body or ""
end

-- ===== WebSocket frames from peers, read by RFC 6455's rules =====
-- The emulator is the server side of its WebSockets: a peer's frames must
-- be masked (close 1002 otherwise), its text must be UTF-8 (1007), and a
-- message may take at most max_message bytes, frame headers included
-- (1009, refused from the frame's header, before its payload is read).
-- lua-http's own reader takes unmasked frames and buffers a frame of
-- whatever length its header declares: each socket gets this one instead.

-- Whether s is UTF-8 as RFC 3629 has it (shortest forms, no surrogates).
local function is_utf8(s)
    if not find(s, "[\128-\255]") then return true end
    return utf8lib.len(s) ~= nil and not find(s, "\237[\160-\191]")
end
_M.is_utf8 = is_utf8

-- XOR data with the 4-byte mask key, a byte at a time...
local function unmask_bytes(data, key)
    local k, out = { byte(key, 1, 4) }, {}
    for i = 1, #data do out[i] = char(bxor(byte(data, i), k[(i - 1) % 4 + 1])) end
    return concat(out)
end

-- ... or, with the integer operators of Lua 5.3+, 32 bytes at a time (a
-- 16 MiB message from a server connection takes a fraction of a second).
local unmask = unmask_bytes
do
    local compile = loadstring or load -- luacheck: ignore 113
    local chunk = compile([[
        local slow = ...
        local pack, unpack, concat, sub = string.pack, string.unpack, table.concat, string.sub
        local FMT = "<I8I8I8I8"
        return function(data, key)
            local k = unpack("<I4", key)
            k = k | (k << 32)
            local out, whole = {}, #data - #data % 32
            for i = 1, whole, 32 do
                local a, b, c, d = unpack(FMT, data, i)
                out[#out + 1] = pack(FMT, a ~ k, b ~ k, c ~ k, d ~ k)
            end
            out[#out + 1] = slow(sub(data, whole + 1), key)
            return concat(out)
        end]])
    if chunk then unmask = chunk(unmask_bytes) end
end
_M.unmask = unmask

local function left(deadline)
    return deadline and max(0, deadline - monotime())
end

-- A big-endian number of s[i..j].
local function be_number(s, i, j)
    local n = 0
    for k = i, j do n = n * 256 + byte(s, k) end
    return n
end

-- The next frame, taken from the socket only once all of it has arrived
-- (another thread may read too: a close waits for the peer's close frame):
-- opcode, payload, whether it is the message's last, its bytes on the
-- wire; nil, err, errno when the socket fails, ends or times out; false,
-- close code, reason for a frame that fails the connection.  room: what
-- the message may still take.
local function read_frame(sock, deadline, room)
    local ok, err, errno = sock:fill(2, left(deadline))
    if not ok then return nil, err, errno end
    local h = sock:xread(2, "b", 0)
    sock:unget(h)
    local b1, b2 = byte(h, 1, 2)
    local fin, opcode, len = b1 >= 128, b1 % 16, b2 % 128
    if b1 % 128 >= 16 then return false, 1002, "reserved bits set (no extension was agreed)" end
    if b2 < 128 then return false, 1002, "an unmasked frame (a client must mask its frames)" end
    local size = 6 + (len == 126 and 2 or len == 127 and 8 or 0)
    ok, err, errno = sock:fill(size, left(deadline))
    if not ok then return nil, err, errno end
    local head = sock:xread(size, "b", 0)
    sock:unget(head)
    if len == 126 then
        len = be_number(head, 3, 4)
    elseif len == 127 then
        if byte(head, 3) >= 128 then return false, 1002, "a frame length with its top bit set" end
        len = be_number(head, 3, 10)
    end
    if opcode >= 8 and (len > 125 or not fin) then
        return false, 1002, "a control frame over 125 bytes or fragmented"
    elseif opcode < 8 and size + len > room then
        return false, 1009, "message too big"
    end
    ok, err, errno = sock:fill(size + len, left(deadline))
    if not ok then return nil, err, errno end
    sock:xread(size, "b", 0)
    local payload = len > 0 and sock:xread(len, "b", 0) or ""
    return opcode, unmask(payload, sub(head, size - 3, size)), fin, size + len
end

-- Fail the connection (RFC 6455 7.1.7): a close frame with code, then the
-- TCP connection closed without waiting for the peer's close frame.
local function fail(ws, code, why)
    ws.failed = { code = code, reason = why }
    ws.got_close_code = ws.got_close_code or code
    pcall(ws.close, ws, code, why, 1)
    return nil, why, code
end

-- Close codes a peer may send (RFC 6455 7.4, and the IANA registry).
local function valid_close_code(code)
    return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
        or (code >= 3000 and code <= 4999)
end

-- The peer's close frame: answered with its code (RFC 6455 5.5.1), then
-- the connection is closed.
local function closed_by_peer(ws, data)
    if #data == 1 then return fail(ws, 1002, "a close frame of one byte") end
    local code = #data >= 2 and be_number(data, 1, 2) or nil
    local reason = sub(data, 3)
    if code and not valid_close_code(code) then
        return fail(ws, 1002, "close code " .. code .. " is not one a peer may send")
    end
    if not is_utf8(reason) then return fail(ws, 1007, "a close reason that is not UTF-8") end
    ws.got_close_code = code or 1005
    pcall(ws.close, ws, code or 1000, reason ~= "" and reason or nil, 1)
    return nil, reason, code or 1005
end

-- ws:receive(timeout): the next message and "text" | "binary"; nil, err,
-- errno when the socket ends, fails or times out; nil, reason, close code
-- once the peer closed or the connection failed (then ws.failed says why).
local function receive(ws, timeout)
    if ws.readyState ~= 1 and ws.readyState ~= 2 then return nil, "the WebSocket is closed", EPIPE end
    local deadline = timeout and monotime() + timeout
    while true do
        local opcode, data, fin, cost = read_frame(ws.socket, deadline, ws.max_message - ws.message_size)
        if opcode == nil then return nil, data, fin end
        if opcode == false then return fail(ws, data, fin) end
        if opcode == 8 then return closed_by_peer(ws, data) end
        if opcode == 9 then
            ws:send_pong(data, left(deadline))
        elseif opcode > 2 and opcode ~= 10 then
            return fail(ws, 1002, "reserved opcode " .. opcode)
        elseif opcode ~= 10 then
            if (opcode == 0) ~= (ws.parts ~= nil) then
                return fail(ws, 1002, opcode == 0 and "a continuation frame with no message to continue"
                    or "a new message before the last one ended")
            end
            if opcode ~= 0 then ws.parts, ws.message_kind = {}, opcode end
            ws.parts[#ws.parts + 1] = data
            ws.message_size = ws.message_size + cost
            if fin then
                local message, kind = concat(ws.parts), ws.message_kind
                ws.parts, ws.message_size = nil, 0
                if kind == 1 and not is_utf8(message) then
                    return fail(ws, 1007, "a text message that is not UTF-8")
                end
                return message, kind == 1 and "text" or "binary"
            end
        end
    end
end

--- Read ws (an accepted lua-http WebSocket) with the strict reader above:
-- messages of at most max_message bytes.
function _M.strict_websocket(ws, max_message)
    ws.receive, ws.max_message, ws.message_size = receive, max_message, 0
    return ws
end

--- Close ws unless it is closed: when its peer is gone (the TCP
-- connection closed or reset without a close frame) the socket must not
-- linger half closed.
function _M.finish_websocket(ws)
    if ws.readyState and ws.readyState < 3 then pcall(ws.close, ws, 1000, nil, 1) end
end

return _M
