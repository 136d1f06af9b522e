--- Persistent mode (`mode = "persistent"`): hub methods go over "server
-- connections", WebSockets to the service that speak its service
-- protocol (MessagePack frames), instead of one HTTP request each.  This
-- transport turns each call into its frame (a data message, or a
-- `...WithAck` message whose answer it waits for) and hands it to a pool
-- of connections (signalr.transport.persistent.pool); the operations the
-- protocol has no message for stay REST, on the blocking or nginx
-- transport it is made with.
--
-- Outside nginx the sockets are libcurl's (connect-only), driven from
-- `client:poll()`; inside nginx signalr.transport.persistent.ngx drives
-- the same connections over cosockets from a background timer.
-- @module signalr.transport.persistent
local core = require "signalr.core"
local request = require "signalr.request"
local util = require "signalr.util"
local base = require "signalr.transport.base"
local pool_mod = require "signalr.transport.persistent.pool"

local type, ipairs, pairs, pcall, error, setmetatable =
    type, ipairs, pairs, pcall, error, setmetatable
local SP = core.sp
local validate, sp_data = core.validate, core.sp_data

local _M = {}

local Persistent = { loop = true }
_M.Persistent = Persistent

-- Sends: the message type, the id parameter, the list parameter.
local DATA = {
    broadcast = { SP.BROADCAST, nil, "excluded" },
    to_user = { SP.USER_DATA, "user" },
    to_group = { SP.GROUP_BROADCAST, "group", "excluded" },
    to_connection = { SP.MULTI_CONNECTION_DATA, nil, "connection" },
    to_users = { SP.MULTI_USER_DATA, nil, "users" },
    to_groups = { SP.MULTI_GROUP_BROADCAST, nil, "groups" },
    to_connections = { SP.MULTI_CONNECTION_DATA, nil, "connections" },
}
-- Acknowledged operations: type, id parameter, group (true: required,
-- "all": absent means every group), a check (answers a boolean).
local ACKED = {
    add_connection_to_group = { SP.JOIN_GROUP_WITH_ACK, "connection", true },
    remove_connection_from_group = { SP.LEAVE_GROUP_WITH_ACK, "connection", true },
    remove_connection_from_all_groups = { SP.LEAVE_GROUP_WITH_ACK, "connection", "all" },
    add_user_to_group = { SP.USER_JOIN_GROUP_WITH_ACK, "user", true },
    remove_user_from_group = { SP.USER_LEAVE_GROUP_WITH_ACK, "user", true },
    remove_user_from_all_groups = { SP.USER_LEAVE_GROUP_WITH_ACK, "user", "all" },
    user_in_group = { SP.CHECK_USER_IN_GROUP, "user", true, true },
    group_exists = { SP.CHECK_GROUP_EXISTENCE, "group", false, true },
    connection_exists = { SP.CHECK_CONNECTION_EXISTENCE, "connection", false, true },
    user_exists = { SP.CHECK_USER_EXISTENCE, "user", false, true },
}
_M.DATA, _M.ACKED = DATA, ACKED
-- The sends with a sender (`Persistent:sender`): one id or none, no list.
local SENDERS = { broadcast = true, to_user = true, to_group = true }
local WEAK = { __mode = "v" }
-- What the name checks call each parameter.
local WHAT = { user = "user id", connection = "connection id", group = "group",
               users = "user id", connections = "connection id", groups = "group",
               excluded = "connection id" }

--- A persistent transport.
-- @tparam table rest the blocking or nginx transport (the REST calls,
--   negotiate, and the Entra ID token: `rest:token()`)
-- @tparam userdata handle the core's client
-- @tparam table o the client's options, defaults filled in
-- @tparam[opt] table io the connections' driver (nil: libcurl sockets)
-- @tparam[opt] table seam a hub server's: the connections' `type`,
--   `on_message(conn, msg)`, `on_lost(conn, msg, details)`
function _M.new(rest, handle, o, io, seam)
    local json, mp = 0, 0
    for _, p in ipairs(o.protocols or { "json", "messagepack" }) do
        if p == "json" then json = SP.JSON else mp = SP.MESSAGEPACK end
    end
    local protocols = json + mp
    local self = setmetatable({ rest = rest, handle = handle, info = rest.info, o = o,
        in_nginx = rest.in_nginx, protocols = protocols, senders = {},
        queue = request.queue(o.on_done) }, Persistent)
    seam = seam or {}
    self.pool = pool_mod.new(o, { handle = handle, requests = self.queue, io = io,
        token = rest.auth and function() return rest:token() end,
        type = seam.type, on_message = seam.on_message, on_lost = seam.on_lost })
    if not io then
        -- frames still waiting for their batch go out when the client is
        -- collected (also at a normal exit) if close was not called; not
        -- inside nginx, where the worker's exit ends the timers instead
        self.guard = util.on_collect(function()
            if not self.closed then
                -- a short grace: this runs inside the garbage collector
                pcall(self.pool.close, self.pool, 0.2)
                pcall(self.close, self)
            end
        end)
    end
    return self
end

-- The ids under `key` (a string, or a list of strings): true | nil,
-- msg, details.
local function check_value(v, key, what)
    if type(v) == "table" then
        for i = 1, #v do
            local ok, msg, d = validate(WHAT[key], v[i])
            if not ok then return nil, "signalr." .. what .. ": " .. key .. "[" .. i .. "]: " .. msg, d end
        end
        return true
    end
    local ok, msg, d = validate(WHAT[key], v)
    if not ok then return nil, "signalr." .. what .. ": " .. msg, d end
    return true
end

local function check_names(params, key, what)
    local v = params[key]
    if v == nil then return true end
    return check_value(v, key, what)
end

-- A data message's frame | nil, msg, details (spec: DATA's entry; id:
-- the value of its id parameter, list: of its list parameter).  The
-- binding checks the names as it builds the frame (one call).
local function frame_of(self, spec, what, target, text, id, list)
    local one = type(list) == "string"
    if one then list = { list } end
    local frame, msg, d, at = sp_data(spec[1], id, list, target, text, self.protocols,
        self.o.max_message_size, true)
    if not frame then
        if at then
            if at > 0 and not one then msg = spec[3] .. "[" .. at .. "]: " .. msg end
        elseif d and d.code == "ETOOBIG" then
            msg = msg .. " (option max_message_size)"
        end
        return nil, "signalr." .. what .. ": " .. msg, d
    end
    return frame
end

-- A data message's frame from a call's parameters.
local function data_frame(self, spec, params, what)
    -- a data operation's parameters name ids only under its own two keys
    local idk, listk = spec[2], spec[3]
    return frame_of(self, spec, what, params.target, params.arguments,
        idk and params[idk] or nil, listk and params[listk] or nil)
end

-- Acknowledged operations wait for the service's answer.
local function acked(self, op, params, what)
    local spec = ACKED[op]
    for _, k in ipairs { spec[2], "group" } do
        local ok, msg, d = check_names(params, k, what)
        if not ok then return nil, msg, d end
    end
    local group = params.group
    if spec[3] == true and group == nil then
        return nil, "signalr." .. what .. ": the group is missing", { code = "EINVAL" }
    end
    if spec[3] ~= true and spec[3] ~= "all" then group = nil end
    local ttl = op == "add_user_to_group" and params.ttl or nil
    return self.pool:acked(params.hub, function(id)
        return core.sp_op(spec[1], params[spec[2]] or params.group, group, nil, nil, id, ttl)
    end, what, spec[4])
end

--- One hub operation (after signalr.transport.base's checks): sends are
-- frames on a connection (`true`, or a request object while none is up),
-- acknowledged operations wait for the answer, the rest goes REST.
function Persistent:run(op, params, what)
    local spec = DATA[op]
    if spec then
        local frame, msg, d = data_frame(self, spec, params, what)
        if not frame then return nil, msg, d end
        return self.pool:deliver(params.hub, frame, what)
    end
    if op == "close_connection" then
        local ok, msg, d = check_names(params, "connection", what)
        if not ok then return nil, msg, d end
        local frame
        frame, msg, d = core.sp_op(SP.CLOSE_CONNECTION, params.connection, nil, params.reason)
        if not frame then return nil, "signalr." .. what .. ": " .. msg, d end
        return self.pool:deliver(params.hub, frame, what)
    end
    if ACKED[op] then return acked(self, op, params, what) end
    return self.rest:call(op, params, what)
end

local single_call = base.Single.call

--- A send as signalr.hub makes it, without a parameter table (the hub
-- calls it instead of `call` when the call names no endpoints): the same
-- checks, frame and outcome as `call(op, params, op)`.
-- @tparam string op broadcast, to_user, to_group or to_connection
-- @tparam string hub the hub's name
-- @tparam string target the client method
-- @tparam string text the arguments as JSON
-- @tparam[opt] string id the user, group or connection id
-- @tparam[opt] {string,...} excluded connection ids not to send to
-- @return true, a request object (no connection up yet), or nil, message, details
function Persistent:send_data(op, hub, target, text, id, excluded)
    if self.closing then return request.closed(op) end
    local spec = DATA[op]
    local list = excluded
    if not spec[2] then id, list = nil, id or excluded end -- to_connection: a list of one
    if list == nil then
        -- the common case in one call; a failure is explained below
        local frame = sp_data(spec[1], id, nil, target, text, self.protocols,
            self.o.max_message_size, true)
        if frame then return self.pool:deliver(hub, frame, op) end
    end
    local frame, msg, d = frame_of(self, spec, op, target, text, id, list)
    if not frame then return nil, msg, d end
    return self.pool:deliver(hub, frame, op)
end

local sp_send = core.sp_send

--- A send's common case in one call: the frame straight from the
-- argument list (`core.sp_send`), for `broadcast`, `to_user` and
-- `to_group` without exclusions.  `false` for anything else, a failure
-- included: the hub then takes the general path (`send_data`), which
-- does it or explains it.
-- @return true, a request object (no connection up yet), nil, message,
--   details (from the pool), or false
function Persistent:send_args(op, hub, target, args, id)
    if self.closing then return false end
    local spec = DATA[op]
    if id ~= nil and not spec[2] then return false end -- to_connection: a list
    local frame = sp_send(spec[1], id, target, args, self.protocols, self.o.max_message_size)
    if not frame then return false end
    return self.pool:deliver(hub, frame, op)
end

--- A hub's sender of `broadcast`, `to_user` or `to_group`, for the hub's
-- common case (no options): `send(target, args[, id])`, the pool's
-- (`Pool:sender`), made once per hub name and method (and kept while a
-- hub object of the name is).  It answers false
-- for anything else, a failure included, and once the client closes: the
-- hub then takes its general path (`send_args`, `send_data`).
-- @tparam string hub the hub's name
-- @tparam string op the hub method
-- @treturn[1] function send
-- @treturn[2] nil (no sender for this method)
function Persistent:sender(hub, op)
    if not SENDERS[op] then return nil end
    local made = self.senders[op]
    if not made then
        made = setmetatable({}, WEAK) -- no hub of the name left: gone
        self.senders[op] = made
    end
    local send = made[hub]
    if not send then
        send = self.pool:sender(hub, DATA[op][1], op, self.protocols, self.o.max_message_size)
        made[hub] = send
    end
    return send
end

--- One hub operation: a send without `opts.endpoints` on an open client
-- goes straight to its frame (what signalr.transport.base's `call` would
-- check first does not apply to it); the rest as base's `call`.
-- @tparam string op the operation
-- @tparam table params its parameters
-- @tparam string what the hub method, for messages
-- @tparam[opt] table names the call's `opts.endpoints`
function Persistent:call(op, params, what, names)
    local spec = DATA[op]
    if not spec or names or self.closing then return single_call(self, op, params, what, names) end
    local frame, msg, d = data_frame(self, spec, params, what)
    if not frame then return nil, msg, d end
    return self.pool:deliver(params.hub, frame, what)
end

--- One pass over the connections, then a wait of at most `timeout`
-- seconds; then `on_done` for what finished.
function Persistent:poll(timeout)
    self.pool:poll(self.queue:waiting() and 0 or timeout or 0)
    return self.queue:report()
end

--- Requests not reported yet, bytes not yet written, acks awaited.
function Persistent:pending()
    local _, bytes, acks = self.pool:pending()
    return self.queue.open, bytes, acks
end

--- negotiate: the REST transport's (no I/O with an AccessKey).
function Persistent:negotiate(p)
    return self.rest:call("negotiate", p, "negotiate")
end

--- Until everything queued is written (at most `timeout` s).
function Persistent:flush(timeout)
    local ok, msg, d = self.pool:flush(timeout)
    self.queue:report()
    return ok, msg, d
end

--- Until every message sent so far reached the service (signalr.transport.persistent.pool).
function Persistent:confirm(timeout)
    local ok, msg, d = self.pool:confirm(timeout)
    self.queue:report()
    return ok, msg, d
end

function Persistent:fds() return self.pool:fds() end

function Persistent:timeout()
    if self.queue:waiting() then return 0 end
    return self.pool:timeout()
end

function Persistent:pollfd() return self.pool:pollfd() end

--- The connections of each hub, and the counters: `{ hubs = { [hub] =
-- { connections = { { state, attempt, last_error }, ... }, queued } },
-- stats = { sent, queued, requeued, expired } }`.
function Persistent:status()
    local stats = {}
    for k, v in pairs(self.pool.stats) do stats[k] = v end
    return { hubs = self.pool:status(), stats = stats }
end

--- Write what is queued (for at most a second), close the connections,
-- fail what could not go with ECANCELED; then the REST transport.
function Persistent:close()
    if self.closed then return end
    self.closing = true
    local first_err
    local ok, err = pcall(self.pool.close, self.pool, 1)
    if not ok then first_err = err end
    ok, err = pcall(self.queue.report, self.queue)
    if not ok and first_err == nil then first_err = err end
    self.closed = true
    self.rest:close()
    if first_err ~= nil then error(first_err, 0) end
end

base.extend(Persistent)
return _M
