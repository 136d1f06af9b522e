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

local _M = { _NAME = "signalr", _VERSION = core._VERSION }

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
}
_M.DEFAULTS = {
    api_version = "2022-06-01", timeout = 10, retries = 2, retry_delay = 0.5,
    max_retry_delay = 10, verify_tls = true, token_lifetime = 3600,
    transport = "auto", pool_size = 32,
}

local Client = {}
Client.__index = Client

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
    local o = {}
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
    if o.transport == "cosocket" or (o.transport == "auto" and in_nginx) then
        if not in_nginx then
            handle:close()
            error("signalr.new: transport 'cosocket' needs nginx (ngx.socket)", 2)
        end
        ngx_transport = require("signalr.transport_ngx").new(o)
    end
    return setmetatable({
        _ngx = ngx_transport,
        _core = handle,
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

--- Release the client's HTTP connections now (also done by the GC).
function Client:close()
    self._core:close()
end

function Client:__tostring()
    return tostring(self._core)
end

-- The one place a hub operation goes out: token, then the transport.
function Client:_call(op, params, what)
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
    if self._ngx then
        local tn = require "signalr.transport_ngx"
        if not tn.usable() then return tn.phase_error(what) end
        res, msg, details = tn.call(self._ngx, self._core, core, op, params)
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
