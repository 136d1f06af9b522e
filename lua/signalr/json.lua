--- JSON for invocation arguments and claims: the binding's exact codec
-- (`core.json_encode`), with lua-cjson's conventions (an empty nested
-- table encodes as `{}`; the top-level `args` list as `[]`; `cjson.null`,
-- which is `signalr.null`, sends a JSON null).  Numbers keep their exact
-- value: integers to 64 bits on Lua 5.3/5.4 (to 2^53 on 5.1 and LuaJIT,
-- whose numbers are doubles), doubles in the fewest digits that read back
-- (17 at most).  Decoding (replies) stays lua-cjson's.
-- @module signalr.json
local cjson = require("cjson").new()
local core = require "signalr.core"

local type, pairs, pcall, tostring, error = type, pairs, pcall, tostring, error
local exact, exact_args = core.json_encode, core.json_encode_args

-- text | raises: as cjson.encode, exact
local function encode(v)
    local text, msg = exact(v)
    if not text then error(msg, 0) end
    return text
end

local _M = { null = cjson.null }

--- Encode an invocation's argument list as a JSON array.
-- @return text, or nil + message for values JSON cannot carry, or
--   false + message for a wrong shape (the caller raises)
function _M.encode_args(args)
    -- the common case in one call: a sequence, which the encoder writes
    -- as an array (it writes a table as an array only when its keys are
    -- 1..n)
    local text = exact_args(args)
    if text then return text end
    if args == nil then return "[]" end
    if type(args) ~= "table" then
        return false, "args must be a table (a sequence of arguments) or nil, got "
            .. type(args)
    end
    local n, count = #args, 0
    for k in pairs(args) do
        if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
            return false, "args must be a sequence (keys 1..n); found key "
                .. tostring(k) .. " (use signalr.null for a JSON null)"
        end
        count = count + 1
    end
    if count ~= n then
        return false, "args has holes; use signalr.null for a JSON null"
    end
    if n == 0 then return "[]" end
    local ok
    ok, text = pcall(encode, args)
    if not ok then
        return nil, "arguments cannot be encoded as JSON: " .. tostring(text)
    end
    return text
end

--- Encode extra JWT claims (a table with string keys) as a JSON object.
function _M.encode_claims(claims)
    if type(claims) ~= "table" then
        return false, "opts.claims must be a table, got " .. type(claims)
    end
    for k in pairs(claims) do
        if type(k) ~= "string" then
            return false, "opts.claims keys must be strings"
        end
    end
    if next(claims) == nil then return nil end
    local ok, text = pcall(encode, claims)
    if not ok then
        return nil, "claims cannot be encoded as JSON: " .. tostring(text)
    end
    return text
end

--- Encode any value (for printing); never raises.
function _M.encode_value(v)
    local ok, text = pcall(encode, v)
    return ok and text or "null"
end

_M.decode = cjson.decode

--- Decode JSON the user gives as arguments (the signalr command's
-- ARGS_JSON): exactly (64-bit integers, doubles), raising like
-- cjson.decode; text lua-cjson reads but the exact decoder refuses (not
-- valid UTF-8) is read by lua-cjson, so the encoder names the problem.
function _M.decode_exact(text)
    local v = core.json_decode(text)
    if v ~= nil then return v end
    return cjson.decode(text)
end
return _M
