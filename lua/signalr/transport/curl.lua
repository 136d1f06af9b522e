--- The blocking transport: each call is one REST request over libcurl,
-- built, signed, sent, retried and read by the C core.  Under Microsoft
-- Entra ID a bearer token comes first (signalr.auth), and a 401 fetches a
-- new one and tries once more.  `signalr.transport.ngx` is this
-- transport with cosockets moving the bytes.
-- @module signalr.transport.curl
local base = require "signalr.transport.base"
local auth_mod = require "signalr.auth"

local pairs, tostring, setmetatable, type = pairs, tostring, setmetatable, type

local _M = {}

local Curl = {}
_M.Curl = Curl

-- Multi-target sends: the single send each target gets here, the list
-- parameter, the single parameter.
local MULTI_SEND = {
    to_users = { "to_user", "users", "user" },
    to_groups = { "to_group", "groups", "group" },
    to_connections = { "to_connection", "connections", "connection" },
}

--- A blocking transport.
-- @tparam userdata handle the core's client (`core.client`)
-- @tparam table info `handle:info()`
-- @tparam table o the client's options, defaults filled in
-- @tparam[opt] table auth Entra ID (signalr.auth), nil with an AccessKey
function _M.new(handle, info, o, auth)
    return setmetatable({ handle = handle, info = info, o = o, auth = auth }, Curl)
end

--- Perform one operation (the core builds, signs and reads it):
-- result | nil, msg, details (msg without "signalr.<method>: ").
function Curl:perform(op, params)
    return self.handle:call(op, params)
end

--- Perform one identity request (signalr.auth's spec): status, body |
-- nil, msg, details.
function Curl:fetch(spec)
    return self.handle:fetch(spec.method, spec.url, spec.headers, spec.body, spec.content_type)
end

--- A bearer token (Entra ID), fetched on this transport when none is
-- cached: token | nil, msg, details.
function Curl:token()
    return self.auth:token(function(spec) return self:fetch(spec) end)
end

--- One hub operation (after signalr.transport.base's checks): result |
-- nil, message, details.
function Curl:run(op, params, what)
    if MULTI_SEND[op] then return self:each_send(op, params, what) end
    local a = self.auth
    local res, msg, details
    for attempt = 1, 2 do
        if a then
            local tok
            tok, msg, details = self:token()
            if not tok then return nil, "signalr." .. what .. ": " .. msg, details end
            params.bearer = tok
        end
        res, msg, details = self:perform(op, params)
        -- a refused Entra ID token: fetch a new one and try once more (a
        -- 401 did no work, so nothing is duplicated)
        if not (res == nil and a and a.cred and details and details.status == 401
                and attempt == 1) then
            break
        end
        a:invalidate(params.bearer)
    end
    if res == nil then
        return nil, "signalr." .. what .. ": " .. auth_mod.explain(a, op, msg, details), details
    end
    return res
end

--- A single send (the hub calls this, without a parameter table, when a
-- call names no endpoints): as `call` would, with the fields as
-- arguments.  Under Entra ID, or once closed, through `call`.
-- @tparam string op "broadcast", "to_user", "to_group" or "to_connection"
-- @tparam string hub
-- @tparam string target
-- @tparam string text the arguments' JSON text
-- @tparam[opt] string id the user, group or connection
-- @tparam[opt] table excluded connection ids
-- @return true | nil, message, details
function Curl:send_data(op, hub, target, text, id, excluded)
    if self.auth or self.closing then
        return self:call(op, base.send_params(op, hub, target, text, id, excluded), op)
    end
    local res, msg, details = self:perform_send(op, hub, target, text, id, excluded)
    if res == nil then return nil, "signalr." .. op .. ": " .. msg, details end
    return res
end

--- A single send given its argument list itself (the hub tries this
-- first when a call names no endpoints and excludes no one): encoded and
-- sent in one call into the core.  `false` when it is not that common
-- case (Entra ID, a closed client, arguments that are not a plain list):
-- the hub's general path then sends or explains.
-- @tparam string op "broadcast", "to_user", "to_group" or "to_connection"
-- @tparam string hub
-- @tparam string target
-- @tparam table args the invocation's arguments
-- @tparam[opt] string id the user, group or connection
-- @return true | false | nil, message, details
function Curl:send_args(op, hub, target, args, id)
    if self.auth or self.closing or type(args) ~= "table" then return false end
    local res, msg, details = self:perform_send(op, hub, target, args, id)
    if res == nil then return nil, "signalr." .. op .. ": " .. msg, details end
    return res
end

--- `perform` for a single send, its fields as arguments (the arguments'
-- JSON text, or their list: then false when the core's one call cannot
-- encode it).
function Curl:perform_send(op, hub, target, text, id, excluded)
    return self.handle:call_send(op, hub, target, text, id, excluded)
end

--- The REST API has no multi-target sends: one REST send per target, in
-- order; every one is tried, and any failure makes the result an error
-- naming which went and which did not.
function Curl:each_send(op, params, what)
    local spec = MULTI_SEND[op]
    local ids, ok_n, failed, first = params[spec[2]], 0, {}, nil
    for i = 1, #ids do
        local p = {}
        for k, v in pairs(params) do p[k] = v end
        p[spec[2]] = nil
        p[spec[3]] = ids[i]
        local r, msg, d = self:call(spec[1], p, what)
        if r == nil then
            if d and d.code == "EINVAL" then return nil, msg, d end
            failed[#failed + 1] = { id = ids[i], message = msg, code = d and d.code, status = d and d.status }
            first = first or d
        else
            ok_n = ok_n + 1
        end
    end
    if #failed == 0 then return true end
    return nil, "signalr." .. what .. ": " .. ok_n .. " of " .. #ids .. " sends went; "
        .. #failed .. " failed (first: " .. tostring(failed[1].message) .. ")",
        { code = ok_n == 0 and first and first.code or "EPARTIAL", delivered = ok_n, failed = failed,
          sent = ok_n > 0 }
end

--- negotiate's answer: local with an AccessKey; under Entra ID the
-- temporary key first (fetched on this transport when due).
function Curl:negotiate(p)
    if not self.info.has_key then
        local ok, msg, details = self.auth:ensure_key(self.handle, self.info,
            function() return self:call("access_key", {}, "negotiate") end)
        if not ok then return nil, msg, details end
    end
    return base.sign(self.handle, p)
end

--- A send that answered `true` was accepted by the service already.
function Curl.confirm() return true end

--- Release the HTTP connections; later calls answer ECANCELED.
function Curl:close()
    if self.closed then return end
    self.closing, self.closed = true, true
    self.handle:close()
end

base.extend(Curl)
return _M
