--- Token checks, as the service makes them: HS256 signature with the
-- access key (through the C core), `exp` in the future, and `aud` equal to
-- the request URL (REST) or to "<endpoint>/client/?hub=<hub>" (clients).
-- Returns the claims, or nil and the reason (sent back in the 401 body).
local core = require "signalr.core"
local cjson = require("cjson").new()

local type, pcall, lower, os_time = type, pcall, string.lower, os.time

local _M = {}

local function host_of(authority)
    if not authority then return nil end
    if authority:sub(1, 1) == "[" then
        return lower(authority:match("^(%[[^%]]*%])") or authority)
    end
    return lower(authority:match("^([^:]*)"))
end
_M.host_of = host_of

local function decode_path(p)
    return core.url_decode(p) or p
end

-- The aud host must name this service: the Host the request came to, or
-- any loopback alias of it (a token says "localhost", curl says 127.0.0.1).
local LOOPBACK = { localhost = true, ["127.0.0.1"] = true, ["[::1]"] = true }
local function same_host(a, authority)
    local b = host_of(authority)
    return a == b or (LOOPBACK[a] and LOOPBACK[b]) or false
end
_M.same_host = same_host

-- Verify the signature and expiry; decode the claims.
local function claims_of(key, token, now)
    if not token or token == "" then return nil, "no bearer token" end
    local payload, msg = core.jwt_verify(token, key, now or os_time())
    if not payload then return nil, msg end
    local ok, claims = pcall(cjson.decode, payload)
    if not ok or type(claims) ~= "table" then
        return nil, "payload is not a JSON object"
    end
    if type(claims.aud) ~= "string" then return nil, "claim 'aud' is missing" end
    return claims
end

--- REST: aud must name this host and the request path (no query, no
-- trailing slash; the port is optional, as the service SDK omits it).
function _M.rest(key, token, path, authority, now)
    local claims, why = claims_of(key, token, now)
    if not claims then return nil, why end
    local aud = claims.aud:gsub("[?#].*$", ""):gsub("/+$", "")
    local a_host, a_path = aud:match("^https?://([^/]+)(.*)$")
    if not a_host then return nil, "the audience is not an absolute URL" end
    if not same_host(host_of(a_host), authority) then
        return nil, "the audience is invalid: host '" .. host_of(a_host)
            .. "' is not this service"
    end
    if a_path ~= path and decode_path(a_path) ~= decode_path(path) then
        return nil, "the audience is invalid: it names " .. a_path
            .. ", the request is for " .. path
    end
    return claims
end

--- Clients: aud is "<scheme>://<host>/client/?hub=<hub>".
function _M.client(key, token, hub, authority, now)
    local claims, why = claims_of(key, token, now)
    if not claims then return nil, why end
    local a_host, a_hub = claims.aud:match("^https?://([^/]+)/client/?%?hub=([^&#]+)$")
    if not a_host then
        return nil, "the audience is invalid: expected <endpoint>/client/?hub=<hub>"
    end
    if not same_host(host_of(a_host), authority) then
        return nil, "the audience is invalid: host '" .. host_of(a_host)
            .. "' is not this service"
    end
    if lower(decode_path(a_hub)) ~= lower(hub) then
        return nil, "the audience is invalid: the token is for hub '" .. a_hub .. "'"
    end
    return claims
end

--- The user id of a client: asrs.s.uid, else nameid.
function _M.user_of(claims)
    local u = claims["asrs.s.uid"]
    if type(u) ~= "string" or u == "" then u = claims.nameid end
    if type(u) ~= "string" or u == "" then return nil end
    return u
end

return _M
