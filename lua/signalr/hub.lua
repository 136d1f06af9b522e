--- Hub objects: one method per REST operation of the Azure SignalR Service.
-- Every method returns `true` (or a boolean for existence checks) on
-- success and `nil, message, details` on failure; a wrong argument type
-- raises.
-- @module signalr.hub
local core = require "signalr.core"
local json = require "signalr.json"

local type, error, tostring, setmetatable, getmetatable, ipairs, pairs =
    type, error, tostring, setmetatable, getmetatable, ipairs, pairs

local Hub = {}
Hub.__index = Hub

local _M = { Hub = Hub }

function _M.new(client, name)
    return setmetatable({ _client = client, name = name }, Hub)
end

-- Programmer errors point at the caller of the hub method (level 3).
local function check_self(self, method)
    if getmetatable(self) ~= Hub then
        error("signalr." .. method .. ": call it as hub:" .. method .. "(...)", 3)
    end
end

local function need_string(v, what, method)
    if type(v) ~= "string" then
        error("signalr." .. method .. ": " .. what .. " must be a string, got "
            .. type(v), 3)
    end
end

local function opt_table(v, what, method, known)
    if v == nil then return {} end
    if type(v) ~= "table" then
        error("signalr." .. method .. ": " .. what .. " must be a table, got "
            .. type(v), 3)
    end
    for k in pairs(v) do
        if not known[k] then
            error("signalr." .. method .. ": unknown option '" .. tostring(k) .. "'", 3)
        end
    end
    return v
end

local function check_exclude(v, method)
    if v == nil then return nil end
    if type(v) ~= "table" then
        error("signalr." .. method .. ": opts.exclude must be a list of connection ids", 3)
    end
    for i, id in ipairs(v) do
        if type(id) ~= "string" then
            error("signalr." .. method .. ": opts.exclude[" .. i .. "] must be a string", 3)
        end
    end
    return v
end

-- Encode args, or return nil, msg, details for data JSON cannot carry.
local function encode(args, method)
    local text, msg = json.encode_args(args)
    if text == false then
        error("signalr." .. method .. ": " .. msg, 3)
    end
    if not text then
        return nil, "signalr." .. method .. ": " .. msg, { code = "EINVAL" }
    end
    return text
end

local function send(self, op, method, params, args)
    local text, msg, details = encode(args, method)
    if not text then return nil, msg, details end
    params.hub = self.name
    params.arguments = text
    return self._client:_call(op, params, method)
end

local EXCLUDE = { exclude = true }

--- Send to every client of the hub.
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `exclude` = list of connection ids
function Hub:broadcast(target, args, opts)
    check_self(self, "broadcast")
    need_string(target, "target", "broadcast")
    opts = opt_table(opts, "opts", "broadcast", EXCLUDE)
    return send(self, "broadcast", "broadcast",
        { target = target, excluded = check_exclude(opts.exclude, "broadcast") }, args)
end

--- Send to every connection of one user.
function Hub:to_user(user_id, target, args)
    check_self(self, "to_user")
    need_string(user_id, "user_id", "to_user")
    need_string(target, "target", "to_user")
    return send(self, "to_user", "to_user", { user = user_id, target = target }, args)
end

--- Send to every connection in a group.
-- @tparam[opt] table opts `exclude` = list of connection ids
function Hub:to_group(group, target, args, opts)
    check_self(self, "to_group")
    need_string(group, "group", "to_group")
    need_string(target, "target", "to_group")
    opts = opt_table(opts, "opts", "to_group", EXCLUDE)
    return send(self, "to_group", "to_group", { group = group, target = target,
        excluded = check_exclude(opts.exclude, "to_group") }, args)
end

--- Send to one connection.
function Hub:to_connection(connection_id, target, args)
    check_self(self, "to_connection")
    need_string(connection_id, "connection_id", "to_connection")
    need_string(target, "target", "to_connection")
    return send(self, "to_connection", "to_connection",
        { connection = connection_id, target = target }, args)
end

-- Operations without a body: name -> { argument names in order }.
local SIMPLE = {
    add_connection_to_group = { "connection_id", "group" },
    remove_connection_from_group = { "connection_id", "group" },
    remove_connection_from_all_groups = { "connection_id" },
    remove_user_from_group = { "user_id", "group" },
    remove_user_from_all_groups = { "user_id" },
    connection_exists = { "connection_id" },
    user_exists = { "user_id" },
    group_exists = { "group" },
    user_in_group = { "user_id", "group" },
}
local FIELD = { connection_id = "connection", user_id = "user", group = "group" }

for method, names in pairs(SIMPLE) do
    Hub[method] = function(self, a, b)
        check_self(self, method)
        local params, vals = { hub = self.name }, { a, b }
        for i, n in ipairs(names) do
            need_string(vals[i], n, method)
            params[FIELD[n]] = vals[i]
        end
        return self._client:_call(method, params, method)
    end
end

--- Add a user (all of its current and future connections) to a group.
-- @tparam[opt] table opts `ttl` = seconds the membership lasts (>= 0)
function Hub:add_user_to_group(user_id, group, opts)
    check_self(self, "add_user_to_group")
    need_string(user_id, "user_id", "add_user_to_group")
    need_string(group, "group", "add_user_to_group")
    opts = opt_table(opts, "opts", "add_user_to_group", { ttl = true })
    if opts.ttl ~= nil and type(opts.ttl) ~= "number" then
        error("signalr.add_user_to_group: opts.ttl must be a number", 2)
    end
    if opts.ttl ~= nil and not (opts.ttl >= 0 and opts.ttl <= 2147483647
                                and opts.ttl % 1 == 0) then
        return nil, "signalr.add_user_to_group: ttl must be a whole number of"
            .. " seconds from 0 to 2147483647", { code = "EINVAL" }
    end
    return self._client:_call("add_user_to_group",
        { hub = self.name, user = user_id, group = group, ttl = opts.ttl },
        "add_user_to_group")
end

--- Close one client connection.
-- @tparam[opt] string reason sent to the client in its close message
function Hub:close_connection(connection_id, reason)
    check_self(self, "close_connection")
    need_string(connection_id, "connection_id", "close_connection")
    if reason ~= nil then need_string(reason, "reason", "close_connection") end
    return self._client:_call("close_connection",
        { hub = self.name, connection = connection_id, reason = reason },
        "close_connection")
end

local CLOSE_OPTS = { exclude = true, reason = true }

local function close_many(self, method, params, opts)
    opts = opt_table(opts, "opts", method, CLOSE_OPTS)
    if opts.reason ~= nil then need_string(opts.reason, "opts.reason", method) end
    params.hub = self.name
    params.reason = opts.reason
    params.excluded = check_exclude(opts.exclude, method)
    return self._client:_call(method, params, method)
end

--- Close every connection of the hub (api 2022-06-01+).
-- @tparam[opt] table opts `exclude`, `reason`
function Hub:close_all_connections(opts)
    check_self(self, "close_all_connections")
    return close_many(self, "close_all_connections", {}, opts)
end

--- Close every connection in a group (api 2022-06-01+).
function Hub:close_group_connections(group, opts)
    check_self(self, "close_group_connections")
    need_string(group, "group", "close_group_connections")
    return close_many(self, "close_group_connections", { group = group }, opts)
end

--- Close every connection of a user (api 2022-06-01+).
function Hub:close_user_connections(user_id, opts)
    check_self(self, "close_user_connections")
    need_string(user_id, "user_id", "close_user_connections")
    return close_many(self, "close_user_connections", { user = user_id }, opts)
end

local NEGOTIATE = { user_id = true, claims = true, lifetime = true }

--- What a client's negotiate endpoint returns (no I/O).
-- @tparam[opt] table opts `user_id`, `claims` (table of extra JWT claims),
--   `lifetime` (seconds, default 3600)
-- @treturn[1] table `{ url = ..., accessToken = ... }`
-- @treturn[2] nil, message, details
function Hub:negotiate(opts)
    check_self(self, "negotiate")
    opts = opt_table(opts, "opts", "negotiate", NEGOTIATE)
    if opts.user_id ~= nil then need_string(opts.user_id, "opts.user_id", "negotiate") end
    if opts.lifetime ~= nil and type(opts.lifetime) ~= "number" then
        error("signalr.negotiate: opts.lifetime must be a number", 2)
    end
    if opts.lifetime ~= nil and not (opts.lifetime >= 1 and opts.lifetime < 1e9) then
        return nil, "signalr.negotiate: lifetime must be at least 1 second",
            { code = "EINVAL" }
    end
    local claims
    if opts.claims ~= nil then
        local msg
        claims, msg = json.encode_claims(opts.claims)
        if claims == false then error("signalr.negotiate: " .. msg, 2) end
        if not claims then
            return nil, "signalr.negotiate: " .. msg, { code = "EINVAL" }
        end
    end
    local url, token, details = self._client._core:negotiate(self.name,
        opts.user_id, claims, opts.lifetime)
    if not url then return nil, "signalr.negotiate: " .. token, details end
    return { url = url, accessToken = token }
end

--- Run an Azure Functions output-binding action (message or group action).
-- @see signalr.actions
function Hub:send(action)
    check_self(self, "send")
    return require("signalr.actions").run(self, action)
end

function Hub:__tostring()
    return "signalr.hub (" .. self.name .. ")"
end

_M.core = core
return _M
