--- What the transports of one endpoint share (blocking, async, nginx,
-- persistent): the endpoint's description, its name "" for
-- `opts.endpoints`, health, listing, and the client token negotiate
-- signs.  Each transport's class takes these through `__index`.
-- @module signalr.transport.base
local util = require "signalr.util"
local request = require "signalr.request"

local pairs, tostring = pairs, tostring

local _M = {}

local Single = {}
_M.Single = Single

--- The endpoint, as a list of one in the shape a client with several
-- endpoints gives (`{ name = "", type = "primary", online = true,
-- endpoint, client_endpoint, server_endpoint }`).
function Single:endpoints()
    local i = self.info
    return { { name = "", type = "primary", online = true, endpoint = i.endpoint,
               client_endpoint = i.client_endpoint, server_endpoint = i.server_endpoint } }
end

--- What the connection string says (never the key): a copy.
function Single:describe()
    return util.shallow(self.info)
end

--- Is the service reachable and healthy? (HEAD /api/health, no token)
function Single:health()
    return self:call("health", {}, "health")
end

--- A listing over the endpoints a call targets: here, the one.
-- `fetch(names, list)` appends one endpoint's members to list.
function Single.list(_, names, _, fetch)
    return fetch(names, {})
end

--- One hub operation: what every transport of one endpoint checks (the
-- call's `opts.endpoints` names this endpoint, "", or nothing; negotiate
-- runs even after close; a closed transport sends nothing), then the
-- transport's own `run(op, params, what)`.
-- @tparam string op the operation ("broadcast", "user_exists", ...)
-- @tparam table params its parameters (the core's names)
-- @tparam string what the hub method, for messages
-- @tparam[opt] table names the call's `opts.endpoints`
-- @return a result, a request object, or nil, message, details
function Single:call(op, params, what, names)
    if names then
        local ok, msg, d = util.one_endpoint(names, what)
        if not ok then return nil, msg, d end
    end
    if op == "negotiate" then return self:negotiate(params) end
    if self.closing then return request.closed(what) end
    return self:run(op, params, what)
end

-- The parameter each single send's id fills.
local SEND_PARAM = { to_user = "user", to_group = "group", to_connection = "connection" }

--- A single send's parameter table (the core's names) from the fields
-- `send_data` takes: for the paths that need one (Entra ID, a closed
-- client, several endpoints).
-- @tparam string op "broadcast", "to_user", "to_group" or "to_connection"
-- @tparam string hub
-- @tparam string target
-- @tparam string text the arguments' JSON text
-- @tparam[opt] string id the user, group or connection
-- @tparam[opt] table excluded connection ids
function _M.send_params(op, hub, target, text, id, excluded)
    local param = SEND_PARAM[op]
    if param then
        return { target = target, hub = hub, arguments = text, [param] = id, excluded = excluded }
    end
    return { target = target, hub = hub, arguments = text, excluded = excluded }
end

--- Status of the transport's connections (persistent mode has some).
function Single.status() return nil end

--- "signalr.client (<endpoint>)", from the core's handle.
function _M.tostring(self)
    return tostring(self.handle)
end

--- The client token negotiate returns (the core signs; no I/O):
-- `{ url, accessToken }` | nil, msg, details.
-- @tparam userdata handle the core's client
-- @tparam table p `hub`, `user`, `claims` (JSON text), `lifetime`,
--   `diagnostic`, `detailed_errors`
function _M.sign(handle, p)
    local url, token, details = handle:negotiate(p.hub, p.user, p.claims, p.lifetime, nil,
        p.diagnostic, p.detailed_errors)
    if not url then return nil, "signalr.negotiate: " .. token, details end
    return { url = url, accessToken = token }
end

--- Copy the shared methods into a transport class (its own come first).
function _M.extend(class)
    for k, v in pairs(Single) do
        if class[k] == nil then class[k] = v end
    end
    class.__index = class
    class.__tostring = class.__tostring or _M.tostring
    return class
end

return _M
