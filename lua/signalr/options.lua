--- The options of `signalr.new`: one schema per mode (every client, the
-- persistent mode, several endpoints), their types, ranges and defaults.
-- A wrong option is a programmer error: it raises, naming the option.
-- @module signalr.options
local core = require "signalr.core"
local util = require "signalr.util"

local type, error, pairs, ipairs, tostring = type, error, pairs, ipairs, tostring
local floor = math.floor

local _M = {}

-- option -> { Lua type, the mode it belongs to (nil: every client) }
local SCHEMA = {}
local function schema(mode, list)
    for k, ty in pairs(list) do SCHEMA[k] = { ty, mode } end
end

-- every client
schema(nil, {
    connection_string = "string",
    api_version = "string",     -- "2022-06-01" (default), a later date, or "v1"
    application = "string",     -- app-name prefix of hubs (optional)
    timeout = "number",         -- seconds for one whole request
    connect_timeout = "number", -- seconds to connect (default min(timeout, 5))
    retries = "number",         -- extra attempts after a transient failure
    retry_delay = "number",     -- first backoff delay, seconds (doubles); the delay when fixed
    retry_mode = "string",      -- "exponential" (default) or "fixed" (the SDK's RetryMode)
    on_log = "function",        -- on_log(level, message): retries, reconnects, tokens, drops
    max_retry_delay = "number", -- cap on a delay and on Retry-After, seconds
    verify_tls = "boolean",
    ca_file = "string",         -- PEM bundle to trust instead of the system's
    proxy = "string",           -- "http://host:port": every libcurl request through it
    user_agent = "string",
    token_lifetime = "number",  -- seconds a REST token lives (default 3600)
    token_provider = "function",-- Entra ID: returns a bearer token[, expires_at]
    authority_host = "string",  -- Entra ID authority (default the public cloud)
    managed_identity_endpoint = "string", -- IMDS-style endpoint (default 169.254.169.254)
    client_certificate_password = "string", -- Entra ID: of a PFX file or an encrypted PEM key
    managed_identity_client_id = "string",   -- a user-assigned identity by client id,
    managed_identity_object_id = "string",   -- by object (principal) id,
    managed_identity_resource_id = "string", -- or by Azure resource id (one of the three)
    shared_dict = "string",     -- nginx: lua_shared_dict sharing tokens across workers
    transport = "string",       -- "auto" (cosockets inside nginx), "curl", "cosocket"
    pool_size = "number",       -- nginx: keep-alive connections per endpoint
    async = "boolean",          -- calls queue and return a request object
    queue_size = "number",      -- async, persistent: most requests pending at once
    max_connections = "number", -- async: parallel connections per endpoint
    on_done = "function",       -- async, persistent: called with each finished request
    mode = "string",            -- "transient" (REST, default) or "persistent"
})
-- several endpoints (signalr.endpoints)
schema("endpoints", {
    endpoints = "table",        -- the instances
    router = "function",        -- negotiate's choice
    health_interval = "number", -- seconds between health checks (120)
    health_timeout = "number",  -- seconds a check may take (2)
    health_retries = "number",  -- extra attempts before offline (2)
    health_retry_delay = "number", -- seconds between attempts (3)
})
-- mode = "persistent" (signalr.transport.persistent)
schema("persistent", {
    connection_count = "number",-- server connections per hub (1)
    max_message_size = "number",-- bytes a message may be (16 MiB)
    protocols = "table",        -- client protocols to serialize for
    handshake_timeout = "number", -- seconds for connect + handshake (15)
    keepalive_interval = "number", -- seconds of quiet before a ping (5)
    server_timeout = "number",  -- seconds of service silence = dead (30)
    ack_timeout = "number",     -- seconds an acknowledgement may take (10)
})

-- The options of a mode, in the order their misuse is reported.
local PERSISTENT_ONLY = { "connection_count", "max_message_size", "protocols", "handshake_timeout",
                          "keepalive_interval", "server_timeout", "ack_timeout" }
local ENDPOINTS_ONLY = { "router", "health_interval", "health_timeout", "health_retries",
                         "health_retry_delay" }

--- The defaults of every client.
_M.DEFAULTS = {
    api_version = "2022-06-01", timeout = 10, retries = 2, retry_delay = 0.5,
    retry_mode = "exponential",
    max_retry_delay = 10, verify_tls = true, token_lifetime = 3600,
    transport = "auto", pool_size = 32, async = false, queue_size = 1024,
    max_connections = 8,
}
--- The defaults of persistent mode.
_M.PERSISTENT = {
    connection_count = 1, max_message_size = 16 * 1024 * 1024,
    handshake_timeout = 15, keepalive_interval = 5, server_timeout = 30,
    ack_timeout = 10,
}

-- Sent as Asrs-User-Agent, in the service SDK's "<package>/<version>
-- (<runtime>; <os>)" shape.
_M.PRODUCT_INFO = "lua-signalr/" .. core._VERSION .. " ("
    .. (type(jit) == "table" and jit.version or _VERSION)
    .. (type(ngx) == "table" and ngx.config and ngx.config.nginx_version
        and ("; nginx " .. ngx.config.nginx_version) or "")
    .. (type(jit) == "table" and ("; " .. jit.os) or "") .. ")"

local function int(lo, hi)
    return function(v) return v >= lo and v <= hi and floor(v) == v end
end
local function between(lo, hi)
    return function(v) return v >= lo and v < hi end
end

-- Ranges, in the order they are checked: options, test, what must hold.
local RANGES = {
    { { "timeout", "retry_delay", "max_retry_delay", "connect_timeout", "token_lifetime",
        "health_interval", "health_timeout" },
      function(v) return v > 0 and v < 1e9 end, "must be a positive number" },
    { { "token_lifetime" }, function(v) return v % 1 == 0 end,
      "must be a whole number of seconds" },
    { { "queue_size", "max_connections", "pool_size" }, int(1, 1e6), "must be a positive integer" },
    { { "transport" }, function(v) return v == "auto" or v == "curl" or v == "cosocket" end,
      "must be \"auto\", \"curl\" or \"cosocket\"" },
    { { "retries", "health_retries" }, int(0, 100), "must be an integer from 0 to 100" },
    { { "health_interval", "health_timeout" }, function(v) return v >= 0.001 end,
      "must be at least 0.001 seconds" },
    { { "health_retry_delay" }, between(0, 1e9), "must be a number from 0" },
    { { "mode" }, function(v) return v == "transient" or v == "persistent" end,
      "must be \"transient\" or \"persistent\"" },
    { { "proxy" }, function(v) return v:match("^%a[%w+.-]*://[^%s/]+/?$") ~= nil end,
      "must be a proxy URL such as \"http://host:port\"" },
    { { "retry_mode" }, function(v) return v == "exponential" or v == "fixed" end,
      "must be \"exponential\" or \"fixed\"" },
    "persistent and async",
    { { "handshake_timeout", "keepalive_interval", "server_timeout", "ack_timeout" },
      between(0.01, 1e9), "must be a number of seconds from 0.01" },
    { { "connection_count" }, int(1, 64), "must be an integer from 1 to 64" },
    { { "max_message_size" }, int(1024, 2147483647),
      "must be a whole number of bytes from 1024 to 2147483647" },
    "protocols",
}

local function raise(msg, level)
    error("signalr.new: " .. msg, level + 1)
end

local function check_protocols(list, level)
    if list == nil then return end
    local n = 0
    for k, v in pairs(list) do
        n = n + 1
        if type(k) ~= "number" or (v ~= "json" and v ~= "messagepack") then
            raise("option 'protocols' must be a list of \"json\" and \"messagepack\"", level + 1)
        end
    end
    if n == 0 then raise("option 'protocols' must name at least one protocol", level + 1) end
end

--- Check the options' names, types and ranges, and that each belongs to
-- the client's mode.
-- @tparam table opts the caller's options
-- @tparam number level where the error points (as error's level, from the caller)
-- @raise on an unknown option, a wrong type or range, an option of another mode
function _M.check(opts, level)
    level = (level or 1) + 1
    for k, v in pairs(opts) do
        local want = SCHEMA[k]
        if not want then raise("unknown option '" .. tostring(k) .. "'", level) end
        if type(v) ~= want[1] then
            raise("option '" .. k .. "' must be a " .. want[1] .. ", got " .. type(v), level)
        end
    end
    for _, rule in ipairs(RANGES) do
        if rule == "persistent and async" then
            if opts.mode == "persistent" and opts.async then
                raise("mode 'persistent' is already asynchronous (sends return once"
                    .. " the frame is handed to a connection): leave 'async' off", level)
            end
        elseif rule == "protocols" then
            check_protocols(opts.protocols, level)
        else
            for _, k in ipairs(rule[1]) do
                local v = opts[k]
                if v ~= nil and not rule[2](v) then raise("option '" .. k .. "' " .. rule[3], level) end
            end
        end
    end
    if opts.mode ~= "persistent" then
        for _, k in ipairs(PERSISTENT_ONLY) do
            if opts[k] ~= nil then raise("option '" .. k .. "' is for mode = \"persistent\"", level) end
        end
    end
end

--- Check what a client of one endpoint needs beyond `check`: none of the
-- options of several endpoints, a connection string.
-- @raise as `check`
function _M.check_single(opts, level)
    level = (level or 1) + 1
    for _, k in ipairs(ENDPOINTS_ONLY) do
        if opts[k] ~= nil then
            raise("option '" .. k .. "' is for clients with several endpoints (option 'endpoints')", level)
        end
    end
    if opts.connection_string == nil then raise("option 'connection_string' is required", level) end
end

--- The options of one endpoint's client, defaults filled in (a new table).
function _M.fill(opts)
    local o = { product_info = _M.PRODUCT_INFO }
    for k, v in pairs(_M.DEFAULTS) do o[k] = v end
    for k, v in pairs(opts) do o[k] = v end
    -- on_log's lines, redacted; nil without it
    o.log = util.logger(o.on_log)
    if o.mode == "persistent" then
        for k, v in pairs(_M.PERSISTENT) do if o[k] == nil then o[k] = v end end
    end
    return o
end

--- The options that belong to one mode (a list of names).
_M.ONLY = { persistent = PERSISTENT_ONLY, endpoints = ENDPOINTS_ONLY }

return _M
