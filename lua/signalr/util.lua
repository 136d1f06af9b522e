--- Small helpers the Lua layer shares: copies, message surgery, the one
-- check of `opts.endpoints` on a client of one endpoint, the nginx test,
-- and a finalizer for tables (Lua 5.1 included).
-- @module signalr.util
local type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall =
    type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall

local _M = {}

--- A shallow copy of t.
function _M.shallow(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

--- A message without its "signalr.<method>: " prefix.
function _M.bare(msg)
    return (tostring(msg):gsub("^signalr%.[%w_]+: ", ""))
end

-- What a log line must never carry: a connection string's key, a bearer
-- token, a JWT, a client secret or assertion in a form body.
local SECRETS = {
    { "([Aa]ccess[Kk]ey=)[^;%s]*", "%1<redacted>" },
    { "([Bb]earer%s+)[%w%-_%.~+/=]+", "%1<redacted>" },
    { "eyJ[%w%-_]+%.[%w%-_]+%.?[%w%-_]*", "<redacted>" },
    { "(client_secret=)[^&%s]*", "%1<redacted>" },
    { "(client_assertion=)[^&%s]*", "%1<redacted>" },
    { "([Aa]ccess[Tt]oken\"?%s*[:=]%s*\"?)[^\"&%s,}]*", "%1<redacted>" },
}

--- A line without anything that looks like a secret.
function _M.redact(msg)
    msg = tostring(msg)
    for i = 1, #SECRETS do msg = msg:gsub(SECRETS[i][1], SECRETS[i][2]) end
    return msg
end

--- The logger of option `on_log(level, message)`: levels "debug", "info",
-- "warn", "error"; each line redacted (`redact`); an error the hook
-- raises is dropped (logging never fails a call).  nil without a hook.
-- @tparam[opt] function on_log
function _M.logger(on_log)
    if not on_log then return nil end
    return function(level, msg)
        pcall(on_log, level, _M.redact(msg))
    end
end

--- Is this code running inside nginx with cosockets (lua-nginx-module)?
function _M.in_nginx()
    return type(ngx) == "table" and type(ngx.socket) == "table"
end

--- A call's `opts.endpoints` on a client of one endpoint: that endpoint is
-- named "".  true | nil, message, details (`EINVAL`).
-- @tparam {string,...} names the names the call gave
-- @tparam string what the method, for the message
function _M.one_endpoint(names, what)
    for _, n in ipairs(names) do
        if n ~= "" then
            return nil, "signalr." .. what .. ": unknown endpoint '" .. n .. "' (this client has"
                .. " one endpoint, named \"\"; several come with option 'endpoints')",
                { code = "EINVAL" }
        end
    end
    if #names == 0 then return _M.no_endpoint(what) end
    return true
end

--- The names a call's `endpoints` option gives: a list of names or of
-- endpoint tables (as `client:endpoints()` returns); nil when absent.
-- @tparam any v the option's value
-- @tparam string method the hub method, for the message
-- @tparam[opt] number level where a wrong type points (default: the
--   caller of the hub method that called this)
-- @raise on a wrong type
function _M.names(v, method, level)
    if v == nil then return nil end
    level = level or 3
    local function bad(what)
        error("signalr." .. method .. ": " .. what, level + 1)
    end
    if type(v) ~= "table" then
        bad("opts.endpoints must be a list of endpoint names or endpoint tables, got " .. type(v))
    end
    local out, n = {}, 0
    for _ in pairs(v) do n = n + 1 end
    if n ~= #v then bad("opts.endpoints must be a list (a sequence)") end
    for i = 1, #v do
        local e = v[i]
        if type(e) == "table" then e = e.name end
        if type(e) ~= "string" then
            bad("opts.endpoints[" .. i .. "] must be an endpoint name or a table with a name")
        end
        out[i] = e
    end
    return out
end

--- The failure of an `opts.endpoints` that names nothing.
function _M.no_endpoint(what)
    return nil, "signalr." .. what .. ": opts.endpoints names no endpoint", { code = "EINVAL" }
end

--- A failure that sent nothing: nil, msg, `{ code = code, sent = false }`
-- plus the fields of `extra`.
function _M.fail(code, msg, extra)
    local d = { code = code, sent = false }
    for k, v in pairs(extra or {}) do d[k] = v end
    return nil, msg, d
end

--- A value whose collection runs fn (`__gc` on a table from 5.2 on,
-- `newproxy` on 5.1 and LuaJIT).  Keep it where fn's owner lives.
function _M.on_collect(fn)
    if newproxy then
        local guard = newproxy(true)
        getmetatable(guard).__gc = fn
        return guard
    end
    return setmetatable({}, { __gc = fn })
end

return _M
