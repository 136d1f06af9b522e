--- Microsoft Entra ID credentials: from the connection string
-- (`AuthType=azure`, `azure.app`, `azure.msi`, `aad`) or the environment
-- (DefaultAzureCredential's chain), what token request each makes and how
-- its answer reads.  No I/O: signalr.auth's callers move the bytes.
-- Secrets go only into request bodies and headers, never into a message;
-- settings that name a file are named, not shown.
-- @module signalr.auth.credential
local core = require "signalr.core"
local util = require "signalr.util"
local cjson = require("cjson").new()

local type, tonumber, pcall, setmetatable, error, ipairs, next =
    type, tonumber, pcall, setmetatable, error, ipairs, next
local concat, floor, getenv = table.concat, math.floor, os.getenv
local fail = util.fail

local _M = {}

_M.SCOPE = "https://signalr.azure.com/.default"
_M.RESOURCE = "https://signalr.azure.com"
_M.AUTHORITY = "https://login.microsoftonline.com/"
_M.IMDS = "http://169.254.169.254/metadata/identity/oauth2/token"
-- A federated token file is read again at most every 5 minutes.
_M.ASSERTION_REFRESH = 300

local function enc(s) return core.url_encode(s) end

local function form(t)
    local parts = {}
    for i = 1, #t, 2 do parts[#parts + 1] = enc(t[i]) .. "=" .. enc(t[i + 1]) end
    return concat(parts, "&")
end

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

-- An identity (client id, tenant) as messages show it: plainly an id (a
-- GUID, a name, a domain), else not at all.  A value with spaces or '='
-- is a ';' gone missing after it: the next part of the connection string
-- ran into it, and that part may be the AccessKey or the ClientSecret.
local function shown(v)
    if #v <= 64 and v:match("^[%w][%w%.%-_]*$") then return v end
    return "(not shown: not a plain id; is a ';' missing after it?)"
end

-- ===== credentials: what to request, how to read the answer =====

local Cred = {}
Cred.__index = Cred
function Cred:__tostring() return "signalr.credential (" .. self.who .. ")" end

-- The identity platform's error JSON: error, error_description (AADSTS...).
local function identity_error(self, status, body)
    local ok, t = pcall(cjson.decode, body or "")
    local e = ok and type(t) == "table" and t or {}
    local desc = type(e.error_description) == "string" and e.error_description or ""
    local aadsts = desc:match("(AADSTS%d+)")
    if not aadsts and type(e.error_codes) == "table" and tonumber(e.error_codes[1]) then
        aadsts = "AADSTS" .. floor(tonumber(e.error_codes[1]))
    end
    desc = desc:match("^[^\r\n]*"):sub(1, 300)
    local what = (type(e.error) == "string" and e.error or "") ..
        (desc ~= "" and ((e.error and ": " or "") .. desc) or "")
    local hint = ""
    if self.kind == "imds" and status == 400 then
        hint = " (no managed identity is assigned to this host"
            .. (self.selector and (" with that " .. self.selector) or "") .. ")"
    elseif aadsts == "AADSTS7000215" then
        hint = " (check ClientSecret: it is wrong or expired)"
    elseif aadsts == "AADSTS700016" then
        hint = " (check ClientId and TenantId: no such application in that tenant)"
    elseif aadsts == "AADSTS700027" then
        hint = " (check ClientCert: the application has no such certificate registered)"
    elseif aadsts == "AADSTS90002" then
        hint = " (check TenantId: no such tenant)"
    end
    return fail("EAUTH", self.who .. ": HTTP " .. status .. hint
        .. (what ~= "" and (": " .. what) or ""),
        { status = status, service_code = aadsts })
end

-- A JWT id for client assertions: unique (time, a counter and random
-- bits, in the UUID shape), not secret.
local jti_count = 0
local function jti()
    jti_count = jti_count + 1
    local r = math.random
    return string.format("%08x-%04x-4%03x-%04x-%04x%08x", os.time() % 4294967296,
        jti_count % 65536, r(0, 4095), r(0, 65535), r(0, 65535), r(0, 2147483647))
end

--- The next token request: { method, url, headers, body, content_type }
-- (nil, msg, details when it cannot be made, e.g. an unreadable file).
function Cred:request(t)
    if self.kind == "secret" or self.kind == "assertion" or self.kind == "certificate" then
        local f = { "client_id", self.client_id, "scope", _M.SCOPE }
        if self.kind == "secret" then
            f[#f + 1], f[#f + 2] = "client_secret", self.secret
        elseif self.kind == "certificate" then
            -- a client assertion signed with the certificate's key (C core):
            -- for this token endpoint, 10 minutes (certificate-credentials)
            local claims = cjson.encode { aud = self.url, iss = self.client_id,
                sub = self.client_id, jti = jti(), nbf = floor(t), iat = floor(t),
                exp = floor(t) + 600 }
            local a, msg, d = core.jwt_sign_rs256(claims, self.cert, self.cert_password)
            if not a then
                -- the core never shows the file's name (it may be the key
                -- itself, pasted in its place) nor the password: name the
                -- setting instead
                msg = msg:gsub(" %(its name is not shown%)", "", 1)
                    :gsub("certificate file", "certificate file named by "
                        .. self.cert_setting, 1)
                return fail(d.code == "ECRYPTO" and "ECRYPTO" or "EAUTH", self.who .. ": " .. msg)
            end
            f[#f + 1], f[#f + 2] = "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            f[#f + 1], f[#f + 2] = "client_assertion", a
        else
            if not self.assertion or t >= self.assertion_at + _M.ASSERTION_REFRESH then
                local a = read_file(self.assertion_file)
                a = a and a:match("^%s*(.-)%s*$")
                if not a or a == "" then
                    -- named by its variable: the value may be the token
                    -- itself, given in place of its file's name
                    return fail("EAUTH", self.who .. ": cannot read the federated token file"
                        .. " named by AZURE_FEDERATED_TOKEN_FILE")
                end
                self.assertion, self.assertion_at = a, t
            end
            f[#f + 1], f[#f + 2] = "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            f[#f + 1], f[#f + 2] = "client_assertion", self.assertion
        end
        f[#f + 1], f[#f + 2] = "grant_type", "client_credentials"
        return { method = "POST", url = self.url, headers = { Accept = "application/json" },
                 body = form(f), content_type = "application/x-www-form-urlencoded" }
    end
    local q = self.url .. "?api-version=" .. self.api .. "&resource=" .. enc(_M.RESOURCE)
    if self.id_param then q = q .. "&" .. self.id_param .. "=" .. enc(self.client_id) end
    return { method = "GET", url = q, headers = self.headers }
end

-- expires_on: epoch seconds as a number or numeric string; else
-- expires_in seconds from now (identity platform answers).
local function expiry(t, reply)
    local on = tonumber(reply.expires_on)
    if on and on > 1e9 then return on end
    local secs = tonumber(reply.expires_in)
    if secs and secs > 0 then return t + secs end
end

--- Read a token reply: token, expires_on | nil, msg, details.
function Cred:parse(t, status, body)
    if status ~= 200 then return identity_error(self, status, body) end
    local ok, r = pcall(cjson.decode, body or "")
    if not ok or type(r) ~= "table" or type(r.access_token) ~= "string"
            or r.access_token == "" or r.access_token:find("[%c ]") then
        return fail("EAUTH", self.who .. ": the reply has no access_token", { status = status })
    end
    local exp = expiry(t, r)
    if not exp then
        return fail("EAUTH", self.who .. ": the reply has no expires_in or expires_on",
            { status = status })
    end
    return r.access_token, exp
end

local function cred(kind, who, fields)
    fields.kind, fields.who = kind, who
    return setmetatable(fields, Cred)
end

local function authority_of(opts)
    local a = opts.authority_host or getenv("AZURE_AUTHORITY_HOST") or _M.AUTHORITY
    if not a:match("^https?://[^/]+") then
        error("signalr.new: option 'authority_host' must be an http(s) URL, got '" .. a .. "'", 0)
    end
    if a:sub(-1) ~= "/" then a = a .. "/" end
    return a
end

-- An application: a client secret, a federated assertion file, or a
-- certificate (a PEM file with its key, or a PKCS#12/PFX file, opened with
-- cert_password when it has one; cert_setting names where it was given,
-- for messages, which never show the file's name nor the password).
local function app(opts, tenant, client_id, secret, assertion_file, cert, cert_setting, cert_password)
    local authority = authority_of(opts)
    local who = "Microsoft Entra ID token request (authority " .. authority
        .. ", tenant " .. shown(tenant) .. ", client id " .. shown(client_id) .. ")"
    return cred(secret and "secret" or cert and "certificate" or "assertion", who, {
        url = authority .. enc(tenant) .. "/oauth2/v2.0/token", authority = authority,
        tenant = tenant, client_id = client_id, secret = secret, cert = cert,
        cert_setting = cert_setting, cert_password = cert and cert_password or nil,
        assertion_file = assertion_file, assertion_at = -1e18,
        cache_key = concat({ "app", authority, tenant, client_id }, "|"),
        -- tokens of different secrets or certificates are kept apart (a
        -- table key, never printed)
        local_key = secret or (cert and (cert .. "\0" .. (cert_password or ""))) or assertion_file,
        identity = "application " .. shown(client_id) .. " in tenant " .. shown(tenant),
    })
end

-- A user-assigned identity is chosen by one of three ids; the query
-- parameter naming each differs by endpoint, as azure-identity sends them
-- (IMDS 2018-02-01: client_id, object_id, msi_res_id; App Service
-- 2019-08-01: client_id, principal_id, mi_res_id).
local SELECTORS = {
    { "client_id", "client id", imds = "client_id", appservice = "client_id" },
    { "object_id", "object id", imds = "object_id", appservice = "principal_id" },
    { "resource_id", "resource id", imds = "msi_res_id", appservice = "mi_res_id" },
}
_M.SELECTORS = SELECTORS

-- A resource id as messages show it: an Azure resource path, else not.
local function shown_id(kind, v)
    if kind == "resource_id" and #v <= 512 and v:match("^/[%w%.%-_/]+$") then return v end
    return shown(v)
end

-- The selector of a managed identity: kind ("client_id", "object_id",
-- "resource_id") and value, or nil for the system-assigned one.  given:
-- { [kind] = { value, where } }; two raise.
local function selector(given)
    local kind, value, where
    for _, s in ipairs(SELECTORS) do
        local g = given[s[1]]
        if g then
            if kind then
                error("signalr.new: a managed identity is chosen by one id: got " .. where
                    .. " and " .. g[2] .. " (give one of ClientId or managed_identity_client_id,"
                    .. " managed_identity_object_id, managed_identity_resource_id)", 0)
            end
            kind, value, where = s[1], g[1], g[2]
        end
    end
    return kind, value
end

local function managed(opts, given)
    local kind, id = selector(given)
    local label
    for _, s in ipairs(SELECTORS) do if s[1] == kind then label = s end end
    local what = kind and (label[2] .. " " .. shown_id(kind, id)) or nil
    local identity = kind == "client_id" and ("managed identity " .. shown(id))
        or kind and ("managed identity with " .. what) or "the system-assigned managed identity"
    local id_ep, id_hdr = getenv("IDENTITY_ENDPOINT"), getenv("IDENTITY_HEADER")
    if id_ep and id_hdr and not opts.managed_identity_endpoint then
        -- App Service / Functions (2019-08-01)
        return cred("appservice", "managed identity token request (App Service endpoint "
            .. id_ep .. (what and (", " .. what) or "") .. ")", {
            url = id_ep, api = "2019-08-01", id_param = kind and label.appservice, client_id = id,
            selector = kind and label[2],
            headers = { ["X-IDENTITY-HEADER"] = id_hdr },
            cache_key = concat({ "appservice", id_ep, kind or "", id or "" }, "|"), identity = identity,
        })
    end
    local ep = opts.managed_identity_endpoint or _M.IMDS
    return cred("imds", "managed identity token request (IMDS " .. ep
        .. (what and (", " .. what) or "") .. ")", {
        url = ep, api = "2018-02-01", id_param = kind and label.imds, client_id = id,
        selector = kind and label[2],
        headers = { Metadata = "true" },
        cache_key = concat({ "imds", ep, kind or "", id or "" }, "|"), identity = identity,
    })
end

-- The managed-identity options of signalr.new, as selector() takes them.
local function mi_options(opts)
    local given = {}
    for _, s in ipairs(SELECTORS) do
        local name = "managed_identity_" .. s[1]
        local v = opts[name]
        if v ~= nil then
            if v == "" then error("signalr.new: option '" .. name .. "' is empty", 0) end
            given[s[1]] = { v, name }
        end
    end
    return given
end

-- DefaultAzureCredential's first three (entra-id.md 6): environment
-- client secret, workload identity, managed identity.
local function default_chain(opts)
    local tenant, id = getenv("AZURE_TENANT_ID"), getenv("AZURE_CLIENT_ID")
    local secret = getenv("AZURE_CLIENT_SECRET")
    if tenant and id and secret and secret ~= "" then return app(opts, tenant, id, secret) end
    local cert = getenv("AZURE_CLIENT_CERTIFICATE_PATH")
    if tenant and id and cert and cert ~= "" then
        return app(opts, tenant, id, nil, nil, cert, "AZURE_CLIENT_CERTIFICATE_PATH",
            opts.client_certificate_password or getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD"))
    end
    if tenant and id and getenv("AZURE_USERNAME") then
        error("signalr.new: AuthType=azure: AZURE_USERNAME (username and password) credentials"
            .. " are not supported; set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH, use"
            .. " workload identity (AZURE_FEDERATED_TOKEN_FILE) or a managed identity", 0)
    end
    local file = getenv("AZURE_FEDERATED_TOKEN_FILE")
    if tenant and id and file and file ~= "" then return app(opts, tenant, id, nil, file) end
    -- AZURE_CLIENT_ID chooses the identity unless an option does
    local given = mi_options(opts)
    if not next(given) and id and id ~= "" then given.client_id = { id, "AZURE_CLIENT_ID" } end
    return managed(opts, given)
end

--- The credential for a client's connection string and options, or nil
-- for AccessKey clients.  Raises on a configuration that cannot work.
function _M.new(handle, info, opts)
    local at = info.auth_type
    local given = mi_options(opts)
    local c = at ~= "" and handle:credential() or {}
    local application = at == "azure.app" or (at == "aad" and c.tenant_id and c.client_id
                                              and (c.client_secret or c.client_cert))
    if next(given) and (at == "" or application) then
        local name
        for _, s in ipairs(SELECTORS) do
            if given[s[1]] then name = given[s[1]][2] end
        end
        error("signalr.new: option '" .. name .. "' chooses a managed identity; this connection"
            .. " string " .. (at == "" and "has an AccessKey" or "names an application")
            .. " (AuthType=azure.msi, aad or azure use managed identities)", 0)
    end
    if at == "" then return nil end
    if application then
        -- ClientSecret first, as the service SDK's parser takes it; the
        -- certificate's setting by the spelling the string used
        local cs = type(opts.connection_string) == "string" and opts.connection_string:lower() or ""
        return app(opts, c.tenant_id, c.client_id, c.client_secret, nil,
            not c.client_secret and c.client_cert or nil,
            cs:find("clientcertpath%s*=") and "ClientCertPath" or "ClientCert",
            opts.client_certificate_password)
    elseif at == "azure.msi" or at == "aad" then
        if c.client_id and given.client_id then
            error("signalr.new: a managed identity is chosen by one id: got ClientId and"
                .. " managed_identity_client_id (give one)", 0)
        end
        if c.client_id then given.client_id = { c.client_id, "ClientId" } end
        return managed(opts, given)
    end
    return default_chain(opts)
end

return _M
