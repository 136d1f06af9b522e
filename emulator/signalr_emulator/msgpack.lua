--- The MessagePack hub protocol for the emulator's clients: frames are
-- varint-length-prefixed MessagePack arrays.  Scalars go through
-- lua-messagepack (Debian: lua-messagepack); what is here is the framing
-- and a JSON -> MessagePack transcoder, because REST sends arrive as JSON
-- text and lua-cjson (2.1.0 in Debian) decodes `[]` and `{}` to the same
-- empty table: walking the JSON text keeps arrays, objects and nulls as
-- they were sent ("byte-faithful arguments").
local cjson = require "cjson"

local function load_mp()
    local ok, m = pcall(require, "MessagePack")
    if ok then return m end
    -- Debian packages it for 5.1-5.3; the pure-Lua 5.3 module runs on 5.4
    return dofile("/usr/share/lua/5.3/MessagePack.lua")
end
local mp = load_mp()

local char, byte, sub, find, concat = string.char, string.byte, string.sub, string.find, table.concat
local floor = math.floor

local _M = { mp = mp }

-- the length prefix: the library's (signalr.upstream frames completions)
_M.varint = require("signalr.upstream")._varint

--- Split a binary WebSocket message into its MessagePack messages (the
-- bytes without their prefix); nil when a prefix or a length is wrong.
function _M.split(data)
    local out, i, n = {}, 1, #data
    while i <= n do
        local len, shift, b = 0, 0
        repeat
            b = byte(data, i)
            if not b or shift > 28 then return nil end
            len = len + (b % 128) * 2 ^ shift
            shift = shift + 7
            i = i + 1
        until b < 128
        len = floor(len)
        if i + len - 1 > n then return nil end
        out[#out + 1] = sub(data, i, i + len - 1)
        i = i + len
    end
    return out
end

local function header(small, mid16, mid32, n)
    if n < 16 then return char(small + n) end
    if n < 65536 then return char(mid16, floor(n / 256), n % 256) end
    return char(mid32, floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

function _M.array_header(n) return header(0x90, 0xdc, 0xdd, n) end
function _M.map_header(n) return header(0x80, 0xde, 0xdf, n) end

-- One JSON value at i of s, as MessagePack into out; returns the next index.
local function past_space(s, i)
    local _, e = find(s, "^[ \t\r\n]*", i)
    return e + 1
end

local value

local function json_string(s, i)
    local j = i + 1
    while true do
        local q = find(s, '["\\]', j)
        if not q then error("unterminated string") end
        if sub(s, q, q) == '"' then
            return cjson.decode(sub(s, i, q)), q + 1
        end
        j = q + 2
    end
end

value = function(s, i, out)
    i = past_space(s, i)
    local c = sub(s, i, i)
    if c == "{" then
        local parts, n = {}, 0
        i = past_space(s, i + 1)
        if sub(s, i, i) == "}" then
            out[#out + 1] = _M.map_header(0)
            return i + 1
        end
        while true do
            i = past_space(s, i)
            local k
            k, i = json_string(s, i)
            parts[#parts + 1] = mp.pack(k)
            i = past_space(s, i)
            if sub(s, i, i) ~= ":" then error("expected ':'") end
            i = value(s, i + 1, parts)
            n = n + 1
            i = past_space(s, i)
            local d = sub(s, i, i)
            i = i + 1
            if d == "}" then break end
            if d ~= "," then error("expected ',' or '}'") end
        end
        out[#out + 1] = _M.map_header(n)
        out[#out + 1] = concat(parts)
        return i
    elseif c == "[" then
        local parts, n = {}, 0
        i = past_space(s, i + 1)
        if sub(s, i, i) == "]" then
            out[#out + 1] = _M.array_header(0)
            return i + 1
        end
        while true do
            i = value(s, i, parts)
            n = n + 1
            i = past_space(s, i)
            local d = sub(s, i, i)
            i = i + 1
            if d == "]" then break end
            if d ~= "," then error("expected ',' or ']'") end
        end
        out[#out + 1] = _M.array_header(n)
        out[#out + 1] = concat(parts)
        return i
    elseif c == '"' then
        local str
        str, i = json_string(s, i)
        out[#out + 1] = mp.pack(str)
        return i
    elseif sub(s, i, i + 3) == "true" then
        out[#out + 1] = "\195"
        return i + 4
    elseif sub(s, i, i + 4) == "false" then
        out[#out + 1] = "\194"
        return i + 5
    elseif sub(s, i, i + 3) == "null" then
        out[#out + 1] = "\192"
        return i + 4
    end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not num or num == "" then error("unexpected '" .. c .. "'") end
    local n = tonumber(num)
    if find(num, "[.eE]") or n ~= floor(n) or n >= 2 ^ 63 or n < -2 ^ 63 then
        out[#out + 1] = char(0xcb) .. string.pack(">d", n)
    else
        out[#out + 1] = mp.pack(math.tointeger(n) or n)
    end
    return i + #num
end

--- MessagePack bytes of one JSON value (text).
function _M.from_json(text)
    local out = {}
    local i = value(text, 1, out)
    if past_space(text, i) <= #text then error("trailing text") end
    return concat(out)
end

--- A hub message in the JSON protocol (one record, without the record
-- separator) as a framed MessagePack message, for the types the service
-- sends: Invocation (1), Completion (3), Ping (6), Close (7).
function _M.from_record(rec_text)
    local r = cjson.decode(rec_text)
    local t = r.type
    local body
    if t == 1 then
        local args = rec_text:match('"arguments":(.*)}%s*$')
        body = _M.array_header(6) .. "\1" .. _M.map_header(0)
            .. (type(r.invocationId) == "string" and mp.pack(r.invocationId) or "\192")
            .. mp.pack(r.target) .. (args and _M.from_json(args) or _M.array_header(0))
            .. _M.array_header(0)
    elseif t == 6 then
        body = _M.array_header(1) .. "\6"
    elseif t == 7 then
        body = _M.array_header(3) .. "\7" .. (type(r.error) == "string" and mp.pack(r.error) or "\192")
            .. (r.allowReconnect and "\195" or "\194")
    else
        error("no MessagePack form for message type " .. tostring(t))
    end
    return _M.varint(#body) .. body
end

--- A MessagePack message from a client as the record table the JSON
-- protocol gives (`type`, `invocationId`, `target`, `arguments`,
-- `result`, `error`), or nil.
function _M.to_record(bytes)
    local ok, a = pcall(mp.unpack, bytes)
    if not ok or type(a) ~= "table" or type(a[1]) ~= "number" then return nil end
    local t = a[1]
    if t == 1 then
        return { type = 1, invocationId = a[3], target = a[4], arguments = a[5] }
    elseif t == 3 then
        -- [3, headers, invocationId, resultKind (1 error, 2 void, 3 result), value]
        local r = { type = 3, invocationId = a[3] }
        if a[4] == 1 then r.error = a[5] elseif a[4] == 3 then r.result = a[5] end
        return r
    elseif t == 6 or t == 7 then
        return { type = t }
    end
    return { type = t }
end

return _M
