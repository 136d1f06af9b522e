--- lua-signalr: Azure SignalR Service for Lua.
-- `signalr.new` parses a connection string and returns a client; `client:hub`
-- returns hub objects whose methods call the service's REST API.
-- @module signalr
local core = require "signalr.core"
local hub_mod = require "signalr.hub"
local json = require "signalr.json"
local auth_mod = require "signalr.auth"
local endpoints_mod = require "signalr.endpoints"
local persistent = require "signalr.persistent"

local type, error, pairs, tostring, setmetatable, getmetatable, pcall =
    type, error, pairs, tostring, setmetatable, getmetatable, pcall
local floor = math.floor
local transport_ngx -- loaded when a client runs inside nginx

local _M = { _NAME = "signalr", _VERSION = core._VERSION }

-- Sent as Asrs-User-Agent, in the service SDK's "<package>/<version>
-- (<runtime>; <os>)" shape.
local PRODUCT_INFO = "lua-signalr/" .. core._VERSION .. " ("
    .. (type(jit) == "table" and jit.version or _VERSION)
    .. (type(ngx) == "table" and ngx.config and ngx.config.nginx_version
        and ("; nginx " .. ngx.config.nginx_version) or "")
    .. (type(jit) == "table" and ("; " .. jit.os) or "") .. ")"

--- Pass `signalr.null` in an argument list to send a JSON null.
_M.null = json.null

--- Option names, their Lua types, and defaults.
local OPTIONS = {
    connection_string = "string",
    api_version = "string",     -- "2022-06-01" (default), a later date, or "v1"
    application = "string",     -- app-name prefix of hubs (optional)
    timeout = "number",         -- seconds for one whole request
    connect_timeout = "number", -- seconds to connect (default min(timeout, 5))
    retries = "number",         -- extra attempts after a transient failure
    retry_delay = "number",     -- first backoff delay, seconds (doubles)
    max_retry_delay = "number", -- cap on a delay and on Retry-After, seconds
    verify_tls = "boolean",
    ca_file = "string",         -- PEM bundle to trust instead of the system's
    user_agent = "string",
    token_lifetime = "number",  -- seconds a REST token lives (default 3600)
    token_provider = "function",-- Entra ID: returns a bearer token[, expires_at]
    authority_host = "string",  -- Entra ID authority (default the public cloud)
    managed_identity_endpoint = "string", -- IMDS-style endpoint (default 169.254.169.254)
    shared_dict = "string",     -- nginx: lua_shared_dict sharing tokens across workers
    transport = "string",       -- "auto" (cosockets inside nginx), "curl", "cosocket"
    pool_size = "number",       -- nginx: keep-alive connections per endpoint
    async = "boolean",          -- calls queue and return a request object
    queue_size = "number",      -- async: most requests pending at once
    max_connections = "number", -- async: parallel connections per endpoint
    on_done = "function",       -- async: called with each finished request
    endpoints = "table",        -- several instances (signalr.endpoints)
    router = "function",        -- endpoints: negotiate's choice
    health_interval = "number", -- endpoints: seconds between health checks (120)
    health_timeout = "number",  -- endpoints: seconds a check may take (2)
    health_retries = "number",  -- endpoints: extra attempts before offline (2)
    health_retry_delay = "number", -- endpoints: seconds between attempts (3)
    mode = "string",            -- "transient" (REST, default) or "persistent"
    connection_count = "number",-- persistent: server connections per hub (1)
    max_message_size = "number",-- persistent: bytes a message may be (16 MiB)
    protocols = "table",        -- persistent: client protocols to serialize for
    handshake_timeout = "number", -- persistent: seconds for connect + handshake (15)
    keepalive_interval = "number", -- persistent: seconds of quiet before a ping (5)
    server_timeout = "number",  -- persistent: seconds of service silence = dead (30)
    ack_timeout = "number",     -- persistent: seconds an acknowledgement may take (10)
}
local MULTI_ONLY = { router = true, health_interval = true, health_timeout = true,
                     health_retries = true, health_retry_delay = true }
_M.DEFAULTS = {
    api_version = "2022-06-01", timeout = 10, retries = 2, retry_delay = 0.5,
    max_retry_delay = 10, verify_tls = true, token_lifetime = 3600,
    transport = "auto", pool_size = 32, async = false, queue_size = 1024,
    max_connections = 8,
}

local Client = {}
Client.__index = Client
local Request = {}
-- Multi-target sends: the single send each target gets in transient
-- mode, the list parameter, the single parameter.
local MULTI_SEND = {
    to_users = { "to_user", "users", "user" },
    to_groups = { "to_group", "groups", "group" },
    to_connections = { "to_connection", "connections", "connection" },
}

local function check_opts(opts)
    for k, v in pairs(opts) do
        local want = OPTIONS[k]
        if not want then
            error("signalr.new: unknown option '" .. tostring(k) .. "'", 3)
        end
        if type(v) ~= want then
            error("signalr.new: option '" .. k .. "' must be a " .. want
                .. ", got " .. type(v), 3)
        end
    end
    for _, k in pairs { "timeout", "retry_delay", "max_retry_delay",
                        "connect_timeout", "token_lifetime", "health_interval", "health_timeout" } do
        local v = opts[k]
        if v ~= nil and not (v > 0 and v < 1e9) then
            error("signalr.new: option '" .. k .. "' must be a positive number", 3)
        end
    end
    local tl = opts.token_lifetime
    if tl ~= nil and tl % 1 ~= 0 then
        error("signalr.new: option 'token_lifetime' must be a whole number of seconds", 3)
    end
    for _, k in pairs { "queue_size", "max_connections", "pool_size" } do
        local v = opts[k]
        if v ~= nil and not (v >= 1 and v <= 1e6 and floor(v) == v) then
            error("signalr.new: option '" .. k .. "' must be a positive integer", 3)
        end
    end
    local t = opts.transport
    if t ~= nil and t ~= "auto" and t ~= "curl" and t ~= "cosocket" then
        error("signalr.new: option 'transport' must be \"auto\", \"curl\" or \"cosocket\"", 3)
    end
    for _, k in pairs { "retries", "health_retries" } do
        local r = opts[k]
        if r ~= nil and not (r >= 0 and r <= 100 and floor(r) == r) then
            error("signalr.new: option '" .. k .. "' must be an integer from 0 to 100", 3)
        end
    end
    for _, k in pairs { "health_interval", "health_timeout" } do
        if opts[k] ~= nil and opts[k] < 0.001 then
            error("signalr.new: option '" .. k .. "' must be at least 0.001 seconds", 3)
        end
    end
    local hd = opts.health_retry_delay
    if hd ~= nil and not (hd >= 0 and hd < 1e9) then
        error("signalr.new: option 'health_retry_delay' must be a number from 0", 3)
    end
    local mode = opts.mode
    if mode ~= nil and mode ~= "transient" and mode ~= "persistent" then
        error("signalr.new: option 'mode' must be \"transient\" or \"persistent\"", 3)
    end
    if mode == "persistent" and opts.async then
        error("signalr.new: mode 'persistent' is already asynchronous (sends return once"
            .. " the frame is handed to a connection): leave 'async' off", 3)
    end
    for _, k in pairs { "handshake_timeout", "keepalive_interval", "server_timeout", "ack_timeout" } do
        local v = opts[k]
        if v ~= nil and not (v >= 0.01 and v < 1e9) then
            error("signalr.new: option '" .. k .. "' must be a number of seconds from 0.01", 3)
        end
    end
    local cc = opts.connection_count
    if cc ~= nil and not (cc >= 1 and cc <= 64 and floor(cc) == cc) then
        error("signalr.new: option 'connection_count' must be an integer from 1 to 64", 3)
    end
    local mm = opts.max_message_size
    if mm ~= nil and not (mm >= 1024 and mm <= 2147483647 and floor(mm) == mm) then
        error("signalr.new: option 'max_message_size' must be a whole number of bytes"
            .. " from 1024 to 2147483647", 3)
    end
    if opts.protocols ~= nil then
        local n = 0
        for k, v in pairs(opts.protocols) do
            n = n + 1
            if type(k) ~= "number" or (v ~= "json" and v ~= "messagepack") then
                error("signalr.new: option 'protocols' must be a list of \"json\" and"
                    .. " \"messagepack\"", 3)
            end
        end
        if n == 0 then error("signalr.new: option 'protocols' must name at least one protocol", 3) end
    end
    if mode ~= "persistent" then
        for _, k in pairs { "connection_count", "max_message_size", "protocols", "handshake_timeout",
                            "keepalive_interval", "server_timeout", "ack_timeout" } do
            if opts[k] ~= nil then
                error("signalr.new: option '" .. k .. "' is for mode = \"persistent\"", 3)
            end
        end
    end
end

--- Create a client.  No I/O happens here.
-- @tparam string|table opts a connection string, or a table with
--   `connection_string` and the options listed in the README
-- @treturn[1] client
-- @treturn[2] nil
-- @treturn[2] string message ("signalr.new: ...")
-- @treturn[2] table details (`code` is "ECONNSTR" or "EINVAL")
-- @raise on a wrong type, an unknown option or a missing connection string
function _M.new(opts)
    if type(opts) == "string" then
        opts = { connection_string = opts }
    elseif type(opts) ~= "table" then
        error("signalr.new: expected a connection string or an options table, got "
            .. type(opts), 2)
    end
    check_opts(opts)
    if opts.endpoints ~= nil then
        return endpoints_mod.new(opts, _M.new)
    end
    for k in pairs(MULTI_ONLY) do
        if opts[k] ~= nil then
            error("signalr.new: option '" .. k .. "' is for clients with several endpoints"
                .. " (option 'endpoints')", 2)
        end
    end
    if opts.connection_string == nil then
        error("signalr.new: option 'connection_string' is required", 2)
    end
    local o = { product_info = PRODUCT_INFO }
    for k, v in pairs(_M.DEFAULTS) do o[k] = v end
    for k, v in pairs(opts) do o[k] = v end
    local handle, msg, details = core.client(o.connection_string, o)
    if not handle then
        return nil, "signalr.new: " .. msg, details
    end
    local info = handle:info()
    -- inside nginx, requests go over cosockets: never block the worker
    local in_nginx = type(ngx) == "table" and type(ngx.socket) == "table"
    if o.shared_dict and not in_nginx then
        handle:close()
        error("signalr.new: option 'shared_dict' names an nginx lua_shared_dict:"
            .. " it is only for clients inside nginx", 2)
    end
    -- Entra ID: a token provider, or the connection string's credential
    local auth
    if o.token_provider then
        auth = auth_mod.new(o.token_provider, o)
    elseif not info.has_key then
        local ok, cred = pcall(auth_mod.credential, handle, info, o)
        if not ok then handle:close(); error(cred, 2) end
        ok, auth = pcall(auth_mod.new, cred, o)
        if not ok then handle:close(); error(auth, 2) end
    end
    local ngx_transport
    if o.async and (o.transport == "cosocket" or (o.transport == "auto" and in_nginx)) then
        handle:close()
        error("signalr.new: the async mode drives libcurl from your own loop; inside nginx"
            .. " calls are already non-blocking (leave 'async' off there)", 2)
    end
    if not o.async and (o.transport == "cosocket" or (o.transport == "auto" and in_nginx)) then
        if not in_nginx then
            handle:close()
            error("signalr.new: transport 'cosocket' needs nginx (ngx.socket)", 2)
        end
        if o.ca_file then
            handle:close()
            error("signalr.new: option 'ca_file' is not used inside nginx: cosockets verify"
                .. " against nginx's lua_ssl_trusted_certificate directive; set that instead", 2)
        end
        transport_ngx = transport_ngx or require "signalr.transport_ngx"
        ngx_transport = transport_ngx.new(o)
    end
    local client = setmetatable({
        _ngx = ngx_transport,
        _core = handle,
        _async = o.async or nil,
        _inflight = o.async and {} or nil,
        _on_done = o.on_done,
        _info = info,
        _auth = auth,
        _opts = o,
        -- async: requests not yet reported by poll, those finished outside
        -- an outcome (to report at the next poll), fetch handlers by id,
        -- and callbacks waiting for a token
        _open = 0, _ready = {}, _handlers = {}, _token_waiters = {},
    }, Client)
    if o.mode == "persistent" then
        for k, v in pairs(persistent.DEFAULTS) do if o[k] == nil then o[k] = v end end
        local driver
        if in_nginx and o.transport ~= "curl" then
            driver = require("signalr.persistent_ngx").new(o)
        end
        client._persistent = persistent.new(client, o, driver)
    end
    if o.mode == "persistent" and not client._persistent.driver then
        -- frames still waiting for their batch go out when the client is
        -- collected (also at a normal exit) if close was not called; not
        -- inside nginx, where the worker's exit ends the timers instead
        local function last_flush()
            if not client._closed then
                -- a short grace: this runs inside the garbage collector
                pcall(client._persistent.close, client._persistent, 0.2)
                pcall(client.close, client)
            end
        end
        local guard
        if newproxy then
            guard = newproxy(true)
            getmetatable(guard).__gc = last_flush
        else
            guard = setmetatable({}, { __gc = last_flush })
        end
        client._guard = guard
    end
    return client
end

--- Return a hub object for `name` (validated: a letter, then up to 127
-- letters, digits or _`,.[]).  Hub names are case-insensitive.
-- @tparam string name
-- @treturn[1] hub
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] table details
function Client:hub(name)
    local mt = getmetatable(self)
    if mt ~= Client and mt ~= endpoints_mod.Multi then
        error("signalr: call client:hub(name) with a colon", 2)
    end
    if type(name) ~= "string" then
        error("signalr.hub: hub name must be a string, got " .. type(name), 2)
    end
    local ok, msg, details = core.validate("hub", name)
    if not ok then return nil, "signalr.hub: " .. msg, details end
    return hub_mod.new(self, name)
end

--- Is the service reachable and healthy? (HEAD /api/health, no token)
-- @treturn[1] true
-- @treturn[2] nil, message, details
function Client:health()
    return self:_call("health", {}, "health")
end

--- The client's endpoint as a list of one, in the shape a client with
-- several endpoints gives (`{ name = "", type = "primary", online = true,
-- endpoint = ..., client_endpoint = ..., server_endpoint = ... }`).
function Client:endpoints()
    local i = self._info
    return { { name = "", type = "primary", online = true, endpoint = i.endpoint,
               client_endpoint = i.client_endpoint, server_endpoint = i.server_endpoint } }
end

--- What the connection string says (never the key).
function Client:info()
    local t = {}
    for k, v in pairs(self._info) do t[k] = v end
    return t
end

--- Release the client's HTTP connections now (also done by the GC).  In
-- async mode, requests still pending end first with `ECANCELED` (their
-- callbacks run), so every request gets exactly one outcome.
function Client:close()
    if self._closed then return end
    -- from here on calls are refused (each gets its ECANCELED outcome at
    -- once), also those an on_done callback makes while we close
    self._closing = true
    local first_err
    if self._async then
        repeat
            self._core:cancel()
            local ok, err = pcall(self.poll, self, 0)
            if not ok and first_err == nil then first_err = err end
        until self._core:pending() == 0 and #self._ready == 0
    end
    if self._persistent then
        local ok, err = pcall(self._persistent.close, self._persistent, 1)
        if not ok and first_err == nil then first_err = err end
        ok, err = pcall(self._report, self)
        if not ok and first_err == nil then first_err = err end
    end
    self._closed = true
    if self._adapter then self._adapter.detach() end
    self._core:close()
    -- a callback's error surfaces after the client is closed for good
    if first_err ~= nil then error(first_err, 0) end
end

-- ===== asynchronous mode =====

--- A queued request (async mode): `done`, then `result` (true, or a
-- boolean for checks) or `error` + `details`.
Request.__index = Request
function Request:__tostring()
    return "signalr.request #" .. self.id .. " (" .. self.op .. ", "
        .. (self.done and (self.error and "failed" or "done") or "pending") .. ")"
end

local need_async = endpoints_mod.need_async

--- Make progress: wait up to `timeout` seconds (default 0) for network
-- activity, then finish what completed, calling `on_done` for each.
-- @treturn number how many requests finished in this call
-- @raise when an on_done callback raised (after all outcomes were recorded)
function Client:poll(timeout)
    need_async(self, "poll")
    if timeout ~= nil and type(timeout) ~= "number" then
        error("signalr.poll: timeout must be a number of seconds", 2)
    end
    if self._persistent then
        self._persistent:poll(#self._ready > 0 and 0 or timeout or 0)
        return self:_report()
    end
    local outcomes, msg = self._core:poll(#self._ready > 0 and 0 or timeout or 0)
    if not outcomes then return nil, "signalr.poll: " .. msg end
    for i = 1, #outcomes do
        local o = outcomes[i]
        local handler = self._handlers[o.id]
        if handler then
            -- a token or key fetch of ours: its waiters go on
            self._handlers[o.id] = nil
            handler(o)
        else
            local req = self._inflight[o.id]
            self._inflight[o.id] = nil
            local a = self._auth
            if o.error and a and a.cred and o.details and o.details.status == 401
                    and not req._retried and not self._closing then
                -- a refused Entra ID token: once more with a new one (a 401
                -- did no work, so nothing is duplicated)
                req._retried = true
                a:invalidate(req._token)
                self:_with_token(req._submit)
            elseif o.error then
                self:_finish(req, nil, self:_explain(req._op, o.error, o.details), o.details)
            else
                self:_finish(req, o.result)
            end
        end
    end
    return self:_report()
end

-- Report what finished, in order: done, on_done; raises the first error
-- an on_done raised, after all were reported.  Returns how many.
function Client:_report()
    local ready, first_err = self._ready, nil
    self._ready = {}
    for i = 1, #ready do
        local req = ready[i]
        req.done = true
        self._open = self._open - 1
        if self._on_done then
            local ok, err = pcall(self._on_done, req)
            if not ok and not first_err then first_err = err end
        end
    end
    if first_err then error(first_err, 0) end
    return #ready
end

-- Async: a request finished; poll reports it.
function Client:_finish(req, result, err, details)
    if err then
        req.error = "signalr." .. req.op .. ": " .. err
        req.details = details
    else
        req.result = result
    end
    self._ready[#self._ready + 1] = req
end

--- poll(0): make progress without waiting.
function Client:step()
    return self:poll(0)
end

--- Requests queued and not yet finished (persistent mode: the messages
-- the network has not taken yet, queued or on a connection; then the
-- bytes not yet written and the acknowledgements awaited).
function Client:pending()
    need_async(self, "pending")
    if self._persistent then
        local _, bytes, acks = self._persistent:pending()
        return self._open, bytes, acks
    end
    return self._open
end

--- Wait until every queued request has finished, at most `timeout` s.
-- @treturn[1] true
-- @treturn[2] nil, message, details (`code` "ETIMEDOUT", `pending` = n)
function Client:flush(timeout)
    need_async(self, "flush")
    if timeout ~= nil and type(timeout) ~= "number" then
        error("signalr.flush: timeout must be a number of seconds", 2)
    end
    if self._persistent then
        if self._multi then return self:_persistent_flush(timeout) end
        local ok, msg, d = self._persistent:flush(timeout)
        self:_report()
        return ok, msg, d
    end
    local deadline = timeout and core.monotonic() + timeout
    while self._open > 0 do
        if deadline and core.monotonic() >= deadline then
            local n = self._open
            return nil, "signalr.flush: " .. n .. " requests still pending after "
                .. timeout .. " s", { code = "ETIMEDOUT", pending = n }
        end
        local wait = 0.05
        if deadline then wait = math.max(0, math.min(wait, deadline - core.monotonic())) end
        self:poll(wait)
    end
    return true
end

--- Wait until every message sent so far has reached the service.
-- Persistent mode: a send answers `true` once its frame is handed to a
-- server connection, as the service SDK's does; a connection lost then
-- may lose what the network had taken but the service had not processed.
-- `confirm` writes what is queued, then an acknowledged message behind
-- the sends on every connection that carried some, and waits for the
-- answers (the service answers one connection's messages in order).
-- Transient mode: a send that answered `true` was accepted by the
-- service already; async mode waits for the outcomes as `flush` does.
-- @tparam[opt] number timeout seconds (default: the `ack_timeout` option
-- in persistent mode; none in async mode)
-- @treturn[1] boolean true: everything sent before the call reached the service
-- @treturn[2] nil, message, details (`code` "ECONNECT" with `lost`, the
-- number of messages that may not have reached it: send them again;
-- "ETIMEDOUT"; "EPHASE" in nginx phases that cannot wait)
function Client:confirm(timeout)
    if timeout ~= nil and type(timeout) ~= "number" then
        error("signalr.confirm: timeout must be a number of seconds", 2)
    end
    if self._persistent then
        local ok, msg, d = self._persistent:confirm(timeout)
        self:_report()
        return ok, msg, d
    end
    if self._async then return self:flush(timeout) end
    return true
end

--- For an existing event loop: every socket to watch, as
-- `{ { fd = n, read = bool, write = bool }, ... }` (exact; the set changes
-- as transfers start and end), and `client:timeout()`, the seconds until
-- `poll` is due (nil: no timer).  Call `client:poll(0)` when a socket is
-- ready or the timeout passed.  Simpler: wait on `client:pollfd()`.
function Client:fds()
    need_async(self, "fds")
    if self._persistent then return self._persistent:fds() end
    return self._core:fds()
end

--- Seconds until `poll` is due (0: now), or nil when nothing is timed.
function Client:timeout()
    need_async(self, "timeout")
    if #self._ready > 0 then return 0 end
    if self._persistent then return self._persistent:timeout() end
    return self._core:timeout()
end

--- One descriptor for the whole client (an epoll descriptor, Linux):
-- readable when `poll(0)` has socket work.  Wait for it to be readable,
-- or for `client:timeout()`, then `client:poll(0)`.  With `events()` and
-- `timeout()` this lets cqueues wait on the client itself:
-- `cqueues.poll(client)`.  nil where there is no epoll (use `fds()`).
function Client:pollfd()
    need_async(self, "pollfd")
    if self._persistent then return self._persistent:pollfd() end
    return self._core:pollfd()
end

--- The events to wait for on `pollfd()`: always "r" (cqueues' protocol).
function Client:events()
    need_async(self, "events")
    return "r"
end

function Client:__tostring()
    return tostring(self._core)
end

-- ===== Microsoft Entra ID =====

-- Perform one identity request on this client's transport (synchronous
-- transports): status, body | nil, msg, details.
function Client:_fetch(spec)
    if self._ngx then
        return transport_ngx.fetch(self._ngx, core, spec)
    end
    return self._core:fetch(spec.method, spec.url, spec.headers, spec.body, spec.content_type)
end

function Client:_explain(op, msg, details)
    if self._auth and self._auth.cred then return self._auth:explain(op, msg, details) end
    return msg
end

-- Async: call fn(token | nil, msg, details) once a token is at hand,
-- fetching one through the queue when none is cached.
function Client:_with_token(fn)
    local a = self._auth
    if a.provider then return fn(a:token()) end
    local t = auth_mod.now()
    local tok, refresh = a:peek(t)
    if tok then
        fn(tok) -- when a refresh is due, the old token is good meanwhile
    else
        self._token_waiters[#self._token_waiters + 1] = fn
    end
    if (tok and not refresh) or self._token_id then return end
    -- this client's own fetch (not the shared entry's "busy": that is for
    -- synchronous callers, which would otherwise wait on a queue they
    -- cannot drive)
    local spec, msg, d = a.cred:request(t)
    local id
    if spec then
        id, msg, d = self._core:submit_fetch(spec.method, spec.url, spec.headers,
            spec.body, spec.content_type)
    end
    local function done(status, body, details)
        self._token_id = nil
        local nt, m, dd = a:finish(auth_mod.now(), status, body, details)
        local waiters = self._token_waiters
        self._token_waiters = {}
        for i = 1, #waiters do waiters[i](nt, m, dd) end
    end
    if not id then return done(nil, msg, d) end
    self._token_id = id
    self._handlers[id] = function(o)
        if o.error then return done(nil, o.error, o.details) end
        done(o.status, o.body)
    end
end

-- A bearer token for a synchronous call: token | nil, msg, details.
function Client:_token()
    return self._auth:token(function(spec) return self:_fetch(spec) end)
end

-- Perform op on the synchronous transports.
function Client:_perform(op, params, what)
    if self._ngx then
        if not transport_ngx.usable() then return transport_ngx.phase_error() end
        return transport_ngx.call(self._ngx, self._core, core, op, params)
    end
    return self._core:call(op, params)
end

-- A call's opts.endpoints on a client of one endpoint: it is named "".
local function one_endpoint(names, what)
    for _, n in ipairs(names) do
        if n ~= "" then
            return nil, "signalr." .. what .. ": unknown endpoint '" .. n .. "' (this client has"
                .. " one endpoint, named \"\"; several come with option 'endpoints')",
                { code = "EINVAL" }
        end
    end
    if #names == 0 then
        return nil, "signalr." .. what .. ": opts.endpoints names no endpoint", { code = "EINVAL" }
    end
    return true
end

-- The one place a hub operation goes out: token, then the transport.
function Client:_call(op, params, what, names)
    if names then
        local ok, msg, d = one_endpoint(names, what)
        if not ok then return nil, msg, d end
    end
    if self._closing then
        return nil, "signalr." .. what .. ": the client is closed (nothing was sent)",
            { code = "ECANCELED", sent = false }
    end
    if self._async then return self:_call_async(op, params, what) end
    local p = self._persistent
    if p then
        local r, msg, details = p:call(op, params, what)
        if r ~= persistent.PASS then return r, msg, details end
    end
    if MULTI_SEND[op] then return self:_each_send(op, params, what) end
    local a = self._auth
    local res, msg, details
    for attempt = 1, 2 do
        if a then
            local tok
            tok, msg, details = self:_token()
            if not tok then return nil, "signalr." .. what .. ": " .. msg, details end
            params.bearer = tok
        end
        res, msg, details = self:_perform(op, params, what)
        -- a refused Entra ID token: fetch a new one and try once more (a
        -- 401 did no work, so nothing is duplicated)
        if not (res == nil and a and a.cred and details and details.status == 401
                and attempt == 1) then
            break
        end
        a:invalidate(params.bearer)
    end
    if res == nil then
        return nil, "signalr." .. what .. ": " .. self:_explain(op, msg, details), details
    end
    return res
end

-- Transient mode has no multi-target sends: one REST send per target, in
-- order; every one is tried, and any failure makes the result an error
-- naming which went and which did not.
function Client:_each_send(op, params, what)
    local spec = MULTI_SEND[op]
    local ids, ok_n, failed, first = params[spec[2]], 0, {}, nil
    for i = 1, #ids do
        local p = {}
        for k, v in pairs(params) do p[k] = v end
        p[spec[2]] = nil
        p[spec[3]] = ids[i]
        local r, msg, d = self:_call(spec[1], p, what)
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

-- A request object of persistent mode's queue (reported by poll).
function Client:_request(what)
    self._seq = (self._seq or 0) + 1
    self._open = self._open + 1
    return setmetatable({ id = self._seq, op = what, done = false }, Request)
end

-- The async half of _call (apart, so that the synchronous path holds no
-- closures: LuaJIT compiles it then).
function Client:_call_async(op, params, what)
    local a = self._auth
    do
        if self._open >= self._opts.queue_size then
            return nil, "signalr." .. what .. ": queue full: " .. self._open
                .. " requests are pending; poll or flush before sending more",
                { code = "EQUEUEFULL" }
        end
        if not a then
            -- AccessKey clients: the core signs; bad input and a full
            -- queue fail here, nothing queued
            local id, msg, details = self._core:submit(op, params)
            if not id then return nil, "signalr." .. what .. ": " .. msg, details end
            local req = setmetatable({ id = id, op = what, done = false, _op = op }, Request)
            self._inflight[id] = req
            self._open = self._open + 1
            if self._adapter then self._adapter.wake() end
            return req
        end
        local req = setmetatable({ id = 0, op = what, done = false, _op = op }, Request)
        -- failures while this call runs are its results (bad input, a
        -- full queue, no token from a provider); later ones, the request's
        local now, refused = true, nil
        local function submit(tok, msg, details)
            if self._closing then
                return self:_finish(req, nil, "the client is closed (nothing was sent)",
                    { code = "ECANCELED", sent = false })
            end
            local id
            if not tok then
                id = nil
            else
                params.bearer = tok
                id, msg, details = self._core:submit(op, params)
            end
            if not id then
                if now then refused = { msg, details } return end
                return self:_finish(req, nil, msg, details)
            end
            req.id, req._token = id, tok
            self._inflight[id] = req
        end
        req._submit = submit
        if not a.provider and not a:peek(auth_mod.now()) then
            -- the token is still to come: check the input now, send it later
            params.bearer = "-"
            local ok, msg, details = self._core:build(op, params)
            params.bearer = nil
            if not ok then return nil, "signalr." .. what .. ": " .. msg, details end
        end
        self:_with_token(submit)
        now = false
        if refused then return nil, "signalr." .. what .. ": " .. refused[1], refused[2] end
        self._open = self._open + 1
        if self._adapter then self._adapter.wake() end
        return req
    end
end

-- The key negotiate signs with under Entra ID: fetched through
-- GET /api/v1/auth/accessKey, cached per endpoint and identity, given to
-- the core.  Synchronous transports; true | nil, msg, details.
function Client:_ensure_key()
    local k = auth_mod.key_entry(self._info, self._auth)
    local t = auth_mod.now()
    local usable, due = auth_mod.key_state(k, t)
    if due and not k.busy then
        k.busy = true
        local body, msg, details = self:_call("access_key", {}, "negotiate")
        k.busy = false
        if body then
            local ok
            ok, msg, details = auth_mod.key_reply(k, t, body)
            if not ok then msg = "signalr.negotiate: " .. msg end
            usable = ok or usable
        end
        if not usable then return nil, msg, details end
    elseif not usable then
        -- another coroutine fetches it (nginx): wait for its answer
        local deadline = t + (self._opts.timeout or 10)
        while k.busy and auth_mod.now() < deadline do ngx.sleep(0.02) end
        if not auth_mod.key_state(k, auth_mod.now()) then
            return nil, "signalr.negotiate: no temporary access key after waiting for the"
                .. " running request", { code = "ETIMEDOUT", sent = false }
        end
    end
    local ok, msg, details = self:_ensure_key_set(k)
    if not ok then return nil, "signalr.negotiate: " .. msg, details end
    return true
end

-- Sign the client token (the core: no I/O).
function Client:_sign(hub, user_id, claims, lifetime)
    local url, token, details = self._core:negotiate(hub, user_id, claims, lifetime)
    if not url then return nil, "signalr.negotiate: " .. token, details end
    return { url = url, accessToken = token }
end

-- hub:negotiate's work: local with an AccessKey; with Entra ID a
-- temporary key first (async mode: a request object).
function Client:_negotiate(hub, user_id, claims, lifetime, names)
    if names then
        local ok, msg, d = one_endpoint(names, "negotiate")
        if not ok then return nil, msg, d end
    end
    if self._info.has_key then return self:_sign(hub, user_id, claims, lifetime) end
    if not self._async then
        local ok, msg, details = self:_ensure_key()
        if not ok then return nil, msg, details end
        return self:_sign(hub, user_id, claims, lifetime)
    end
    if self._closing then
        return nil, "signalr.negotiate: the client is closed (nothing was sent)",
            { code = "ECANCELED", sent = false }
    end
    local req = setmetatable({ id = 0, op = "negotiate", done = false }, Request)
    self._open = self._open + 1
    if self._adapter then self._adapter.wake() end
    local k = auth_mod.key_entry(self._info, self._auth)
    local function sign()
        local res, msg, details = self:_ensure_key_set(k)
        if res then res, msg, details = self:_sign(hub, user_id, claims, lifetime) end
        if res then return self:_finish(req, res) end
        self:_finish(req, nil, (msg:gsub("^signalr%.negotiate: ", "")), details)
    end
    local usable, due = auth_mod.key_state(k, auth_mod.now())
    if usable then sign() end -- when a refresh is due, the old key is good meanwhile
    if self._key_waiters then -- a fetch is running: wait for it
        if not usable then self._key_waiters[#self._key_waiters + 1] = sign end
        return req
    end
    if usable and not due then return req end
    self._key_waiters = usable and {} or { sign }
    local function done(ok, msg, details)
        local waiters = self._key_waiters
        self._key_waiters = nil
        -- without a usable key, each waiter's request fails with this error
        self._key_error = not ok and { msg, details } or nil
        for i = 1, #waiters do waiters[i]() end
        self._key_error = nil
    end
    self:_with_token(function(tok, msg, details)
        if not tok then return done(false, msg, details) end
        local url = self._info.server_endpoint .. "/api/v1/auth/accessKey"
        local id
        id, msg, details = self._core:submit_fetch("GET", url, { Authorization = "Bearer " .. tok })
        if not id then return done(false, msg, details) end
        self._handlers[id] = function(o)
            local t = auth_mod.now()
            if o.error then return done(false, o.error, o.details) end
            local body, m, d = core.read_reply("access_key", o.status, nil, o.body)
            if not body then
                return done(false, self:_explain("access_key", m, d), d)
            end
            done(auth_mod.key_reply(k, t, body))
        end
    end)
    return req
end

-- Async: give the core the cached key, or the fetch's error.
function Client:_ensure_key_set(k)
    if not auth_mod.key_state(k, auth_mod.now()) then
        local e = self._key_error or { "no temporary access key", { code = "EREPLY" } }
        return nil, e[1], e[2]
    end
    if self._kid ~= k.kid or self._key ~= k.key then
        local ok, msg, details = self._core:set_access_key(k.kid, k.key)
        if not ok then return nil, msg, details end
        self._kid, self._key = k.kid, k.key
    end
    return true
end

_M.Client = Client
-- a client of several endpoints makes hubs and waits for its requests as
-- this one does
local Multi = endpoints_mod.Multi
Multi.hub, Multi.flush, Multi._report = Client.hub, Client.flush, Client._report
return _M
