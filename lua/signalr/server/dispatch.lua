--- Hub methods of a hub server: the registry (names match without regard
-- to case, as in ASP.NET Core), the checks a call gets before its handler
-- runs, and the texts a failed call sends back, which are ASP.NET Core's
-- so clients see what they would see from a .NET hub.
--
-- No I/O here: `signalr.server` feeds invocations in and writes what
-- comes out.
-- @module signalr.server.dispatch
local type, error, tostring, select, setmetatable, getmetatable, pcall =
    type, error, tostring, select, setmetatable, getmetatable, pcall
local lower, format = string.lower, string.format
local getinfo = debug.getinfo

local _M = {}

-- ===== hub errors =====

local HubError = {}
HubError.__index = HubError
HubError.__tostring = function(e) return "HubException: " .. e.message end

--- An error whose message reaches the client, as a HubException's does in
-- ASP.NET Core: `error(signalr.hub_error("bad move"))`.
-- @tparam string message
-- @treturn table the error value to raise
function _M.hub_error(message)
    if type(message) ~= "string" then
        error("signalr.hub_error: message must be a string, got " .. type(message), 2)
    end
    return setmetatable({ message = message }, HubError)
end

--- True for a value made by `hub_error`.
function _M.is_hub_error(v) return getmetatable(v) == HubError end

-- ===== streams to the client =====

local Stream = {}
Stream.__index = Stream

--- A stream of results for a client's `connection.stream(...)`: return it
-- from a handler.  `iter()` is called for each next item (nil ends the
-- stream with a Completion; an error ends it with the error rules);
-- `opts.on_cancel()` runs once if the client cancels.
-- @tparam function iter
-- @tparam[opt] table opts `on_cancel`
function _M.stream(iter, opts)
    if type(iter) ~= "function" then
        error("signalr.stream: expected an iterator function, got " .. type(iter), 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("signalr.stream: opts must be a table, got " .. type(opts), 2)
    end
    local on_cancel = opts and opts.on_cancel
    if on_cancel ~= nil and type(on_cancel) ~= "function" then
        error("signalr.stream: opts.on_cancel must be a function, got " .. type(on_cancel), 2)
    end
    return setmetatable({ iter = iter, on_cancel = on_cancel }, Stream)
end

--- True for a value made by `stream`.
function _M.is_stream(v) return getmetatable(v) == Stream end

-- ===== ASP.NET Core's texts (DefaultHubDispatcher, ErrorMessageHelper) =====

local T = {}
_M.TEXT = T

function T.unknown(target) return "Unknown hub method '" .. target .. "'" end

-- BuildErrorMessage: the message alone, or with the exception's type and
-- message when it is a HubException or detailed errors are on.
local function build(msg, err, detailed)
    if _M.is_hub_error(err) then return msg .. " HubException: " .. err.message end
    if detailed then
        local text = type(err) == "table" and err.message or err
        return msg .. " LuaError: " .. tostring(text)
    end
    return msg
end
_M.build = build

function T.failed(target, err, detailed)
    return build("An unexpected error occurred invoking '" .. target .. "' on the server.", err, detailed)
end

function T.arguments(target, given, expected, detailed)
    local msg = "Failed to invoke '" .. target .. "' due to an error on the server."
    if detailed then
        return msg .. format(" InvalidDataException: Invocation provides %d argument(s) but target"
            .. " expects %d.", given, expected)
    end
    return msg
end

function T.binding(target, detailed)
    local msg = "Failed to invoke '" .. target .. "' due to an error on the server."
    if detailed then
        return msg .. " InvalidDataException: Error binding arguments. Make sure that the types of"
            .. " the provided values match the types of the hub method being invoked."
    end
    return msg
end

function T.streaming_failed(err, detailed)
    return build("An error occurred on the server while streaming results.", err, detailed)
end

function T.streaming_mismatch(target, streaming)
    if streaming then
        return "The client attempted to invoke the streaming '" .. target
            .. "' method with a non-streaming invocation."
    end
    return "The client attempted to invoke the non-streaming '" .. target
        .. "' method with a streaming invocation."
end

-- ===== the registry =====

local Registry = {}
Registry.__index = Registry

function _M.registry() return setmetatable({ methods = {} }, Registry) end

-- How many arguments a handler takes after ctx: nil when it takes any
-- number (a vararg function, or one the debug library cannot read).
local function arity(fn)
    local ok, info = pcall(getinfo, fn, "u")
    if not ok or type(info) ~= "table" or info.nparams == nil or info.isvararg then return nil end
    -- ctx is the first; a handler that names no parameter takes none
    return info.nparams > 0 and info.nparams - 1 or 0
end

--- Register `fn(ctx, ...)` for the hub method `name` (case-insensitive).
-- Raises on a wrong type or a name registered twice.
function Registry:add(name, fn, where)
    where = where or "signalr.server:on"
    if type(name) ~= "string" or name == "" then
        error(where .. ": the method name must be a non-empty string, got " .. type(name), 3)
    end
    if type(fn) ~= "function" then
        error(where .. ": the handler for '" .. name .. "' must be a function, got " .. type(fn), 3)
    end
    local key = lower(name)
    local had = self.methods[key]
    if had then
        error(where .. ": '" .. name .. "' is registered already (as '" .. had.name
            .. "'; names match without regard to case)", 3)
    end
    self.methods[key] = { name = name, fn = fn, nargs = arity(fn) }
end

--- The method for a target as a client sent it, or nil.
function Registry:find(target)
    if type(target) ~= "string" then return nil end
    return self.methods[lower(target)]
end

-- ===== one call =====

--- Check an invocation against its method before anything runs.
-- @return the method, or nil + the error text to answer with (nil text:
-- answer nothing)
function _M.check(reg, target, nargs, detailed)
    local method = reg:find(target)
    if not method then return nil, T.unknown(target) end
    -- whether a method streams shows in what it returns (signalr.stream):
    -- a mismatch is answered after it ran
    if method.nargs and nargs ~= method.nargs then
        return nil, T.arguments(target, nargs, method.nargs, detailed)
    end
    return method
end

--- What a handler's outcome becomes: result JSON (or nil for a void
-- completion) and the error text (nil on success).  `ok` and the values
-- are what coroutine.resume gave back at the end.
function _M.outcome(target, encode, detailed, ok, ...)
    if not ok then return nil, T.failed(target, (...), detailed) end
    if select("#", ...) == 0 or (...) == nil then return nil, nil end
    local text, msg = encode((...))
    if not text then
        -- a result JSON cannot carry is the server's failure
        return nil, T.failed(target, "the result cannot be encoded as JSON: " .. tostring(msg), detailed)
    end
    return text, nil
end

return _M
