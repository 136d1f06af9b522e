--- Small helpers of the emulator: query strings, raw JSON members, replies,
-- bounded bodies.
local core = require "signalr.core"
local headers = require "http.headers"
local cjson = require("cjson").new()

local byte, find, sub, lower = string.byte, string.find, string.sub, string.lower
local tostring = tostring

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

return _M
