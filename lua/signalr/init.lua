--- lua-signalr: Azure SignalR Service for Lua.
-- `signalr.new` parses a connection string and returns a client; `client:hub`
-- returns hub objects whose methods call the service's REST API.
-- @module signalr
local core = require "signalr.core"
local hub_mod = require "signalr.hub"
local json = require "signalr.json"

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
    token_provider = "function",-- Entra ID: returns a bearer token
    transport = "string",       -- "auto" (cosockets inside nginx), "curl", "cosocket"
    pool_size = "number",       -- nginx: keep-alive connections per endpoint
    async = "boolean",          -- calls queue and return a request object
    queue_size = "number",      -- async: most requests pending at once
    max_connections = "number", -- async: parallel connections per endpoint
    on_done = "function",       -- async: called with each finished request
}
_M.DEFAULTS = {
    api_version = "2022-06-01", timeout = 10, retries = 2, retry_delay = 0.5,
    max_retry_delay = 10, verify_tls = true, token_lifetime = 3600,
    transport = "auto", pool_size = 32, async = false, queue_size = 1024,
    max_connections = 8,
}

local Client = {}
Client.__index = Client
local Request = {}

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
                        "connect_timeout", "token_lifetime" } do
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
    local r = opts.retries
    if r ~= nil and not (r >= 0 and r <= 100 and floor(r) == r) then
        error("signalr.new: option 'retries' must be an integer from 0 to 100", 3)
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
    if not info.has_key and not o.token_provider then
        handle:close()
        return nil, "signalr.new: AuthType=" .. info.auth_type
            .. " needs the token_provider option (no AccessKey to sign with)",
            { code = "EINVAL" }
    end
    -- inside nginx, requests go over cosockets: never block the worker
    local in_nginx = type(ngx) == "table" and type(ngx.socket) == "table"
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
    return setmetatable({
        _ngx = ngx_transport,
        _core = handle,
        _async = o.async or nil,
        _inflight = o.async and {} or nil,
        _on_done = o.on_done,
        _info = info,
        _token_provider = o.token_provider,
        _opts = o,
    }, Client)
end

--- Return a hub object for `name` (validated: a letter, then up to 127
-- letters, digits or _`,.[]).  Hub names are case-insensitive.
-- @tparam string name
-- @treturn[1] hub
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] table details
function Client:hub(name)
    if getmetatable(self) ~= Client then
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
        until self._core:pending() == 0
    end
    self._closed = true
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

local function need_async(self, what)
    if not self._async then
        error("signalr." .. what .. ": only for clients made with async = true", 3)
    end
end

--- Make progress: wait up to `timeout` seconds (default 0) for network
-- activity, then finish what completed, calling `on_done` for each.
-- @treturn number how many requests finished in this call
-- @raise when an on_done callback raised (after all outcomes were recorded)
function Client:poll(timeout)
    need_async(self, "poll")
    if timeout ~= nil and type(timeout) ~= "number" then
        error("signalr.poll: timeout must be a number of seconds", 2)
    end
    local outcomes, msg = self._core:poll(timeout or 0)
    if not outcomes then return nil, "signalr.poll: " .. msg end
    local first_err
    for i = 1, #outcomes do
        local o = outcomes[i]
        local req = self._inflight[o.id]
        self._inflight[o.id] = nil
        req.done = true
        if o.error then
            req.error = "signalr." .. req.op .. ": " .. o.error
            req.details = o.details
        else
            req.result = o.result
        end
        if self._on_done then
            local ok, err = pcall(self._on_done, req)
            if not ok and not first_err then first_err = err end
        end
    end
    if first_err then error(first_err, 0) end
    return #outcomes
end

--- poll(0): make progress without waiting.
function Client:step()
    return self:poll(0)
end

--- Requests queued and not yet finished.
function Client:pending()
    need_async(self, "pending")
    return self._core:pending()
end

--- Wait until every queued request has finished, at most `timeout` s.
-- @treturn[1] true
-- @treturn[2] nil, message, details (`code` "ETIMEDOUT", `pending` = n)
function Client:flush(timeout)
    need_async(self, "flush")
    if timeout ~= nil and type(timeout) ~= "number" then
        error("signalr.flush: timeout must be a number of seconds", 2)
    end
    local deadline = timeout and core.monotonic() + timeout
    while self._core:pending() > 0 do
        if deadline and core.monotonic() >= deadline then
            local n = self._core:pending()
            return nil, "signalr.flush: " .. n .. " requests still pending after "
                .. timeout .. " s", { code = "ETIMEDOUT", pending = n }
        end
        local wait = 0.05
        if deadline then wait = math.max(0, math.min(wait, deadline - core.monotonic())) end
        self:poll(wait)
    end
    return true
end

--- For an existing event loop: the sockets to watch, as
-- `{ { fd = n, read = bool, write = bool }, ... }`, and `client:timeout()`,
-- the seconds until `poll` is due (nil: no timer).  Call `client:poll(0)`
-- when a socket is ready or the timeout passed.
function Client:fds()
    need_async(self, "fds")
    return self._core:fds()
end

function Client:timeout()
    need_async(self, "timeout")
    return self._core:timeout()
end

function Client:__tostring()
    return tostring(self._core)
end

-- The one place a hub operation goes out: token, then the transport.
function Client:_call(op, params, what)
    if self._closing then
        return nil, "signalr." .. what .. ": the client is closed (nothing was sent)",
            { code = "ECANCELED", sent = false }
    end
    if self._token_provider then
        local ok, tok, err = pcall(self._token_provider)
        if not ok or type(tok) ~= "string" or tok == "" then
            return nil, "signalr." .. what .. ": the token provider gave no token"
                .. ((not ok or err) and (": " .. tostring(ok and err or tok)) or ""),
                { code = "EINVAL" }
        end
        params.bearer = tok
    end
    local res, msg, details
    if self._async then
        local id
        id, msg, details = self._core:submit(op, params)
        if not id then return nil, "signalr." .. what .. ": " .. msg, details end
        local req = setmetatable({ id = id, op = what, done = false }, Request)
        self._inflight[id] = req
        return req
    elseif self._ngx then
        if not transport_ngx.usable() then return transport_ngx.phase_error(what) end
        res, msg, details = transport_ngx.call(self._ngx, self._core, core, op, params)
    else
        res, msg, details = self._core:call(op, params)
    end
    if res == nil then
        return nil, "signalr." .. what .. ": " .. msg, details
    end
    return res
end

_M.Client = Client
return _M
