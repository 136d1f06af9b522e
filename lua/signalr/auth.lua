--- Microsoft Entra ID for clients without an AccessKey: credentials from
-- the connection string (`AuthType=azure`, `azure.app`, `azure.msi`,
-- `aad`), tokens cached until shortly before they expire and refreshed
-- ahead of it by one caller at a time, and the temporary access key that
-- `negotiate` signs client tokens with.
--
-- This module says what to request and reads what comes back; the
-- client's transport moves the bytes (libcurl, the async queue, or nginx
-- cosockets), so a token request never blocks an nginx worker or a game
-- loop.  Secrets (client secrets, federated assertions, tokens, keys) go
-- only into request bodies and headers, never into a message.
-- @module signalr.auth
local core = require "signalr.core"
local cjson = require("cjson").new()

local type, tostring, tonumber, pairs, pcall, setmetatable, error =
    type, tostring, tonumber, pairs, pcall, setmetatable, error
local concat, floor, os_time, getenv = table.concat, math.floor, os.time, os.getenv

local _M = {}

_M.SCOPE = "https://signalr.azure.com/.default"
_M.RESOURCE = "https://signalr.azure.com"
_M.AUTHORITY = "https://login.microsoftonline.com/"
_M.IMDS = "http://169.254.169.254/metadata/identity/oauth2/token"
-- Refresh this long before expiry (Azure.Core's bearer policy); tokens
-- that live less than twice as long are refreshed at half their life.
_M.REFRESH_MARGIN = 300
-- After a failed refresh while the old token still works, wait this long.
_M.RETRY_AFTER_FAILURE = 30
-- A token is not sent in its last seconds (clocks differ).
_M.EXPIRY_SLACK = 10
-- Temporary access keys (entra-id.md 8.1): refreshed after 55 minutes,
-- never used past 90 (the service's own lifetime).
_M.KEY_REFRESH, _M.KEY_LIFETIME = 55 * 60, 90 * 60
-- A federated token file is read again at most every 5 minutes.
_M.ASSERTION_REFRESH = 300

local ROLES = {
    rest = "'SignalR REST API Owner' (or 'SignalR Service Owner')",
    read = "'SignalR REST API Reader', 'SignalR REST API Owner' or 'SignalR Service Owner'",
    key = "'SignalR App Server' (or 'SignalR Service Owner')",
}

-- Per-process caches (per worker inside nginx): tokens by credential,
-- temporary keys by endpoint and credential.  Keys of these tables may
-- hold a secret; they are never printed.
local tokens, keys = {}, {}

local in_ngx = type(ngx) == "table" and type(ngx.socket) == "table"
local function now() return in_ngx and ngx.now() or os_time() end
_M.now = now

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

local function fail(code, msg, extra)
    local d = { code = code, sent = false }
    for k, v in pairs(extra or {}) do d[k] = v end
    return nil, msg, d
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
            .. (self.client_id and " with that client id" or "") .. ")"
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
            local a, msg, d = core.jwt_sign_rs256(claims, self.cert)
            if not a then
                -- the core never shows the file's name (it may be the key
                -- itself, pasted in its place): name the setting instead
                msg = msg:gsub(" %(its name is not shown%)", "", 1)
                    :gsub("the certificate file", "the certificate file named by "
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
    if self.client_id then q = q .. "&" .. self.id_param .. "=" .. enc(self.client_id) end
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
-- certificate (a PEM file with its key; cert_setting names where it was
-- given, for messages, which never show the file's name).
local function app(opts, tenant, client_id, secret, assertion_file, cert, cert_setting)
    local authority = authority_of(opts)
    local who = "Microsoft Entra ID token request (authority " .. authority
        .. ", tenant " .. shown(tenant) .. ", client id " .. shown(client_id) .. ")"
    return cred(secret and "secret" or cert and "certificate" or "assertion", who, {
        url = authority .. enc(tenant) .. "/oauth2/v2.0/token", authority = authority,
        tenant = tenant, client_id = client_id, secret = secret, cert = cert,
        cert_setting = cert_setting,
        assertion_file = assertion_file, assertion_at = -1e18,
        cache_key = concat({ "app", authority, tenant, client_id }, "|"),
        -- tokens of different secrets or certificates are kept apart (a
        -- table key, never printed)
        local_key = secret or cert or assertion_file,
        identity = "application " .. shown(client_id) .. " in tenant " .. shown(tenant),
    })
end

local function managed(opts, client_id)
    local id_ep, id_hdr = getenv("IDENTITY_ENDPOINT"), getenv("IDENTITY_HEADER")
    local identity = client_id and ("managed identity " .. shown(client_id))
        or "the system-assigned managed identity"
    if id_ep and id_hdr and not opts.managed_identity_endpoint then
        -- App Service / Functions (2019-08-01)
        return cred("appservice", "managed identity token request (App Service endpoint "
            .. id_ep .. (client_id and (", client id " .. shown(client_id)) or "") .. ")", {
            url = id_ep, api = "2019-08-01", id_param = "client_id", client_id = client_id,
            headers = { ["X-IDENTITY-HEADER"] = id_hdr },
            cache_key = concat({ "appservice", id_ep, client_id or "" }, "|"), identity = identity,
        })
    end
    local ep = opts.managed_identity_endpoint or _M.IMDS
    return cred("imds", "managed identity token request (IMDS " .. ep
        .. (client_id and (", client id " .. shown(client_id)) or "") .. ")", {
        url = ep, api = "2018-02-01", id_param = "client_id", client_id = client_id,
        headers = { Metadata = "true" },
        cache_key = concat({ "imds", ep, client_id or "" }, "|"), identity = identity,
    })
end

-- DefaultAzureCredential's first three (entra-id.md 6): environment
-- client secret, workload identity, managed identity.
local function default_chain(opts)
    local tenant, id = getenv("AZURE_TENANT_ID"), getenv("AZURE_CLIENT_ID")
    local secret = getenv("AZURE_CLIENT_SECRET")
    if tenant and id and secret and secret ~= "" then return app(opts, tenant, id, secret) end
    local cert = getenv("AZURE_CLIENT_CERTIFICATE_PATH")
    if tenant and id and cert and cert ~= "" then
        return app(opts, tenant, id, nil, nil, cert, "AZURE_CLIENT_CERTIFICATE_PATH")
    end
    if tenant and id and getenv("AZURE_USERNAME") then
        error("signalr.new: AuthType=azure: AZURE_USERNAME (username and password) credentials"
            .. " are not supported; set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH, use"
            .. " workload identity (AZURE_FEDERATED_TOKEN_FILE) or a managed identity", 0)
    end
    local file = getenv("AZURE_FEDERATED_TOKEN_FILE")
    if tenant and id and file and file ~= "" then return app(opts, tenant, id, nil, file) end
    return managed(opts, id)
end

--- The credential for a client's connection string and options, or nil
-- for AccessKey clients.  Raises on a configuration that cannot work.
function _M.credential(handle, info, opts)
    local at = info.auth_type
    if at == "" then return nil end
    local c = handle:credential()
    if at == "azure.app" or (at == "aad" and c.tenant_id and c.client_id
                             and (c.client_secret or c.client_cert)) then
        -- ClientSecret first, as the service SDK's parser takes it; the
        -- certificate's setting by the spelling the string used
        local cs = type(opts.connection_string) == "string" and opts.connection_string:lower() or ""
        return app(opts, c.tenant_id, c.client_id, c.client_secret, nil,
            not c.client_secret and c.client_cert or nil,
            cs:find("clientcertpath%s*=") and "ClientCertPath" or "ClientCert")
    elseif at == "azure.msi" or at == "aad" then
        return managed(opts, c.client_id)
    end
    return default_chain(opts)
end

-- ===== the token cache =====

local Auth = {}
Auth.__index = Auth
function Auth:__tostring() return "signalr.auth (" .. self.identity .. ")" end

local function entry(cache, key)
    local e = cache[key]
    if not e then
        e = { retry_at = 0 }
        cache[key] = e
    end
    return e
end

local function refresh_at(t, exp)
    local life = exp - t
    if life < 2 * _M.REFRESH_MARGIN then return t + life / 2 end
    return exp - _M.REFRESH_MARGIN
end

--- An auth object: `cred` (from credential()) or a token provider
-- function returning `token[, expires_at]`.
function _M.new(cred_or_provider, opts)
    local self = setmetatable({ opts = opts }, Auth)
    if type(cred_or_provider) == "function" then
        self.provider = cred_or_provider
        self.identity = "the token_provider's identity"
        self.entry = { retry_at = 0 }
    else
        self.cred = cred_or_provider
        self.identity = cred_or_provider.identity
        self.entry = entry(tokens, cred_or_provider.cache_key .. "|"
            .. (cred_or_provider.local_key or ""))
    end
    if opts.shared_dict then
        local dict = in_ngx and ngx.shared and ngx.shared[opts.shared_dict]
        if not dict then
            error("signalr.new: option 'shared_dict': no lua_shared_dict named '"
                .. opts.shared_dict .. "' (declare it in nginx.conf)", 0)
        end
        self.dict = dict
        self.dict_key = "signalr:token:" .. (self.cred and self.cred.cache_key or "provider")
    end
    return self
end

--- A usable cached token, or nil; second result: whether a refresh
-- should start now.
function Auth:peek(t)
    local e = self.entry
    if e.token and t < e.expires_on - e.slack then
        return e.token, t >= e.refresh_at and not e.busy and t >= e.retry_at
    end
    return nil, not e.busy
end

function Auth:store(t, token, exp)
    local e = self.entry
    e.token, e.expires_on, e.refresh_at, e.retry_at = token, exp, refresh_at(t, exp), 0
    e.slack = math.min(_M.EXPIRY_SLACK, (exp - t) / 4) -- short tokens: a quarter
    e.error = nil
end

--- A failed fetch: remember the error; keep a still-valid old token.
function Auth:failed(t, msg, details)
    local e = self.entry
    e.error = { msg, details }
    e.retry_at = t + _M.RETRY_AFTER_FAILURE
end

--- Forget the cached token when it is still `token` (the service refused
-- it; a newer one, fetched since, stays).
function Auth:invalidate(token)
    local e = self.entry
    if e.token ~= token then return end
    e.token, e.expires_on, e.refresh_at, e.retry_at = nil, nil, nil, 0
    if self.dict and self:from_dict(now()) == token then self.dict:delete(self.dict_key) end
end

--- The token request to perform now (marks the fetch as running).
function Auth:begin(t)
    self.entry.busy = true
    return self.cred:request(t)
end

--- Finish a fetch with its reply (or transport failure).
-- @return token | nil, msg, details
function Auth:finish(t, status, body, details)
    self.entry.busy = false
    local tok, exp, d
    if status then
        tok, exp, d = self.cred:parse(t, status, body)
    else
        -- a transport failure: body is its message, details its details
        tok, exp, d = nil, self.cred.who .. ": " .. tostring(body), details or {}
        d.sent = false -- the SignalR request itself was not sent
    end
    if not tok then
        self:failed(t, exp, d)
        self:wake()
        return nil, exp, d
    end
    self:store(t, tok, exp)
    if self.dict then
        self.dict:set(self.dict_key, concat({ exp, tok }, " "), exp - t)
    end
    self:wake()
    return tok
end

-- A token provider: token[, expires_at]; cached when expires_at is given.
function Auth:provide(t)
    local ok, tok, exp = pcall(self.provider)
    if not ok or type(tok) ~= "string" or tok == "" then
        return fail("EINVAL", "the token provider gave no token"
            .. ((not ok or exp) and (": " .. tostring(ok and exp or tok)) or ""))
    end
    if exp ~= nil then
        if type(exp) ~= "number" or exp ~= exp then
            return fail("EINVAL", "the token provider's second result (expires_at) must be"
                .. " a number of seconds since the epoch")
        end
        self:store(t, tok, exp)
    end
    return tok
end

-- Single flight inside nginx: coroutines of this worker wait for the one
-- fetch (ngx.semaphore); across workers, a lock in the shared dict.
local semaphore
function Auth:wait(timeout)
    local e = self.entry
    if not in_ngx then return end
    semaphore = semaphore or require "ngx.semaphore"
    e.sema = e.sema or semaphore.new()
    e.waiting = (e.waiting or 0) + 1
    e.sema:wait(timeout)
    e.waiting = e.waiting - 1
end

function Auth:wake()
    local e = self.entry
    if e.sema and (e.waiting or 0) > 0 then e.sema:post(e.waiting) end
end

-- The shared dict's token, when fresh.
function Auth:from_dict(t)
    local v = self.dict:get(self.dict_key)
    local exp, tok = (v or ""):match("^(%S+) (%S+)$")
    exp = tonumber(exp)
    if exp and t < exp - math.min(_M.EXPIRY_SLACK, (exp - t) / 4) then
        self:store(t, tok, exp)
        return tok
    end
end

--- A token for a synchronous transport; fetch(spec) performs one token
-- request and returns status, body | nil, msg, details.
-- @return token | nil, msg, details
function Auth:token(fetch)
    local t = now()
    if self.provider and not self.entry.token then return self:provide(t) end
    local tok, refresh = self:peek(t)
    if tok and not refresh then return tok end
    if self.provider then
        -- a provider's token is due: ask it again
        local nt, msg, d = self:provide(t)
        if nt then return nt end
        return tok or nil, msg, d
    end
    local e = self.entry
    if e.busy then
        -- another coroutine of this worker is fetching: wait for it
        self:wait(self.opts.timeout or 10)
        t = now()
        tok = self:peek(t)
        if tok then return tok end
        if e.error then return nil, e.error[1], e.error[2] end
        return fail("ETIMEDOUT", self.cred.who .. ": no token after waiting for the running request")
    end
    if self.dict then
        local dt = self:from_dict(t)
        if dt and t < self.entry.refresh_at then return dt end
        tok = tok or dt
        -- one worker fetches; the others wait for its token in the dict
        local lock = self.dict_key .. ":lock"
        local deadline = t + (self.opts.timeout or 10) + 1
        while not self.dict:add(lock, true, (self.opts.timeout or 10) + 1) do
            if tok then return tok end -- still valid: someone refreshes it
            ngx.sleep(0.02)
            t = now()
            dt = self:from_dict(t)
            if dt then return dt end
            if t > deadline then
                return fail("ETIMEDOUT", self.cred.who .. ": no token after waiting for another"
                    .. " worker's request")
            end
        end
        dt = self:from_dict(t)
        if dt and t < self.entry.refresh_at then
            self.dict:delete(lock)
            return dt
        end
        local nt, msg, d = self:fetch_now(t, fetch)
        self.dict:delete(lock)
        if nt then return nt end
        if tok then return tok end
        return nil, msg, d
    end
    local nt, msg, d = self:fetch_now(t, fetch)
    if nt then return nt end
    if tok then return tok end -- the old one is still good: keep using it
    return nil, msg, d
end

--- Perform one token request now, as the one caller that fetches (a
-- synchronous transport): token | nil, msg, details.  Those waiting for
-- it are woken either way.
function Auth:fetch_now(t, fetch)
    local spec, msg, d = self:begin(t)
    if spec then return self:finish(now(), fetch(spec)) end
    self.entry.busy = false
    self:wake()
    return nil, msg, d
end

-- ===== what a refusal means under Entra ID =====

local CHECKS = { connection_exists = true, user_exists = true, group_exists = true,
                 user_in_group = true, group_connections = true }

--- Rewrite a 401/403 message so it names the token's audience, the
-- identity and the role it needs (never the AccessKey).
function Auth:explain(op, msg, details)
    local st = details and details.status
    if st ~= 401 and st ~= 403 then return msg end
    local role = op == "access_key" and ROLES.key or CHECKS[op] and ROLES.read or ROLES.rest
    local why = st == 401
        and ("the service refused the Microsoft Entra ID token (audience "
             .. _M.RESOURCE .. ", " .. self.identity .. ")")
        or ("the service denied " .. self.identity .. " this operation")
    local text = why .. "; the identity needs the " .. role .. " role on the SignalR"
        .. " resource (new role assignments take up to 30 minutes)"
    local out = msg:gsub("^(HTTP 40[13] %a+) %b()", "%1 (" .. text:gsub("%%", "%%%%") .. ")", 1)
    if out == msg then out = msg .. " (" .. text .. ")" end
    return out
end

-- ===== temporary access keys (negotiate without an AccessKey) =====

--- The key cache entry of a client (by its endpoint and credential).
function _M.key_entry(info, a)
    local id = info.server_endpoint .. "|" .. (a.cred and (a.cred.cache_key .. "|"
        .. (a.cred.local_key or "")) or tostring(a))
    local k = keys[id]
    if not k then
        k = {}
        keys[id] = k
    end
    return k
end

--- Is the cached key usable (1st), and due for a refresh (2nd)?
function _M.key_state(k, t)
    if not k.key or t >= k.at + _M.KEY_LIFETIME then return false, true end
    return true, t >= k.at + _M.KEY_REFRESH
end

--- Read GET /api/v1/auth/accessKey's reply into the entry.
-- @return true | nil, msg, details
function _M.key_reply(k, t, body)
    local ok, r = pcall(cjson.decode, body or "")
    if not ok or type(r) ~= "table" then
        return fail("EREPLY", "the temporary access key reply is not JSON")
    end
    for _, f in pairs { "KeyId", "AccessKey" } do
        if type(r[f]) ~= "string" or r[f] == "" then
            return fail("EREPLY", "the temporary access key reply misses its " .. f)
        end
    end
    k.kid, k.key, k.at = r.KeyId, r.AccessKey, t
    return true
end

_M.Auth = Auth
return _M
