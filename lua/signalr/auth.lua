--- Microsoft Entra ID for clients without an AccessKey: tokens of a
-- credential (signalr.auth.credential) or a token provider, cached until
-- shortly before they expire and refreshed ahead of it by one caller at a
-- time; the flows that get them for a transport that may wait
-- (`token`, `ensure_key`) and for one that cannot (`with_token`,
-- `when_key`); the temporary access key that `negotiate` signs client
-- tokens with; and what a refusal means.
--
-- This module says what to request and reads what comes back; the
-- client's transport moves the bytes (libcurl, the async queue, or nginx
-- cosockets), given as a callback, so a token request never blocks an
-- nginx worker or a game loop.  Secrets (client secrets, federated assertions, tokens, keys) go
-- only into request bodies and headers, never into a message.
-- @module signalr.auth
local core = require "signalr.core"
local util = require "signalr.util"
local credential = require "signalr.auth.credential"
local cjson = require("cjson").new()

local type, tostring, tonumber, pairs, pcall, setmetatable, error =
    type, tostring, tonumber, pairs, pcall, setmetatable, error
local concat, os_time = table.concat, os.time

local _M = {}

_M.SCOPE, _M.RESOURCE = credential.SCOPE, credential.RESOURCE
_M.AUTHORITY, _M.IMDS = credential.AUTHORITY, credential.IMDS
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

local ROLES = {
    rest = "'SignalR REST API Owner' (or 'SignalR Service Owner')",
    read = "'SignalR REST API Reader', 'SignalR REST API Owner' or 'SignalR Service Owner'",
    key = "'SignalR App Server' (or 'SignalR Service Owner')",
}

-- Per-process caches (per worker inside nginx): tokens by credential,
-- temporary keys by endpoint and credential.  Keys of these tables may
-- hold a secret; they are never printed.
local tokens, keys = {}, {}

local in_ngx = util.in_nginx()
local function now() return in_ngx and ngx.now() or os_time() end
_M.now = now

local fail = util.fail

--- The credential for a client's connection string and options, or nil
-- for AccessKey clients (signalr.auth.credential).  Raises on a
-- configuration that cannot work.
_M.credential = credential.new

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
    if self.opts.log then
        self.opts.log("info", "the service refused the Microsoft Entra ID token: fetching a new one")
    end
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
    local log = self.opts.log
    if not tok then
        self:failed(t, exp, d)
        if log then log("warn", "Microsoft Entra ID token request failed: " .. tostring(exp)) end
        self:wake()
        return nil, exp, d
    end
    self:store(t, tok, exp)
    if log then
        log("info", "Microsoft Entra ID token fetched (" .. self.cred.who .. "), valid for "
            .. math.floor(exp - t) .. " s")
    end
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

--- A token for a transport that cannot wait (the async queue): calls
-- `fn(token | nil, msg, details)` once one is at hand, at once when a
-- usable one is cached (a refresh that is due runs meanwhile).
-- @tparam function fn the caller's continuation
-- @tparam function submit `submit(spec, cb)` queues one identity request
--   and calls `cb(status, body | nil, msg, details)` when it ends; it
--   returns true, or nil, msg, details when nothing could be queued
function Auth:with_token(fn, submit)
    if self.provider then return fn(self:token()) end
    local t = now()
    local tok, refresh = self:peek(t)
    local waiters = self.waiters or {}
    self.waiters = waiters
    if tok then
        fn(tok) -- when a refresh is due, the old token is good meanwhile
    else
        waiters[#waiters + 1] = fn
    end
    -- this client's own fetch (not the shared entry's "busy": that is for
    -- synchronous callers, which would otherwise wait on a queue they
    -- cannot drive)
    if (tok and not refresh) or self.fetching then return end
    local function done(status, body, details)
        self.fetching = nil
        local nt, m, dd = self:finish(now(), status, body, details)
        local ws = self.waiters
        self.waiters = {}
        for i = 1, #ws do ws[i](nt, m, dd) end
    end
    local spec, msg, d = self.cred:request(t)
    if not spec then return done(nil, msg, d) end
    self.fetching = true
    local ok
    ok, msg, d = submit(spec, done)
    if not ok then return done(nil, msg, d) end
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

--- A failure's message as a client with auth `a` (nil: an AccessKey)
-- reports it: under Entra ID, `Auth:explain`'s.
function _M.explain(a, op, msg, details)
    if a and a.cred then return a:explain(op, msg, details) end
    return msg
end

--- Give the core handle negotiate's cached temporary key, when it is
-- usable: true | nil, msg, details (the failed fetch's, when one failed).
function Auth:use_key(handle, info)
    local k = _M.key_entry(info, self)
    if not _M.key_state(k, now()) then
        local e = self.key_error or { "no temporary access key", { code = "EREPLY" } }
        return nil, e[1], e[2]
    end
    if self.key_id ~= k.kid or self.key_value ~= k.key then
        local ok, msg, details = handle:set_access_key(k.kid, k.key)
        if not ok then return nil, msg, details end
        self.key_id, self.key_value = k.kid, k.key
        if self.opts.log then
            self.opts.log("info", "Microsoft Entra ID: negotiate signs with a new temporary access key")
        end
    end
    return true
end

--- Negotiate under Entra ID on a transport that may wait: the temporary
-- key, fetched through `fetch_key()` (the service's GET
-- /api/v1/auth/accessKey on the client's own transport, which returns
-- the reply's body) when due, then handed to the core.
-- @return true | nil, msg, details ("signalr.negotiate: ...")
function Auth:ensure_key(handle, info, fetch_key)
    local k = _M.key_entry(info, self)
    local t = now()
    local usable, due = _M.key_state(k, t)
    if due and not k.busy then
        k.busy = true
        local body, msg, details = fetch_key()
        k.busy = false
        if body then
            local ok
            ok, msg, details = _M.key_reply(k, t, body)
            if not ok then msg = "signalr.negotiate: " .. msg end
            usable = ok or usable
        end
        if not usable then return nil, msg, details end
    elseif not usable then
        -- another coroutine fetches it (nginx): wait for its answer
        local deadline = t + (self.opts.timeout or 10)
        while k.busy and now() < deadline do ngx.sleep(0.02) end
        if not _M.key_state(k, now()) then
            return nil, "signalr.negotiate: no temporary access key after waiting for the"
                .. " running request", { code = "ETIMEDOUT", sent = false }
        end
    end
    local ok, msg, details = self:use_key(handle, info)
    if not ok then return nil, "signalr.negotiate: " .. msg, details end
    return true
end

--- Negotiate under Entra ID on a transport that cannot wait: runs
-- `fn()` once the temporary key is usable (at once when it is; a refresh
-- that is due runs meanwhile), or once fetching it failed (`use_key`
-- then answers that failure).
-- @tparam table info the client's `info()`
-- @tparam function submit as for `with_token`
-- @tparam function fn the continuation
function Auth:when_key(info, submit, fn)
    local k = _M.key_entry(info, self)
    local usable, due = _M.key_state(k, now())
    if usable then fn() end
    if self.key_waiters then -- a fetch is running: wait for it
        if not usable then self.key_waiters[#self.key_waiters + 1] = fn end
        return
    end
    if usable and not due then return end
    self.key_waiters = usable and {} or { fn }
    local function done(ok, msg, details)
        local waiters = self.key_waiters
        self.key_waiters = nil
        -- without a usable key, each waiter's request fails with this error
        self.key_error = not ok and { msg, details } or nil
        for i = 1, #waiters do waiters[i]() end
        self.key_error = nil
    end
    self:with_token(function(tok, msg, details)
        if not tok then return done(false, msg, details) end
        local spec = { method = "GET", url = info.server_endpoint .. "/api/v1/auth/accessKey",
                       headers = { Authorization = "Bearer " .. tok } }
        local ok
        ok, msg, details = submit(spec, function(status, body, d)
            local t = now()
            if not status then return done(false, body, d) end
            local reply, m, dd = core.read_reply("access_key", status, nil, body)
            if not reply then return done(false, _M.explain(self, "access_key", m, dd), dd) end
            done(_M.key_reply(k, t, reply))
        end)
        if not ok then return done(false, msg, details) end
    end, submit)
end

_M.Auth = Auth
return _M
