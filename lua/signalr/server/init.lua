--- Hub servers behind Azure SignalR Service (its "Default" mode): the
-- program opens *server connections* to the service (type 0, Default),
-- the service routes every client of the hub to one of them, and the
-- program runs the hub: clients' invocations reach Lua handlers, their
-- results and errors go back as ASP.NET Core would send them, and the
-- hub pushes to clients.  No inbound port: the connections go out.
--
--     local server = assert(signalr.server { connection_string = cs, hub = "game" })
--     server:on("Move", function(ctx, dx, dy) return { x = dx, y = dy } end)
--     server:run()
--
-- The connections are persistent mode's pool (signalr.transport.
-- persistent.pool) opened as Default connections; each client is a
-- session (signalr.server.session) bound to the connection that carries
-- it; handlers run as coroutines (signalr.server.sched).
-- @module signalr.server
local core = require "signalr.core"
local options = require "signalr.options"
local transport = require "signalr.transport"
local client_mod = require "signalr.client"
local loop = require "signalr.loop"
local dispatch = require "signalr.server.dispatch"
local session = require "signalr.server.session"
local sched_mod = require "signalr.server.sched"

local type, error, pairs, ipairs, tostring, setmetatable, pcall, next =
    type, error, pairs, ipairs, tostring, setmetatable, pcall, next
local now = core.monotonic
local SP, HUB = core.sp, core.hub

local _M = {}

local Server = { loop = true }
Server.__index = Server
_M.Server = Server

-- ===== the wire, in one place (the binding's codecs) =====

local json_encode, json_decode, json_null = core.json_encode, core.json_decode, core.json_null
local EMPTY = core.json_empty_array

local codec = {
    PROTOCOLS = { json = HUB.JSON, messagepack = HUB.MESSAGEPACK },
    DATA_HANDSHAKE = SP.DATA_HANDSHAKE, DATA_INVOCATION = SP.DATA_INVOCATION,
    DATA_OTHER = SP.DATA_OTHER,
    reader = function(max) return core.hub_reader(0, max) end,
    handshake_response = core.hub_handshake_response,
    completion = core.hub_completion,
    invocation = core.hub_invocation,
    stream_item = core.hub_stream_item,
    ping = core.hub_ping,
    close = core.hub_close,
    connection_data = core.sp_connection_data,
    close_connection = function(id, reason)
        return core.sp_op(SP.CLOSE_CONNECTION, id, nil, reason)
    end,
    encode = json_encode,
    decode = json_decode,
}

--- An argument list ({ n = count, ... }, nils as JSON null) as JSON.
function codec.encode_args(args)
    local n = args.n or #args
    if n == 0 then return json_encode(EMPTY) end
    local list = {}
    for i = 1, n do
        local v = args[i]
        if v == nil then v = json_null end
        list[i] = v
    end
    return json_encode(list)
end

--- A client's argument array (JSON text) as { n = count, ... }, or nil.
function codec.decode_args(text)
    local ok, v = pcall(json_decode, text or "[]")
    if not ok or type(v) ~= "table" then return nil end
    v.n = #v
    return v
end
_M.codec = codec

-- ===== options =====

-- The server's own options; the rest are persistent mode's (passed on).
local OWN = {
    connection_string = "string", endpoints = "table", hub = "string", hubs = "table",
    detailed_errors = "boolean", on_log = "function",
    client_max_message_size = "number", client_result_timeout = "number",
    max_parallel_invocations = "number", client_max_queue_bytes = "number",
    client_max_queue_messages = "number",
}
-- persistent mode's options a server may set (signalr.options checks them)
local PASSED = {
    connection_count = true, handshake_timeout = true, keepalive_interval = true,
    server_timeout = true, ack_timeout = true, timeout = true, queue_size = true,
    protocols = true, verify_tls = true, ca_file = true, connect_timeout = true,
    api_version = true, user_agent = true, authority_host = true, token_lifetime = true,
    on_done = true, transport = true, proxy = true, retry_mode = true,
    managed_identity_client_id = true, managed_identity_object_id = true,
    managed_identity_resource_id = true, client_certificate_password = true,
}

-- with several endpoints (option `endpoints`): these go to signalr.endpoints
local MULTI = { endpoints = true, router = true, health_interval = true, health_timeout = true,
                health_retries = true, health_retry_delay = true }

local function check(opts, level)
    if type(opts) ~= "table" then
        error("signalr.server: expected an options table, got " .. type(opts), level)
    end
    for k, v in pairs(opts) do
        if OWN[k] then
            if type(v) ~= OWN[k] then
                error("signalr.server: option '" .. tostring(k) .. "' must be a " .. OWN[k]
                    .. ", got " .. type(v), level)
            end
        elseif not PASSED[k] and not MULTI[k] then
            error("signalr.server: unknown option '" .. tostring(k) .. "'", level)
        end
    end
    if opts.endpoints ~= nil then
        if opts.connection_string ~= nil then
            error("signalr.server: give either 'connection_string' or 'endpoints', not both", level)
        end
    elseif type(opts.connection_string) ~= "string" then
        error("signalr.server: option 'connection_string' (or 'endpoints') is required", level)
    end
    local hubs = opts.hubs or { opts.hub }
    if opts.hub and opts.hubs then
        error("signalr.server: give 'hub' or 'hubs', not both", level)
    end
    if #hubs == 0 then error("signalr.server: option 'hub' (or 'hubs') is required", level) end
    for _, k in ipairs { "max_parallel_invocations", "client_max_queue_bytes",
                         "client_max_queue_messages", "client_max_message_size" } do
        local v = opts[k]
        if v ~= nil and (v < 1 or v ~= math.floor(v) or v > 2^40) then
            error("signalr.server: option '" .. k .. "' must be a positive integer, got " .. tostring(v), level)
        end
    end
    local crt = opts.client_result_timeout
    if crt ~= nil and (crt <= 0 or crt ~= crt) then
        error("signalr.server: option 'client_result_timeout' must be a positive number of seconds", level)
    end
    for i, h in ipairs(hubs) do
        if type(h) ~= "string" then
            error("signalr.server: hubs[" .. i .. "] must be a string, got " .. type(h), level)
        end
    end
    return hubs
end

-- ===== making one =====

--- Make a hub server (no I/O yet: connections open on `run`, `poll` or
-- `start`).
-- @tparam table opts `connection_string`, `hub` or `hubs`,
--   `connection_count` (server connections per hub, 5 as the SDK's
--   default), `detailed_errors` (ASP.NET Core's EnableDetailedErrors:
--   a handler's error text reaches the client), `client_max_message_size`
--   (bytes a client's message may take, 32 KB as ASP.NET Core's),
--   `client_result_timeout` (seconds `ctx:invoke` waits, 100),
--   `max_parallel_invocations` (a client's invocations running at once,
--   1 as ASP.NET Core's MaximumParallelInvocationsPerClient; more wait in
--   order, and a client with over 1024 waiting is closed),
--   `client_max_queue_bytes` / `client_max_queue_messages` (what may wait
--   for one client while its server connection is backed up: 1 MiB and
--   4096 messages; past either the client is closed with the reason and
--   on_disconnected runs, so a client that cannot keep up never grows
--   the server's memory),
--   `on_log(level, message)` (default: errors and warnings to stderr), and
--   persistent mode's connection options
-- @treturn[1] server
-- @treturn[2] nil, message, details (a bad connection string)
-- @raise on a wrong type or an unknown option
function _M.new(opts)
    local hubs = check(opts, 3)
    local o = {}
    for k, v in pairs(opts) do if PASSED[k] or MULTI[k] then o[k] = v end end
    o.connection_string = opts.connection_string
    -- the server connections' own lines (lost, reconnecting, retries) go
    -- to the same hook
    o.on_log = opts.on_log
    o.mode = "persistent"
    o.connection_count = o.connection_count or 5
    options.check(o, 3)
    if not o.endpoints then
        options.check_single(o, 3)
        o = options.fill(o)
    end
    local self = setmetatable({
        o = { detailed_errors = opts.detailed_errors == true,
              max_message_size = opts.client_max_message_size or HUB.DEFAULT_MAX,
              -- ASP.NET Core's ClientTimeoutInterval for client results
              client_result_timeout = opts.client_result_timeout or 100,
              max_parallel = opts.max_parallel_invocations or 1,
              max_queue_bytes = opts.client_max_queue_bytes or 1024 * 1024,
              max_queue_messages = opts.client_max_queue_messages or 4096 },
        codec = codec, now = now,
        hub_names = {}, registry = dispatch.registry(), sessions = {}, on_log = opts.on_log,
        -- sessions whose frames wait for room on their connection
        queued = {},
        sched = sched_mod.new(now), started = false, closed = false,
    }, Server)
    for _, h in ipairs(hubs) do
        local ok, msg, d = core.validate("hub", h)
        if not ok then return nil, "signalr.server: " .. msg, d end
        self.hub_names[#self.hub_names + 1] = h
    end
    self.ack_timeout = o.ack_timeout or options.DEFAULTS.ack_timeout
    local wake = function() self:_wake() end
    -- the seam of a pool: Default connections, whose messages come here
    local function seam(i)
        return {
            type = SP.DEFAULT_CONNECTION,
            on_message = function(c, m)
                if not c.srv_pool then c.srv_pool = self.pools[i] end
                return self:_message(c, m)
            end,
            on_lost = function(c, why) return self:_lost(c, why) end,
        }
    end
    local t, msg, details
    if o.endpoints then
        -- several endpoints: connections to every one (as the SDK), hub
        -- sends to all of them
        local ok, r1, r2, r3 = pcall(require("signalr.endpoints").new, o, wake, 1, seam)
        if not ok then error((tostring(r1):gsub("^signalr%.new", "signalr.server")), 3) end
        t, msg, details = r1, r2, r3
    else
        t, msg, details = transport.new(o, wake, 2, seam(1))
    end
    if not t then return nil, (msg:gsub("^signalr%.new", "signalr.server")), details end
    self.t = t
    self.pools = {}
    if o.endpoints then
        for i, m in ipairs(t.members) do self.pools[i] = m.t.pool end
    else
        self.pools[1] = t.pool
    end
    self.pool = self.pools[1]
    self.client = client_mod.wrap(t)
    if self.pool.io then
        -- inside nginx: the driver moves the bytes, handlers run in light
        -- threads (signalr.server.sched_ngx), a timer keeps the rest
        self.ngx = true
        self.sched = require("signalr.server.sched_ngx").new(now, function(level, text)
            self:log(level, text)
        end)
    end
    return self
end

-- ===== handlers =====

--- Handle the hub method `name` (case-insensitive): `fn(ctx, ...)` gets
-- the client's arguments; what it returns is the invocation's result;
-- `error(signalr.hub_error(msg))` sends msg to the client, any other
-- error the generic text (and is logged).  Works after `run` too.
-- @raise when fn is not a function or the name is taken
function Server:on(name, fn)
    self.registry:add(name, fn, "signalr.server:on")
    return self
end

local function set_hook(self, key, fn, what)
    if type(fn) ~= "function" then
        error("signalr.server:" .. what .. ": expected a function, got " .. type(fn), 3)
    end
    self[key] = fn
    return self
end

--- `fn(ctx)` runs once per client, before any of its invocations.  An
-- error there closes the client.
function Server:on_connected(fn) return set_hook(self, "connected_fn", fn, "on_connected") end

--- `fn(ctx, err)` runs exactly once per client when it is gone (err:
-- why, nil for a clean close).
function Server:on_disconnected(fn) return set_hook(self, "disconnected_fn", fn, "on_disconnected") end

--- A hub object sending over the server's own connections (broadcast,
-- to_user, to_group, group management...: persistent mode's hub).
function Server:hub(name)
    return self.client:hub(name)
end

function Server:log(level, msg)
    if self.on_log then
        local ok = pcall(self.on_log, level, msg)
        if ok then return end
    end
    if level == "error" or level == "warn" then
        io.stderr:write("signalr.server [", level, "] ", msg, "\n")
    end
end

-- ===== what the service says =====

function Server:_message(c, m)
    local ty = m.type
    if ty == SP.OPEN_CONNECTION then
        local hub = c.hub_name or self.hub_names[1]
        local s, why = session.new(self, hub, c, m)
        if not s then
            self:log("error", "cannot serve client " .. tostring(m.connection_id) .. ": " .. tostring(why))
            local frame = codec.close_connection(m.connection_id, "server error")
            if frame then (c.srv_pool or self.pool):write(c, frame) end
            return
        end
        local old = self.sessions[s.id]
        if old then old:finish("the service opened the connection again", false) end
        self.sessions[s.id] = s
    elseif ty == SP.CONNECTION_DATA then
        local s = self.sessions[m.connection_id]
        if s then s:data(m.payload, m.partial) end
    elseif ty == SP.CLOSE_CONNECTION then
        local s = m.connection_id and self.sessions[m.connection_id]
        if s then s:finish(m.error ~= "" and m.error or nil, false) end
    elseif ty == SP.CONNECTION_RECONNECT then
        local s = self.sessions[m.connection_id]
        if s then s.parts = nil end
    end
    -- other types (service events, flow control) need nothing from a hub
end

-- A server connection was lost: the service closes its clients, so each
-- ends here (on_disconnected once each), nothing is sent for them.
function Server:_lost(c, why)
    for _, s in pairs(self.sessions) do
        if s.conn == c then s:finish("the server connection was lost: " .. tostring(why), false) end
    end
end

-- ===== sessions' lifecycle =====

--- A session has frames waiting for room on its connection.
function Server:backlogged(s) self.queued[s] = true end

-- What waits in the clients' own queues, as their connections take it.
function Server:_drain()
    for s in pairs(self.queued) do
        if s.state == "closed" or s:drain() then self.queued[s] = nil end
    end
end

-- A client's frame, on the connection that carries the client: never
-- sent again on another connection (the client is gone with this one).
function Server:write(c, frame)
    return (c.srv_pool or self.pool):write(c, frame, "server", true)
end

--- A session finished its handshake: its connected handler, then its
-- invocations.
function Server:connected(s)
    local fn = self.connected_fn
    if not fn then return s:opened() end
    self.sched:spawn(function(ok, err)
        if not ok then
            self:log("error", "on_connected failed for " .. tostring(s.id) .. ": " .. tostring(err))
            return s:fail("on_connected raised")
        end
        s:opened()
    end, fn, s.ctx)
end

--- A session ended: forget it, then on_disconnected (once).
function Server:ended(s, err)
    if self.sessions[s.id] == s then self.sessions[s.id] = nil end
    local fn = self.disconnected_fn
    if fn then
        self.sched:spawn(function(ok, e)
            if not ok then
                self:log("error", "on_disconnected failed for " .. tostring(s.id) .. ": " .. tostring(e))
            end
        end, fn, s.ctx, err)
    end
end

--- ctx:join / ctx:leave: the acknowledged message on the client's own
-- connection; inside a handler it waits without holding other clients.
function Server:group(s, what, group)
    local ok, msg, d = core.validate("group", group)
    if not ok then return nil, "signalr.ctx:" .. what .. ": " .. msg, d end
    local ty = what == "join" and SP.JOIN_GROUP_WITH_ACK or SP.LEAVE_GROUP_WITH_ACK
    local sched = self.sched
    local inside = sched:inside()
    if self.ngx and not inside then
        return nil, "signalr.ctx:" .. what .. ": nginx cannot wait for the service's answer in this"
            .. " phase", { code = "EPHASE", sent = false }
    end
    local co = inside and coroutine.running()
    local a
    local pool = s.conn.srv_pool or self.pool
    a, msg, d = pool:ack_on(s.conn, s.hub_name, function(id)
        return core.sp_op(ty, s.id, group, nil, nil, id)
    end, "ctx:" .. what, false, inside and function() sched:wake(co) end or nil)
    if not a then return nil, msg, d end
    local timeout = self.ack_timeout
    if inside then
        sched:wait(nil, timeout)
    else
        -- outside a handler (a game loop): drive the connections until
        -- the answer, as a blocking call
        local deadline = now() + timeout
        while not a.done and now() < deadline do self:poll(0.02) end
    end
    if not a.done then
        pool:forget(s.hub_name, a)
        return nil, "signalr.ctx:" .. what .. ": the service did not acknowledge within " .. timeout
            .. " s", { code = "ETIMEDOUT", sent = true }
    end
    return a.result, a.msg, a.details
end

--- Wait inside a handler (ctx:await): for an async request object or a
-- condition function, at most timeout seconds.
function Server:await(what, timeout)
    if type(what) == "table" and what.done ~= nil then
        local ok, why = self.sched:wait(function() return what.done end, timeout)
        if not ok then return nil, "signalr.ctx:await: " .. tostring(why), { code = "ETIMEDOUT" } end
        if what.error then return nil, what.message or what.error, what.details end
        return what.result == nil and true or what.result
    end
    if type(what) ~= "function" then
        error("signalr.ctx:await: expected a request object or a function, got " .. type(what), 3)
    end
    return self.sched:wait(what, timeout)
end

-- ===== the event-loop contract =====

-- Timers of the sessions: pings after a quiet spell, once a second.
local function keepalive(self, t)
    if self.next_keepalive and t < self.next_keepalive then return end
    self.next_keepalive = t + 1
    for _, s in pairs(self.sessions) do s:keepalive(t) end
end

-- Inside nginx, ten times a second (an every-timer: nginx arms the next
-- run even when one cannot run for want of timers): the handlers'
-- dispatcher watched, the clients' own queues, pings; the worker's exit
-- closes the server.
local function ngx_tick(premature, self)
    if self.closed then return end
    if premature or ngx.worker.exiting() then return self:close() end
    local t = now()
    self.sched:watch(1)
    if next(self.queued) then self:_drain() end
    keepalive(self, t)
end

--- Open the server connections of every hub (poll and run do it too).
-- Inside nginx, call it from `init_worker_by_lua*`: each worker opens
-- its own connections (the service spreads clients over all of them),
-- handlers run in light threads, and a timer keeps the connections;
-- `nginx -s reload` closes the old workers' servers as they exit.
-- @treturn[1] true
-- @treturn[2] nil, message, details (inside nginx: a timer that would not start)
function Server:start()
    if self.started then return true end
    self.started = true
    for _, pool in ipairs(self.pools) do
        for _, h in ipairs(self.hub_names) do
            local hc = pool:open(h)
            for _, c in ipairs(hc.conns) do c.hub_name, c.srv_pool = h, pool end
        end
    end
    if self.ngx then
        local ok, err = self.sched:start()
        if ok then ok, err = ngx.timer.every(0.1, ngx_tick, self) end
        if not ok then
            self.started = false
            return nil, "signalr.server:start: cannot start a timer: " .. tostring(err), { code = "ECONNECT" }
        end
    end
    return true
end


--- One pass (connections, handlers that waited, pings), then a wait of
-- at most `timeout` seconds for socket activity or a timer, then another
-- pass.  Returns how many requests of the server's hub objects finished.
function Server:poll(timeout)
    if self.closed then return 0 end
    self:start()
    if self.ngx then return 0 end -- nginx's timers do it all
    local t = now()
    keepalive(self, t)
    local due = self.sched:step()
    local wait = timeout or 0
    if due and due < wait then wait = due end
    local n = self.t:poll(wait)
    if next(self.queued) then self:_drain() end
    self.sched:step()
    keepalive(self, now())
    return n
end

--- Poll 0: no waiting.
function Server:step() return self:poll(0) end

--- Seconds until poll is next due, or nil.
function Server:timeout()
    if self.closed then return nil end
    if not self.started then return 0 end
    local a = self.t:timeout()
    local b = (self.sched.count > 0 or next(self.queued)) and 0.05 or nil
    local k = 1
    return loop.earliest(loop.earliest(a, b), k)
end

function Server:pollfd()
    self:start()
    return self.t:pollfd()
end

function Server:fds()
    self:start()
    return self.t:fds()
end

--- Messages and bytes not yet written, acks awaited (as client:pending).
function Server:pending() return self.t:pending() end

--- Until everything written (at most timeout s).
function Server:flush(timeout) return self.t:flush(timeout) end

-- An event loop (signalr.loop.luv, signalr.loop.cqueues) registers here.
function Server:set_loop(adapter) self._adapter = adapter end

function Server:_wake()
    local a = self._adapter
    if a and a.wake then a.wake() end
end

--- Serve until `server:close()` (from a handler) or an error: the
-- program's main loop when it has no other.
function Server:run()
    if self.ngx then
        error("signalr.server:run: inside nginx the worker's event loop serves; call"
            .. " server:start() from init_worker_by_lua*", 2)
    end
    self:start()
    while not self.closed do self:poll(1) end
end

--- Close the server connections (the service then closes their clients;
-- on_disconnected runs for each here).  Handlers still waiting get
-- nil, "closed".
function Server:close()
    if self.closed then return end
    local list = {}
    for _, s in pairs(self.sessions) do list[#list + 1] = s end
    for _, s in ipairs(list) do s:finish("the server was closed", false) end
    self.sched:cancel("closed")
    local a = self._adapter
    if a and a.detach then a.detach() end
    self.closed = true
    self.t:close()
end

function Server:__tostring()
    return "signalr.server(" .. table.concat(self.hub_names, ",") .. ")"
end

return _M
