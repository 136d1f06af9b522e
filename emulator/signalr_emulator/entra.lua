--- A local Microsoft Entra ID stand-in: the identity platform's
-- client-credentials token endpoint, an IMDS-style and an App-Service-style
-- managed-identity endpoint, and the JWKS document, issuing RS256 tokens
-- signed with a key generated at start (luaossl).  The REST side verifies
-- those tokens (signature, issuer, audience, expiry) and reads their
-- `roles` claim as the service reads role assignments.
--
-- Routes (same port as the service):
--   POST /{tenant}/oauth2/v2.0/token            client secret, federated or
--                                               certificate (RS256) assertion
--   GET  /{tenant}/discovery/v2.0/keys          JWKS
--   GET  /metadata/identity/oauth2/token        IMDS (header Metadata: true)
--   GET  /msi/token                             App Service (X-IDENTITY-HEADER)
-- Differences from the real platform: every tenant id is accepted; roles
-- travel in the token (the service looks role assignments up instead).
-- @module signalr_emulator.entra
local pkey = require "openssl.pkey"
local x509 = require "openssl.x509"
local digest = require "openssl.digest"
local rand = require "openssl.rand"
local util = require "signalr_emulator.util"

local cjson = util.json
local type, tostring, tonumber, pairs, ipairs, pcall, format, concat, os_time =
    type, tostring, tonumber, pairs, ipairs, pcall, string.format, table.concat, os.time

local _M = {
    RESOURCE = "https://signalr.azure.com",
    SCOPE = "https://signalr.azure.com/.default",
    -- short role names on the command line, and what each may do
    ROLES = {
        ["service-owner"] = "SignalR Service Owner",
        ["rest-owner"] = "SignalR REST API Owner",
        ["rest-reader"] = "SignalR REST API Reader",
        ["app-server"] = "SignalR App Server",
    },
    DEFAULT_ROLES = { "rest-owner", "app-server" },
}

-- ===== base64url =====
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local DEC = {}
for i = 1, 64 do DEC[B64:byte(i)] = i - 1 end

local function b64url(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
        for j = 1, chars do
            local v = math.floor(n / 2 ^ (18 - 6 * (j - 1))) % 64
            out[#out + 1] = B64:sub(v + 1, v + 1)
        end
    end
    return concat(out)
end

local function unb64url(s)
    if not s or s:find("[^%w%-_]") or #s % 4 == 1 then return nil end
    local out, bits, n = {}, 0, 0
    for i = 1, #s do
        n = n * 64 + DEC[s:byte(i)]
        bits = bits + 6
        if bits >= 8 then
            bits = bits - 8
            local byte = math.floor(n / 2 ^ bits)
            out[#out + 1] = string.char(byte)
            n = n - byte * 2 ^ bits
        end
    end
    return concat(out)
end
_M.b64url, _M.unb64url = b64url, unb64url

--- The header of a JWT, decoded (nil when it is not a JWT).
function _M.header(token)
    local h = type(token) == "string" and token:match("^([%w%-_]+)%.[%w%-_]+%.[%w%-_]*$")
    local ok, t = pcall(cjson.decode, unb64url(h) or "")
    return ok and type(t) == "table" and t or nil
end

local Entra = {}
Entra.__index = Entra

--- opts: apps = { [client_id] = { secret =, roles = {...} } },
-- federated = { [client_id] = { assertion =, roles = } },
-- certs = { [client_id] = { cert = <openssl.x509>, roles = } },
-- identities = { [client_id | "system"] = { roles = } }, identity_header,
-- token_lifetime (s), signing_key (PEM text of an RSA private key; default
-- a new 2048-bit key), base (issuer prefix, set once listening).
function _M.new(opts)
    local key, kid = opts.signing_key, nil
    if key then
        -- a key given (PEM): its kid is derived from it, the same each run
        local ok, k = pcall(pkey.new, key)
        if not ok or not k or not tostring(k:type()):find("rsa") then
            error("the signing key is not a PEM RSA private key", 0)
        end
        key = k
        local d = digest.new("sha256")
        d:update(key:toPEM("public"))
        kid = b64url(d:final()):sub(1, 16)
    end
    local self = setmetatable({
        key = key or pkey.new { type = "RSA", bits = 2048 },
        kid = kid or b64url(rand.bytes(9)),
        apps = opts.apps or {}, federated = opts.federated or {}, certs = opts.certs or {},
        identities = opts.identities or {},
        identity_header = opts.identity_header,
        lifetime = opts.token_lifetime or 3600,
        counts = { token = 0, imds = 0, appservice = 0, issued = 0 },
        log = opts.log or function() end,
    }, Entra)
    return self
end

function Entra:issuer(tenant) return self.base .. "/" .. tenant .. "/v2.0" end

local function sign(self, claims)
    local h = b64url(cjson.encode { alg = "RS256", typ = "JWT", kid = self.kid })
    local input = h .. "." .. b64url(cjson.encode(claims))
    local d = digest.new("sha256")
    d:update(input)
    return input .. "." .. b64url(self.key:sign(d))
end

-- Issue a token for an identity; `fault` may change its audience.
function Entra:issue(tenant, client_id, roles, audience)
    local now = os_time()
    local names = {}
    for i, r in ipairs(roles or _M.DEFAULT_ROLES) do names[i] = _M.ROLES[r] or r end
    self.counts.issued = self.counts.issued + 1
    return sign(self, {
        aud = audience or _M.RESOURCE, iss = self:issuer(tenant), tid = tenant,
        sub = client_id, oid = client_id, azp = client_id, appid = client_id,
        roles = names, iat = now, nbf = now, exp = now + self.lifetime,
        uti = b64url(rand.bytes(12)),
    }), now + self.lifetime
end

--- The tenant of the service's own managed identity, and its id: the
-- issuer of upstream tokens is `<base>/managed/v2.0`, their keys are at
-- `<base>/managed/discovery/v2.0/keys`.
_M.SERVICE_TENANT, _M.SERVICE_IDENTITY = "managed", "signalr-service-identity"

--- A token of the service's managed identity for an upstream request
-- (upstream auth ManagedIdentity): audience = the template's resource,
-- no roles.
function Entra:upstream_token(resource)
    self.counts.upstream = (self.counts.upstream or 0) + 1
    return (self:issue(_M.SERVICE_TENANT, _M.SERVICE_IDENTITY, {}, resource))
end

--- Verify a bearer token the REST side received: the claims, or nil and
-- the reason (the service's words where known).
function Entra:verify(token, now)
    local h = _M.header(token)
    if not h or h.alg ~= "RS256" then return nil, "not an RS256 token" end
    if h.kid ~= self.kid then return nil, "the signing key is unknown" end
    local input, sig = token:match("^([%w%-_]+%.[%w%-_]+)%.([%w%-_]+)$")
    local raw = unb64url(sig)
    local d = digest.new("sha256")
    d:update(input or "")
    if not raw or not self.key:verify(raw, d) then return nil, "the signature is invalid" end
    local ok, c = pcall(cjson.decode, unb64url(input:match("%.(.*)$")) or "")
    if not ok or type(c) ~= "table" then return nil, "the payload is not JSON" end
    now = now or os_time()
    if type(c.exp) ~= "number" or c.exp <= now then return nil, "the token is expired" end
    if c.aud ~= _M.RESOURCE then return nil, "The audience is invalid" end
    if type(c.iss) ~= "string" or c.iss ~= self:issuer(tostring(c.tid)) then
        return nil, "the issuer is invalid"
    end
    return c
end

--- A certificate credential's client assertion: nil when good, else why
-- not (the header's thumbprint, the RS256 signature with the
-- certificate's key, aud = this token endpoint, iss = sub = the client,
-- the time window).
local function check_cert_assertion(cert, assertion, client_id, tenant)
    local h = _M.header(assertion)
    if not h or h.alg ~= "RS256" then return "not an RS256 JWT" end
    if h.x5t ~= b64url(cert:digest("sha1", "s")) then
        return "the x5t thumbprint names another certificate"
    end
    local input, sig = assertion:match("^([%w%-_]+%.[%w%-_]+)%.([%w%-_]+)$")
    local raw = unb64url(sig)
    local d = digest.new("sha256")
    d:update(input or "")
    if not raw or not cert:getPublicKey():verify(raw, d) then return "the signature is invalid" end
    local ok, c = pcall(cjson.decode, unb64url(input:match("%.(.*)$")) or "")
    if not ok or type(c) ~= "table" then return "the payload is not JSON" end
    local now = os_time()
    if type(c.aud) ~= "string" or not c.aud:match("^https?://[^/]+/" .. tenant:gsub("%p", "%%%0")
            .. "/oauth2/v2%.0/token$") then
        return "aud is not this token endpoint"
    end
    if c.iss ~= client_id or c.sub ~= client_id then return "iss and sub must be the client id" end
    if type(c.exp) ~= "number" or c.exp <= now or type(c.nbf) ~= "number" or c.nbf > now + 60 then
        return "the assertion is not valid now"
    end
    if type(c.jti) ~= "string" or c.jti == "" then return "jti is missing" end
end

-- What each role allows: "send" (REST writes), "read" (checks, listings),
-- "token" (:generateToken), "key" (the temporary access key).
local GRANTS = {
    ["SignalR Service Owner"] = { send = true, read = true, token = true, key = true },
    ["SignalR REST API Owner"] = { send = true, read = true, token = true },
    ["SignalR REST API Reader"] = { read = true },
    ["SignalR App Server"] = { key = true },
}

--- May these claims perform `what`?  true, or nil and the roles needed.
function _M.allowed(claims, what)
    for _, r in ipairs(type(claims.roles) == "table" and claims.roles or {}) do
        if GRANTS[r] and GRANTS[r][what] then return true end
    end
    local need = {}
    for r, g in pairs(GRANTS) do if g[what] then need[#need + 1] = "'" .. r .. "'" end end
    table.sort(need)
    return nil, concat(need, " or ")
end

-- ===== the endpoints =====

local function reply(stream, status, t, method)
    util.reply(stream, status, cjson.encode(t), nil, method)
    return status
end

-- The identity platform's error shape (entra-id.md 4).
local function aad_error(stream, status, err, code, text, method)
    return reply(stream, status, {
        error = err, error_description = format("AADSTS%d: %s\r\nTrace ID: %s\r\nTimestamp: %s",
            code, text, b64url(rand.bytes(6)), os.date("!%Y-%m-%d %H:%M:%SZ")),
        error_codes = { code }, timestamp = os.date("!%Y-%m-%d %H:%M:%SZ"),
        trace_id = b64url(rand.bytes(6)), correlation_id = b64url(rand.bytes(6)),
    }, method)
end

local function form(body)
    local t = {}
    for k, v in (body or ""):gmatch("([^&=]+)=([^&]*)") do
        local function dec(s)
            return (s:gsub("+", " "):gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
        end
        t[dec(k)] = dec(v)
    end
    return t
end

--- Serve an Entra route; returns the status, or nil when path is not one.
function Entra:handle(stream, req, method, path, query, fault)
    local tenant = path:match("^/([^/]+)/oauth2/v2%.0/token$")
    if tenant then
        self.counts.token = self.counts.token + 1
        if method ~= "POST" then return reply(stream, 405, { error = "invalid_request" }, method) end
        local answered, status, audience = fault()
        if answered then return status end
        local body, too_big = util.read_body(stream, 64 * 1024, 10, method)
        if not body then return too_big end
        local f = form(body)
        if f.grant_type ~= "client_credentials" then
            return aad_error(stream, 400, "unsupported_grant_type", 70003,
                "The app requested an unsupported grant type.", method)
        end
        if f.scope ~= _M.SCOPE then
            return aad_error(stream, 400, "invalid_scope", 70011, "The provided value for the"
                .. " input parameter 'scope' is not valid.", method)
        end
        local app = self.apps[f.client_id or ""]
        local fed = self.federated[f.client_id or ""]
        local cert = self.certs[f.client_id or ""]
        if not app and not fed and not cert then
            return aad_error(stream, 400, "unauthorized_client", 700016, "Application with"
                .. " identifier '" .. tostring(f.client_id) .. "' was not found in the directory '"
                .. tenant .. "'.", method)
        end
        local roles
        if f.client_assertion and cert then
            local why = check_cert_assertion(cert.cert, f.client_assertion, f.client_id,
                tenant)
            if why then
                return aad_error(stream, 401, "invalid_client", 700027, "Client assertion"
                    .. " failed signature validation: " .. why, method)
            end
            roles = cert.roles
        elseif f.client_assertion then
            if not fed or f.client_assertion_type
                    ~= "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    or f.client_assertion ~= fed.assertion then
                return aad_error(stream, 401, "invalid_client", 70021, "No matching federated"
                    .. " identity record found for presented assertion.", method)
            end
            roles = fed.roles
        else
            if not app or f.client_secret ~= app.secret then
                return aad_error(stream, 401, "invalid_client", 7000215, "Invalid client secret"
                    .. " provided. Ensure the secret being sent in the request is the client secret"
                    .. " value, not the client secret ID, for a secret added to app '"
                    .. tostring(f.client_id) .. "'.", method)
            end
            roles = app.roles
        end
        local tok = self:issue(tenant, f.client_id, roles, audience)
        self.log("info", "entra: token for %s", tostring(f.client_id))
        return reply(stream, 200, { token_type = "Bearer", expires_in = self.lifetime,
                                    ext_expires_in = self.lifetime, access_token = tok }, method)
    end
    if path:match("^/[^/]+/discovery/v2%.0/keys$") then
        local p = self.key:getParameters()
        return reply(stream, 200, { keys = { {
            kty = "RSA", use = "sig", alg = "RS256", kid = self.kid,
            n = b64url(p.n:tobin()), e = b64url(p.e:tobin()) } } }, method)
    end
    local imds = path == "/metadata/identity/oauth2/token"
    local appservice = path == "/msi/token"
    if not imds and not appservice then return nil end
    self.counts[imds and "imds" or "appservice"] = self.counts[imds and "imds" or "appservice"] + 1
    local answered, status, audience = fault()
    if answered then return status end
    local q = function(k) return query[k] and query[k][1] end
    if imds and req:get("metadata") ~= "true" then
        return reply(stream, 400, { error = "invalid_request",
            error_description = "Required metadata header not specified" }, method)
    end
    if appservice and (not self.identity_header or req:get("x-identity-header") ~= self.identity_header) then
        return reply(stream, 401, { statusCode = 401, message = "Unauthorized: the"
            .. " X-IDENTITY-HEADER does not match" }, method)
    end
    if q("api-version") ~= (imds and "2018-02-01" or "2019-08-01") then
        return reply(stream, 400, { error = "invalid_request",
            error_description = "unsupported api-version" }, method)
    end
    if q("resource") ~= _M.RESOURCE then
        return reply(stream, 400, { error = "invalid_resource",
            error_description = "AADSTS500011: The resource principal named "
                .. tostring(q("resource")) .. " was not found" }, method)
    end
    -- a user-assigned identity by one of its ids, under the names each
    -- endpoint uses (IMDS: client_id, object_id, msi_res_id; App Service
    -- 2019-08-01: client_id, principal_id, mi_res_id)
    local names = imds and { "client_id", "object_id", "msi_res_id" }
        or { "client_id", "principal_id", "mi_res_id" }
    local sel, kind = nil, nil
    for i, name in ipairs(names) do
        if q(name) then
            if sel then
                return reply(stream, 400, { error = "invalid_request", error_description =
                    "Only one of " .. concat(names, ", ") .. " may be given" }, method)
            end
            sel, kind = q(name), i
        end
    end
    local who = "system"
    if kind == 1 then
        who = sel
    elseif kind then
        who = nil
        for id in pairs(self.identities) do
            local want = kind == 2 and _M.object_id(id) or _M.resource_id(id)
            if id ~= "system" and want:lower() == sel:lower() then who = id end
        end
    end
    local mi = who and self.identities[who]
    if not mi then
        return reply(stream, 400, { error = "invalid_request",
            error_description = "Identity not found" }, method)
    end
    local tok, exp = self:issue("managed", who, mi.roles, audience)
    local now = os_time()
    return reply(stream, 200, {
        access_token = tok, refresh_token = "", expires_in = tostring(exp - now),
        expires_on = tostring(exp), not_before = tostring(now), resource = _M.RESOURCE,
        token_type = "Bearer", client_id = who ~= "system" and who or nil,
    }, method)
end

--- A managed identity's object (principal) id and Azure resource id, made
-- from its client id (the stand-in's identities are named by client id).
function _M.object_id(client_id) return "oid-" .. client_id end
function _M.resource_id(client_id)
    return "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator"
        .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" .. client_id
end

--- Parse "ID:SECRET[:role,role]" (apps), "ID:FILE[:roles]" (federated:
-- the assertion is the file's content; cert: the file's PEM certificate)
-- or "ID[:roles]" (identities; "system" for the system-assigned one).
function _M.parse_spec(kind, spec)
    local parts = {}
    for p in (spec .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = p end
    local function roles(s)
        if not s or s == "" then return nil end
        local out = {}
        for r in s:gmatch("[^,]+") do
            if not _M.ROLES[r] then return false, "unknown role '" .. r .. "' (one of "
                .. "service-owner, rest-owner, rest-reader, app-server)" end
            out[#out + 1] = r
        end
        return out
    end
    if kind == "identity" then
        local r, why = roles(parts[2])
        if r == false then return nil, why end
        return parts[1], { roles = r }
    end
    if not parts[2] or parts[1] == "" or parts[2] == "" then
        return nil, "expected ID:" .. (kind == "app" and "SECRET" or "FILE") .. "[:roles]"
    end
    local r, why = roles(parts[3])
    if r == false then return nil, why end
    if kind == "app" then return parts[1], { secret = parts[2], roles = r } end
    if kind == "cert" then
        local f = io.open(parts[2], "rb")
        if not f then return nil, "cannot read " .. parts[2] end
        local ok, crt = pcall(x509.new, f:read("*a"), "PEM")
        f:close()
        if not ok or not crt then return nil, parts[2] .. " holds no PEM certificate" end
        return parts[1], { cert = crt, roles = r }
    end
    local f = io.open(parts[2], "rb")
    if not f then return nil, "cannot read " .. parts[2] end
    local a = f:read("*a"):match("^%s*(.-)%s*$")
    f:close()
    return parts[1], { assertion = a, roles = r }
end

return _M
