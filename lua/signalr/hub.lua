--- Hub objects: one method per REST operation of the Azure SignalR Service.
-- Every method returns `true` (or a boolean for existence checks) on
-- success and `nil, message, details` on failure; a wrong argument type
-- raises.  Every method takes `opts.endpoints` (a list of endpoint names,
-- or the tables `client:endpoints()` returns) to choose the endpoints of
-- a client made with several (signalr.endpoints).
-- @module signalr.hub
local core = require "signalr.core"
local json = require "signalr.json"
local names_of = require("signalr.util").names
-- an argument list's JSON text in one call, when it is the common case
local args_text = core.json_encode_args
local after = require("signalr.request").after
local send_params = require("signalr.transport.base").send_params

local type, error, tostring, setmetatable, getmetatable, ipairs, pairs =
    type, error, tostring, setmetatable, getmetatable, ipairs, pairs

local Hub = {}
Hub.__index = Hub

local _M = { Hub = Hub }

-- The transport's sender of a hub's broadcast, to_user and to_group,
-- where it has one (persistent mode: `Persistent:sender`), by method and
-- hub: a send's common case goes to it at once (see single_send).  Keyed
-- by the hub itself, so a lookup with any `self` is safe and the hub is
-- known without a call.  Weak keys and weak values: the hub holds its
-- senders (`_senders`), so they live as long as it does, and this table
-- holds nothing (a weak-keyed table alone would keep its values, and
-- through them the client, on Lua 5.1 and LuaJIT, which have no
-- ephemerons: a hub captured by a callback would never be collected).
local SENDERS = {}
for _, method in ipairs { "broadcast", "to_user", "to_group" } do
    SENDERS[method] = setmetatable({}, { __mode = "kv" })
end

--- A hub of a client: its calls go to the client's transport.
-- @tparam table client the client (signalr.client)
-- @tparam table t its transport (signalr.transport)
-- @tparam string name the hub's name (validated)
function _M.new(client, t, name)
    local hub = setmetatable({ _client = client, _t = t, name = name }, Hub)
    if t.sender then
        local own = {}
        for method, senders in pairs(SENDERS) do
            local sender = t:sender(name, method)
            own[method], senders[hub] = sender, sender
        end
        hub._senders = own
    end
    return hub
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

local function send(self, op, method, params, args, names)
    local text, msg, details = encode(args, method)
    if not text then return nil, msg, details end
    params.hub = self.name
    params.arguments = text
    return self._t:call(op, params, method, names)
end

local EXCLUDE = { exclude = true, endpoints = true }
local ONLY_ENDPOINTS = { endpoints = true }

-- A send to one target (none: broadcast): hub:<method>([id, ]target,
-- args, opts).  `id_name` names the id in messages; `known` the options
-- it takes (`exclude` among them or not).
local function single_send(method, id_name, known)
    -- (the checks' calls only for what fails them: this runs per send;
    -- fixed parameters, no `...`: LuaJIT compiles this path)
    local senders = SENDERS[method]
    return function(self, a, b, c, d)
        -- the common case (a hub with a sender, no options) in one call:
        -- the sender answers false for anything else, a wrong argument
        -- type among it, and the checks and the general path below then
        -- raise, do it or explain
        local sender = senders and senders[self]
        if sender then
            local ok, msg, details = false
            if id_name == nil then
                if c == nil then ok, msg, details = sender(a, b) else sender = nil end
            elseif d == nil then
                ok, msg, details = sender(b, c, a)
            else
                sender = nil
            end
            if ok ~= false then return ok, msg, details end
        end
        if getmetatable(self) ~= Hub then check_self(self, method) end
        local id, target, args, opts
        if id_name then
            id, target, args, opts = a, b, c, d
            if type(id) ~= "string" then need_string(id, id_name, method) end
        else
            target, args, opts = a, b, c
        end
        if type(target) ~= "string" then need_string(target, "target", method) end
        local excluded, names
        if opts ~= nil then
            opts = opt_table(opts, "opts", method, known)
            if known.exclude then excluded = check_exclude(opts.exclude, method) end
            names = names_of(opts.endpoints, method)
        end
        local t = self._t
        if names == nil and excluded == nil and t.send_args and not sender then
            -- the common case in one call (persistent mode, blocking
            -- REST), unless the sender just answered false for it:
            -- false when it is not, the general path below then does it
            -- or explains
            local ok, msg, details = t:send_args(method, self.name, target, args, id)
            if ok ~= false then return ok, msg, details end
        end
        local text = args_text(args)
        if not text then
            local msg, details
            text, msg, details = encode(args, method)
            if not text then return nil, msg, details end
        end
        if names == nil and t.send_data then
            -- a transport that takes sends without a parameter table
            return t:send_data(method, self.name, target, text, id, excluded)
        end
        -- the parameters in one constructor (no table grows per send)
        local params = send_params(method, self.name, target, text, id, excluded)
        return t:call(method, params, method, names)
    end
end

--- Send to every client of the hub.
-- Persistent mode: `true` means handed to a server connection; if that
-- connection is lost before the service reads it, the message may be
-- lost: `client:confirm()` says whether that happened (and how many).
-- @function Hub:broadcast
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `exclude` = list of connection ids, `endpoints`
-- @treturn[1] true (async mode: a request object)
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] table details (`code`, `status`, `service_code`)
-- @raise on a wrong argument type or an unknown option
Hub.broadcast = single_send("broadcast", nil, EXCLUDE)

--- Send to every connection of one user.
-- Persistent mode: `true` means handed to a server connection; if that
-- connection is lost before the service reads it, the message may be
-- lost: `client:confirm()` says whether that happened (and how many).
-- @function Hub:to_user
-- @tparam string user_id
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
Hub.to_user = single_send("to_user", "user_id", ONLY_ENDPOINTS)

--- Send to every connection in a group.
-- Persistent mode: `true` means handed to a server connection; if that
-- connection is lost before the service reads it, the message may be
-- lost: `client:confirm()` says whether that happened (and how many).
-- @function Hub:to_group
-- @tparam string group
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `exclude` = list of connection ids, `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
Hub.to_group = single_send("to_group", "group", EXCLUDE)

--- Send to one connection (accepted even when it does not exist, as the
-- service answers).
-- Persistent mode: `true` means handed to a server connection; if that
-- connection is lost before the service reads it, the message may be
-- lost: `client:confirm()` says whether that happened (and how many).
-- @function Hub:to_connection
-- @tparam string connection_id
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
Hub.to_connection = single_send("to_connection", "connection_id", ONLY_ENDPOINTS)

-- A non-empty list of strings, or raise.
local function need_list(v, what, method)
    if type(v) ~= "table" or v[1] == nil then
        error("signalr." .. method .. ": " .. what .. " must be a non-empty list of strings, got "
            .. (type(v) == "table" and "an empty table" or type(v)), 3)
    end
    local n = 0
    for k in pairs(v) do
        n = n + 1
        if type(k) ~= "number" then
            error("signalr." .. method .. ": " .. what .. " must be a list (key "
                .. tostring(k) .. ")", 3)
        end
    end
    for i = 1, n do
        if type(v[i]) ~= "string" then
            error("signalr." .. method .. ": " .. what .. "[" .. i .. "] must be a string, got "
                .. type(v[i]), 3)
        end
    end
    return v
end

local function multi(method, list_name, param)
    return function(self, ids, target, args, opts)
        check_self(self, method)
        need_list(ids, list_name, method)
        need_string(target, "target", method)
        opts = opt_table(opts, "opts", method, ONLY_ENDPOINTS)
        return send(self, method, method, { [param] = ids, target = target }, args,
            names_of(opts.endpoints, method))
    end
end

--- Send to every connection of several users: one message in persistent
-- mode (the service protocol's MultiUserData), one REST send per user in
-- transient mode (the REST API has no such route).
-- Persistent mode: `true` means handed to a server connection; if that
-- connection is lost before the service reads it, the message may be
-- lost: `client:confirm()` says whether that happened (and how many).
-- @function Hub:to_users
-- @tparam {string,...} user_ids
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `endpoints`
-- @treturn[1] true (persistent mode while no connection is up: a request object)
-- @treturn[2] nil, message, details (transient: `delivered`, `failed`)
Hub.to_users = multi("to_users", "user_ids", "users")

--- Send to every connection in several groups (each connection once):
-- MultiGroupBroadcastData in persistent mode, one REST send per group in
-- transient mode.
-- Persistent mode: `true` means handed to a server connection; if that
-- connection is lost before the service reads it, the message may be
-- lost: `client:confirm()` says whether that happened (and how many).
-- @function Hub:to_groups
-- @tparam {string,...} groups
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
Hub.to_groups = multi("to_groups", "groups", "groups")

--- Send to several connections: MultiConnectionData in persistent mode,
-- one REST send per connection in transient mode.
-- Persistent mode: `true` means handed to a server connection; if that
-- connection is lost before the service reads it, the message may be
-- lost: `client:confirm()` says whether that happened (and how many).
-- @function Hub:to_connections
-- @tparam {string,...} connection_ids
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
Hub.to_connections = multi("to_connections", "connection_ids", "connections")

--- Add a connection to a group.
-- @function Hub:add_connection_to_group
-- @tparam string connection_id
-- @tparam string group
-- @treturn[1] true
-- @treturn[2] nil, message, details (a connection that does not exist is
--   an `ESTATUS` 404 error)

--- Remove a connection from a group.
-- @function Hub:remove_connection_from_group
-- @tparam string connection_id
-- @tparam string group
-- @treturn[1] true
-- @treturn[2] nil, message, details

--- Remove a connection from every group (api 2022-06-01+).
-- @function Hub:remove_connection_from_all_groups
-- @tparam string connection_id
-- @treturn[1] true
-- @treturn[2] nil, message, details

--- Remove a user from a group.
-- @function Hub:remove_user_from_group
-- @tparam string user_id
-- @tparam string group
-- @treturn[1] true
-- @treturn[2] nil, message, details

--- Remove a user from every group.
-- @function Hub:remove_user_from_all_groups
-- @tparam string user_id
-- @treturn[1] true
-- @treturn[2] nil, message, details

--- Does the connection exist?
-- @function Hub:connection_exists
-- @tparam string connection_id
-- @treturn[1] boolean
-- @treturn[2] nil, message, details

--- Does the user have a connection?
-- @function Hub:user_exists
-- @tparam string user_id
-- @treturn[1] boolean
-- @treturn[2] nil, message, details

--- Does the group have a connection?
-- @function Hub:group_exists
-- @tparam string group
-- @treturn[1] boolean
-- @treturn[2] nil, message, details

--- Is the user in the group?
-- @function Hub:user_in_group
-- @tparam string user_id
-- @tparam string group
-- @treturn[1] boolean
-- @treturn[2] nil, message, details

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

-- (each also takes an opts table after its arguments: `endpoints`)
for method, names in pairs(SIMPLE) do
    Hub[method] = function(self, a, b, c)
        check_self(self, method)
        local params, vals = { hub = self.name }, { a, b, c }
        for i, n in ipairs(names) do
            need_string(vals[i], n, method)
            params[FIELD[n]] = vals[i]
        end
        local opts = opt_table(vals[#names + 1], "opts", method, ONLY_ENDPOINTS)
        return self._t:call(method, params, method, names_of(opts.endpoints, method))
    end
end

--- Add a user (all of its current and future connections) to a group.
-- @tparam string user_id
-- @tparam string group
-- @tparam[opt] table opts `ttl` = seconds the membership lasts (>= 0;
--   0 adds only the user's current connections)
-- @treturn[1] true
-- @treturn[2] nil, message, details
function Hub:add_user_to_group(user_id, group, opts)
    check_self(self, "add_user_to_group")
    need_string(user_id, "user_id", "add_user_to_group")
    need_string(group, "group", "add_user_to_group")
    opts = opt_table(opts, "opts", "add_user_to_group", { ttl = true, endpoints = true })
    if opts.ttl ~= nil and type(opts.ttl) ~= "number" then
        error("signalr.add_user_to_group: opts.ttl must be a number", 2)
    end
    if opts.ttl ~= nil and not (opts.ttl >= 0 and opts.ttl <= 2147483647
                                and opts.ttl % 1 == 0) then
        return nil, "signalr.add_user_to_group: ttl must be a whole number of"
            .. " seconds from 0 to 2147483647", { code = "EINVAL" }
    end
    return self._t:call("add_user_to_group",
        { hub = self.name, user = user_id, group = group, ttl = opts.ttl },
        "add_user_to_group", names_of(opts.endpoints, "add_user_to_group"))
end

--- Close one client connection (true also when it is already gone).
-- Persistent mode: `true` means handed to a server connection, as for
-- the sends (see `client:confirm()`).
-- @tparam string connection_id
-- @tparam[opt] string reason sent to the client in its close message
-- @tparam[opt] table opts `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
function Hub:close_connection(connection_id, reason, opts)
    check_self(self, "close_connection")
    need_string(connection_id, "connection_id", "close_connection")
    if reason ~= nil then need_string(reason, "reason", "close_connection") end
    opts = opt_table(opts, "opts", "close_connection", ONLY_ENDPOINTS)
    return self._t:call("close_connection",
        { hub = self.name, connection = connection_id, reason = reason },
        "close_connection", names_of(opts.endpoints, "close_connection"))
end

local CLOSE_OPTS = { exclude = true, reason = true, endpoints = true }

local function close_many(self, method, params, opts)
    opts = opt_table(opts, "opts", method, CLOSE_OPTS)
    if opts.reason ~= nil then need_string(opts.reason, "opts.reason", method) end
    params.hub = self.name
    params.reason = opts.reason
    params.excluded = check_exclude(opts.exclude, method)
    return self._t:call(method, params, method, names_of(opts.endpoints, method))
end

--- Close every connection of the hub (api 2022-06-01+).
-- @tparam[opt] table opts `exclude` (connection ids), `reason`, `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
function Hub:close_all_connections(opts)
    check_self(self, "close_all_connections")
    return close_many(self, "close_all_connections", {}, opts)
end

--- Close every connection in a group (api 2022-06-01+).
-- @tparam string group
-- @tparam[opt] table opts `exclude` (connection ids), `reason`, `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
function Hub:close_group_connections(group, opts)
    check_self(self, "close_group_connections")
    need_string(group, "group", "close_group_connections")
    return close_many(self, "close_group_connections", { group = group }, opts)
end

--- Close every connection of a user (api 2022-06-01+).
-- @tparam string user_id
-- @tparam[opt] table opts `exclude` (connection ids), `reason`, `endpoints`
-- @treturn[1] true
-- @treturn[2] nil, message, details
function Hub:close_user_connections(user_id, opts)
    check_self(self, "close_user_connections")
    need_string(user_id, "user_id", "close_user_connections")
    return close_many(self, "close_user_connections", { user = user_id }, opts)
end

-- The option types negotiate and generate_client_token share; raises at
-- the caller of the hub method (level 3 from here).
local function check_token_opts(opts, method)
    if opts.user_id ~= nil and type(opts.user_id) ~= "string" then
        error("signalr." .. method .. ": opts.user_id must be a string, got "
            .. type(opts.user_id), 3)
    end
    if opts.lifetime ~= nil and type(opts.lifetime) ~= "number" then
        error("signalr." .. method .. ": opts.lifetime must be a number", 3)
    end
end

local NEGOTIATE = { user_id = true, claims = true, lifetime = true, endpoints = true,
                    context = true, diagnostic = true, detailed_errors = true }

--- What a client's negotiate endpoint returns.  With an AccessKey there
-- is no I/O.  Under Microsoft Entra ID (no AccessKey) the client token is
-- signed with a temporary key the service issues (`GET
-- /api/v1/auth/accessKey`, role 'SignalR App Server'), fetched once and
-- refreshed hourly: the first call, and one an hour, performs I/O; in
-- async mode the call returns a request object whose `result` is the table.
-- @tparam[opt] table opts `user_id`, `claims` (table of extra JWT claims),
--   `lifetime` (seconds, default 3600), `diagnostic` (true: the service
--   treats the client as a diagnostic client, the SDK's
--   IsDiagnosticClient: claim `asrs.s.dc`), `detailed_errors` (true: the
--   reason a connection is closed with reaches the client, the SDK's
--   EnableDetailedErrors: claim `asrs.s.derror`); with several endpoints,
--   `endpoints` (choose among these) and `context` (handed to the
--   client's `router` as `ctx.context`, e.g. the caller's region)
-- @treturn[1] table `{ url = ..., accessToken = ... }`
-- @treturn[2] nil, message, details
function Hub:negotiate(opts)
    check_self(self, "negotiate")
    opts = opt_table(opts, "opts", "negotiate", NEGOTIATE)
    check_token_opts(opts, "negotiate")
    for _, k in ipairs { "diagnostic", "detailed_errors" } do
        if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
            error("signalr.negotiate: opts." .. k .. " must be a boolean, got " .. type(opts[k]), 2)
        end
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
    return self._t:call("negotiate", { hub = self.name, user = opts.user_id, claims = claims,
        lifetime = opts.lifetime, context = opts.context, diagnostic = opts.diagnostic,
        detailed_errors = opts.detailed_errors }, "negotiate",
        names_of(opts.endpoints, "negotiate"))
end

-- ===== newer routes (rest-2024.md) =====

local function reply_error(method, what, details)
    return nil, "signalr." .. method .. ": " .. what, details or { code = "EREPLY" }
end

local function whole(v, lo, hi)
    return type(v) == "number" and v >= lo and v <= hi and v % 1 == 0
end

-- The continuationToken of a nextLink (an absolute URL the service gives).
local function continuation(link)
    local q = link:match("%?(.*)$")
    if not q then return nil end
    for k, v in q:gmatch("([^&=]+)=([^&]*)") do
        if core.url_decode(k) == "continuationToken" then
            return core.url_decode(v)
        end
    end
end

local GROUP_CONNECTIONS = { top = true, max_page_size = true, endpoints = true }

-- Every page of one endpoint's list (names: that endpoint, or nil): the
-- list, a request object (async mode) whose result is the list, or nil,
-- message, details.
local function list_pages(self, group, opts, names, list)
    local seen = {}
    local function fetched(msg, details)
        if details then details.fetched = #list end
        return msg, details
    end
    local function page(token)
        local r, msg, details = self._t:call("group_connections", {
            hub = self.name, group = group, top = opts.top,
            max_page_size = opts.max_page_size, continuation_token = token,
        }, "group_connections", names)
        return after(r, msg, details, function(body)
            local ok, pg = pcall(json.decode, body)
            if not ok or type(pg) ~= "table" or type(pg.value) ~= "table" then
                return reply_error("group_connections",
                    "the service's page is not {\"value\":[...]}", { code = "EREPLY", fetched = #list })
            end
            for _, m in ipairs(pg.value) do
                if type(m) ~= "table" or type(m.connectionId) ~= "string" then
                    return reply_error("group_connections", "a member has no connectionId",
                        { code = "EREPLY", fetched = #list })
                end
                list[#list + 1] = { connection_id = m.connectionId,
                                    user_id = type(m.userId) == "string" and m.userId or nil }
                if opts.top and #list >= opts.top then return list end
            end
            local link = pg.nextLink
            if link == nil or link == json.null then return list end
            local next_token = type(link) == "string" and continuation(link)
            if not next_token then
                return reply_error("group_connections",
                    "nextLink carries no continuationToken", { code = "EREPLY", fetched = #list })
            end
            if seen[next_token] then
                return reply_error("group_connections",
                    "the service repeated a continuationToken", { code = "EREPLY", fetched = #list })
            end
            seen[next_token] = true
            return page(next_token)
        end, fetched)
    end
    return page(nil)
end

--- List the connections in a group (api 2024-12-01+): every page, each a
-- request of its own, following the service's `nextLink`.  Returns a list;
-- an error on any page returns `nil, message, details` (never a truncated
-- list), with `details.fetched` = the members read before it.
-- @tparam string group
-- @tparam[opt] table opts `top` (most members to return, 1..2^31-1),
--   `max_page_size` (members per request, 1..200; the service's default is 200)
-- @treturn[1] table `{ { connection_id = ..., user_id = ... or nil }, ... }`
-- @treturn[2] nil, message, details
function Hub:group_connections(group, opts)
    check_self(self, "group_connections")
    need_string(group, "group", "group_connections")
    opts = opt_table(opts, "opts", "group_connections", GROUP_CONNECTIONS)
    for k in pairs(GROUP_CONNECTIONS) do
        if k ~= "endpoints" and opts[k] ~= nil and type(opts[k]) ~= "number" then
            error("signalr.group_connections: opts." .. k .. " must be a number", 2)
        end
    end
    if opts.top ~= nil and not whole(opts.top, 1, 2147483647) then
        return nil, "signalr.group_connections: top must be a whole number"
            .. " from 1 to 2147483647", { code = "EINVAL" }
    end
    if opts.max_page_size ~= nil and not whole(opts.max_page_size, 1, 200) then
        return nil, "signalr.group_connections: max_page_size must be a whole"
            .. " number from 1 to 200", { code = "EINVAL" }
    end
    -- several endpoints: each one's members (a connection lives on one),
    -- every page of each; a failure anywhere fails the whole list
    return self._t:list(names_of(opts.endpoints, "group_connections"), "group_connections",
        function(names, list) return list_pages(self, group, opts, names, list) end, opts.top)
end

local GENERATE = { user_id = true, lifetime = true, groups = true, endpoints = true }

--- Have the service issue a client access token (`POST :generateToken`,
-- api 2022-11-01+): what negotiate hands a client when the app has no
-- AccessKey.  Performs I/O.
-- @tparam[opt] table opts `user_id`, `lifetime` (seconds, sent as whole
--   minutes rounded up; the service's default is 60 minutes)
-- @treturn[1] string the token
-- @treturn[2] nil, message, details
function Hub:generate_client_token(opts)
    check_self(self, "generate_client_token")
    opts = opt_table(opts, "opts", "generate_client_token", GENERATE)
    check_token_opts(opts, "generate_client_token")
    if opts.groups ~= nil then
        return nil, "signalr.generate_client_token: the SignalR service's :generateToken"
            .. " takes no groups (that is Azure Web PubSub's); add the user with"
            .. " add_user_to_group instead", { code = "EUNSUPPORTED" }
    end
    local minutes
    if opts.lifetime ~= nil then
        if not (opts.lifetime > 0 and opts.lifetime <= 2147483647 * 60) then
            return nil, "signalr.generate_client_token: lifetime must be more than"
                .. " 0 seconds", { code = "EINVAL" }
        end
        minutes = math.ceil(opts.lifetime / 60)
    end
    local r, msg, details = self._t:call("generate_client_token", {
        hub = self.name, user = opts.user_id, minutes_to_expire = minutes,
    }, "generate_client_token", names_of(opts.endpoints, "generate_client_token"))
    return after(r, msg, details, function(body)
        local ok, reply = pcall(json.decode, body)
        if not ok or type(reply) ~= "table" or type(reply.token) ~= "string"
                or reply.token == "" then
            return reply_error("generate_client_token", "the reply is not {\"token\":\"...\"}")
        end
        return reply.token
    end)
end

--- Invoke a method on one client and wait for its result (`POST
-- connections/{id}/:invoke`, api 2024-12-01; the client registers a
-- handler that returns a value).  Performs I/O and waits at most the
-- client's `timeout`.
-- @tparam string connection_id
-- @tparam string target the client method name
-- @tparam[opt] table args the invocation's arguments (a sequence)
-- @tparam[opt] table opts `endpoints`
-- @treturn[1] table `{ result = <the client's value> }` (a JSON null is `signalr.null`)
-- @treturn[2] nil, message, details (the client's error, a connection that
--   is gone, no handler: `ESTATUS` with the service's code)
function Hub:invoke(connection_id, target, args, opts)
    check_self(self, "invoke")
    need_string(connection_id, "connection_id", "invoke")
    need_string(target, "target", "invoke")
    opts = opt_table(opts, "opts", "invoke", ONLY_ENDPOINTS)
    local r, msg, details = send(self, "invoke", "invoke",
        { connection = connection_id, target = target }, args, names_of(opts.endpoints, "invoke"))
    return after(r, msg, details, function(body)
        local ok, reply = pcall(json.decode, body)
        if not ok or type(reply) ~= "table" then
            return reply_error("invoke", "the reply is not {\"result\":...}")
        end
        local out = { result = reply.result, protocol = reply.protocol }
        if out.result == nil then out.result = json.null end
        return out
    end)
end

local EXECUTE = { filter = true, endpoints = true }
local COMMAND = {
    SendMessage = { type = true, target = true, arguments = true },
    JoinGroup = { type = true, group = true },
    LeaveGroup = { type = true, group = true },
    CloseConnection = { type = true, reason = true },
}

--- Run commands on the connections a filter selects, in one request
-- (`POST :execute`, api 2023-07-01+): the service applies them, in order,
-- to every connection of the hub that matches.
-- @tparam table commands a list of `{ type = "SendMessage", target = ..., arguments = {...} }`,
--   `{ type = "JoinGroup", group = ... }`, `{ type = "LeaveGroup", group = ... }`,
--   `{ type = "CloseConnection", reason = ... }`
-- @tparam[opt] table opts `filter`: an OData filter over `userId`,
--   `connectionId` and `groups`, e.g. `"startswith(userId, 'player-')"` or
--   `"'red' in groups"` (without one: every connection of the hub)
-- @treturn[1] true
-- @treturn[2] nil, message, details
-- @raise on a command that is not a table, or an unknown key
function Hub:execute(commands, opts)
    check_self(self, "execute")
    if type(commands) ~= "table" then
        error("signalr.execute: commands must be a list of command tables, got " .. type(commands), 2)
    end
    opts = opt_table(opts, "opts", "execute", EXECUTE)
    if opts.filter ~= nil then need_string(opts.filter, "opts.filter", "execute") end
    if #commands == 0 then
        return nil, "signalr.execute: no commands", { code = "EINVAL" }
    end
    local parts = {}
    for i, c in ipairs(commands) do
        if type(c) ~= "table" then
            error("signalr.execute: commands[" .. i .. "] must be a table", 2)
        end
        local known = COMMAND[c.type]
        if not known then
            return nil, "signalr.execute: commands[" .. i .. "]: unknown type '" .. tostring(c.type)
                .. "' (SendMessage, JoinGroup, LeaveGroup or CloseConnection)", { code = "EINVAL" }
        end
        for k in pairs(c) do
            if not known[k] then
                error("signalr.execute: commands[" .. i .. "]: unknown key '" .. tostring(k)
                    .. "' for " .. c.type, 2)
            end
        end
        local function bad(what)
            return nil, "signalr.execute: commands[" .. i .. "]: " .. what, { code = "EINVAL" }
        end
        if c.type == "SendMessage" then
            if type(c.target) ~= "string" then return bad("target must be a string") end
            local ok, why = core.validate("target", c.target)
            if not ok then return bad(why) end
            local args, msg = json.encode_args(c.arguments)
            if args == false then error("signalr.execute: commands[" .. i .. "]: " .. msg, 2) end
            if not args then return bad(msg) end
            parts[i] = '{"type":"SendMessage","message":{"target":' .. json.encode_value(c.target)
                .. ',"arguments":' .. args .. '}}'
        elseif c.type == "JoinGroup" or c.type == "LeaveGroup" then
            if type(c.group) ~= "string" then return bad("group must be a string") end
            local ok, why = core.validate("group", c.group)
            if not ok then return bad(why) end
            parts[i] = '{"type":"' .. c.type .. '","group":' .. json.encode_value(c.group) .. '}'
        else
            if c.reason ~= nil and type(c.reason) ~= "string" then return bad("reason must be a string") end
            if c.reason and c.reason ~= "" then
                local ok, why = core.validate("reason", c.reason)
                if not ok then return bad(why) end
            end
            parts[i] = c.reason and ('{"type":"CloseConnection","reason":' .. json.encode_value(c.reason) .. '}')
                or '{"type":"CloseConnection"}'
        end
    end
    return self._t:call("execute", { hub = self.name, commands = "[" .. table.concat(parts, ",") .. "]",
        filter = opts.filter }, "execute", names_of(opts.endpoints, "execute"))
end

--- Run an Azure Functions output-binding action (message or group action).
-- @tparam table action `{ target, arguments, userId | groupName | connectionId }`
--   or `{ action = "add" | "remove" | "removeAll", userId | connectionId, groupName }`
-- @treturn[1] true
-- @treturn[2] nil, message, details
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
