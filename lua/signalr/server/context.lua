--- The `ctx` a hub server's handlers get: one per client connection.
--
-- Fields: `connection_id`, `user_id` (nil for an anonymous client),
-- `claims` (an array of `{ type = ..., value = ... }`, as the service
-- passed them), `query` (the client's query string), `headers` (name →
-- array of values, as the service passed them), `protocol` (`"json"` or
-- `"messagepack"`), `items` (a table for the application's own state of
-- this connection), `hub` (the hub's name).
-- @module signalr.server.context
local type, error, select, setmetatable, getmetatable, ipairs, tostring =
    type, error, select, setmetatable, getmetatable, ipairs, tostring

local _M = {}

local Ctx = {}
Ctx.__index = Ctx
_M.Ctx = Ctx

-- The claim types a user id may come in, the service's first (the .NET
-- server SDK reads asrs.s.uid; an AccessKey-signed client token names the
-- user in nameid or the long ClaimTypes URI).
local UID = { "asrs.s.uid", "nameid",
              "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier" }

local function user_of(claims)
    for _, want in ipairs(UID) do
        for _, c in ipairs(claims) do
            if c.type == want and c.value ~= "" then return c.value end
        end
    end
    return nil
end

--- A context for the session `s` (made by signalr.server).
function _M.new(s, open)
    local claims = open.claims or {}
    return setmetatable({
        connection_id = open.connection_id,
        user_id = user_of(claims),
        claims = claims,
        query = open.query or "",
        headers = open.headers or {},
        protocol = open.protocol,
        hub = s.hub_name,
        items = {},
        _s = s,
    }, Ctx)
end

local function check(self, what)
    if getmetatable(self) ~= Ctx then
        error("signalr.ctx:" .. what .. ": call it with ':' (ctx:" .. what .. "(...))", 3)
    end
end

--- Invoke the client method `target` on this client (no answer awaited).
-- @treturn[1] true once handed to the server connection
-- @treturn[2] nil, message, details (`ECLOSED` when the client is gone,
-- `EINVAL` for arguments JSON cannot carry)
-- @raise on a wrong argument type
function Ctx:send(target, ...)
    check(self, "send")
    if type(target) ~= "string" or target == "" then
        error("signalr.ctx:send: target must be a non-empty string, got " .. type(target), 2)
    end
    return self._s:send(target, { n = select("#", ...), ... })
end

--- Call the client method `target` and wait for the value it returns
-- (SignalR 7+ client results: `connection.on("GetInput", () => 42)`).
-- Waits inside a handler without holding other clients; outside one it
-- needs a coroutine of the caller's own, and raises otherwise.
-- @return the client's value, or nil, message, details (`ECLIENT` the
-- client's error, `ETIMEDOUT` after `client_result_timeout`, `ECLOSED`
-- it disconnected)
function Ctx:invoke(target, ...)
    check(self, "invoke")
    if type(target) ~= "string" or target == "" then
        error("signalr.ctx:invoke: target must be a non-empty string, got " .. type(target), 2)
    end
    local s = self._s
    return s:invoke_client(target, { n = select("#", ...), ... }, s.server.o.client_result_timeout)
end

--- Close this client's connection; `reason` reaches it as the close
-- message's error (nil: a clean close).  on_disconnected runs once.
function Ctx:close(reason)
    check(self, "close")
    if reason ~= nil and type(reason) ~= "string" then
        error("signalr.ctx:close: reason must be a string or nil, got " .. type(reason), 2)
    end
    return self._s:close(reason)
end

local function group_call(self, what, group)
    check(self, what)
    if type(group) ~= "string" then
        error("signalr.ctx:" .. what .. ": group must be a string, got " .. type(group), 3)
    end
    return self._s:group(what, group)
end

--- Add this connection to a group; waits (inside a handler) for the
-- service's acknowledgement: true, or nil, message, details.
function Ctx:join(group) return group_call(self, "join", group) end

--- Remove this connection from a group (as join).
function Ctx:leave(group) return group_call(self, "leave", group) end

--- Wait inside a handler, letting other clients' invocations go on:
-- for an async request object (until it is done: its result, or nil,
-- message, details), or until fn() is true (true, or nil, "timeout").
-- @param what a request object of async mode, or a function
-- @tparam[opt] number timeout seconds
function Ctx:await(what, timeout)
    check(self, "await")
    return self._s.server:await(what, timeout)
end

function Ctx:__tostring()
    return "signalr.ctx(" .. tostring(self.connection_id) .. ")"
end

return _M
