--- Several SignalR Service instances behind one client, in REST mode:
-- `signalr.new{ endpoints = { { connection_string = ..., name = "eu",
-- type = "primary" }, ... } }`.
--
-- Each endpoint is an ordinary client of its own (its own credential,
-- transport and options).  Sends and group operations go to every online
-- endpoint (or to the ones a call names in `opts.endpoints`) and answer
-- `true` only when every endpoint took them; otherwise `nil, message,
-- details` with `details.endpoints` saying which did and which did not
-- (an endpoint skipped as offline counts as "did not": nothing is lost
-- without an error saying so).  Negotiate picks an online primary, else an
-- online secondary (or asks the `router` option).  Health: `HEAD
-- /api/health` without a token (2 s, 2 retries 3 s apart, every 2 min, as
-- the service SDK checks), and passively: a connect failure or a 5xx
-- marks an endpoint offline until a check succeeds.  Checks run in the
-- background where the runtime has timers (a per-worker timer inside
-- nginx, the poll loop in async mode) and at call time otherwise.
-- @module signalr.endpoints
local core = require "signalr.core"

local type, error, pairs, ipairs, tostring, setmetatable, pcall =
    type, error, pairs, ipairs, tostring, setmetatable, pcall
local concat, sort, random, min = table.concat, table.sort, math.random, math.min
local lower = string.lower
local mono = core.monotonic

local _M = {}

local Multi = {}
Multi.__index = Multi
_M.Multi = Multi

local Request = {}
Request.__index = Request
function Request:__tostring()
    return "signalr.request #" .. self.id .. " (" .. self.op .. ", "
        .. (self.done and (self.error and "failed" or "done") or "pending") .. ")"
end

--- The health-check settings (the service SDK's for REST mode).
_M.HEALTH = { interval = 120, timeout = 2, retries = 2, retry_delay = 3 }

-- Options that belong to the whole client, never to one endpoint.
local MULTI_ONLY = { endpoints = true, router = true, on_done = true,
    health_interval = true, health_timeout = true, health_retries = true,
    health_retry_delay = true }
local ENTRY_ONLY = { name = true, type = true }

-- Existence checks: true when any endpoint says so.
local CHECKS = { user_exists = true, group_exists = true,
                 connection_exists = true, user_in_group = true }
-- Failures that are the same everywhere and sent nothing: reported as
-- they are, not as a partial failure.
local SAME_EVERYWHERE = { EINVAL = true, EPHASE = true, ECANCELED = true,
                          EUNSUPPORTED = true, EQUEUEFULL = true }

--- The names a call's `endpoints` option gives: a list of names or of
-- endpoint tables (as `client:endpoints()` returns).  Raises at the
-- caller of the hub method on a wrong type.
function _M.names(v, method)
    if v == nil then return nil end
    local function bad(what)
        error("signalr." .. method .. ": " .. what, 4)
    end
    if type(v) ~= "table" then
        bad("opts.endpoints must be a list of endpoint names or endpoint tables, got " .. type(v))
    end
    local out, n = {}, 0
    for _ in pairs(v) do n = n + 1 end
    if n ~= #v then bad("opts.endpoints must be a list (a sequence)") end
    for i = 1, #v do
        local e = v[i]
        if type(e) == "table" then e = e.name end
        if type(e) ~= "string" then
            bad("opts.endpoints[" .. i .. "] must be an endpoint name or a table with a name")
        end
        out[i] = e
    end
    return out
end

-- "signalr.broadcast: x" -> "x"
local function bare(msg)
    return (tostring(msg):gsub("^signalr%.[%w_]+: ", ""))
end

local function shallow(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

local function view(m)
    return { name = m.name, type = m.type, online = m.online, endpoint = m.endpoint,
             client_endpoint = m.client_endpoint, server_endpoint = m.server_endpoint,
             last_error = m.last_error, checked_at = m.checked_at }
end

--- Build a client over several endpoints (called by signalr.new).
-- `new_client(opts)` makes one endpoint's client.
function _M.new(opts, new_client)
    local list = opts.endpoints
    if type(list) ~= "table" or #list == 0 then
        error("signalr.new: option 'endpoints' must be a non-empty list of endpoint tables"
            .. " ({ connection_string = ..., name = ..., type = \"primary\"|\"secondary\" })", 3)
    end
    if opts.connection_string ~= nil then
        error("signalr.new: give either 'connection_string' or 'endpoints', not both", 3)
    end
    -- (signalr.new checked the options' types and ranges)
    local health = {
        interval = opts.health_interval or _M.HEALTH.interval,
        timeout = opts.health_timeout or _M.HEALTH.timeout,
        retries = opts.health_retries or _M.HEALTH.retries,
        retry_delay = opts.health_retry_delay or _M.HEALTH.retry_delay,
    }
    local self = setmetatable({
        _multi = true, _members = {}, _by_name = {}, _async = opts.async or nil,
        _persistent = opts.mode == "persistent" or nil,
        _router = opts.router, _health = health, _on_done = opts.on_done,
        _open = 0, _ready = {}, _next_id = 0,
        _queue_size = opts.queue_size or 1024,
    }, Multi)
    local function fail(...)
        self:_close_members()
        return ...
    end
    local now = mono()
    for i, e in ipairs(list) do
        if type(e) == "string" then e = { connection_string = e } end
        if type(e) ~= "table" then
            fail()
            error("signalr.new: endpoints[" .. i .. "] must be a table or a connection string, got "
                .. type(e), 3)
        end
        local name, kind = e.name, e.type
        if name ~= nil and type(name) ~= "string" then
            fail()
            error("signalr.new: endpoints[" .. i .. "].name must be a string", 3)
        end
        kind = kind == nil and "primary" or (type(kind) == "string" and lower(kind))
        if kind ~= "primary" and kind ~= "secondary" then
            fail()
            error("signalr.new: endpoints[" .. i .. "].type must be \"primary\" or \"secondary\"", 3)
        end
        -- this endpoint's options: the client's, then its own
        local o = {}
        for k, v in pairs(opts) do if not MULTI_ONLY[k] then o[k] = v end end
        for k, v in pairs(e) do
            if MULTI_ONLY[k] then
                fail()
                error("signalr.new: endpoints[" .. i .. "]: option '" .. k
                    .. "' is for the whole client, not one endpoint", 3)
            end
            if not ENTRY_ONLY[k] then o[k] = v end
        end
        if o.connection_string == nil then
            fail()
            error("signalr.new: endpoints[" .. i .. "] needs a connection_string", 3)
        end
        local m = { type = kind, online = true, attempt = 1, next_check = now + health.interval }
        if self._async then
            o.on_done = function(req) self:_sub_done(req) end
        end
        local ok, client, msg, details = pcall(new_client, o)
        if not ok then fail() error(client, 0) end
        if not client then
            return fail(nil, (msg:gsub("^signalr%.new: ", "signalr.new: endpoints[" .. i .. "]: ")), details)
        end
        m.client = client
        local info = client:info()
        m.endpoint, m.client_endpoint, m.server_endpoint =
            info.endpoint, info.client_endpoint, info.server_endpoint
        m.name = name or info.endpoint
        if self._by_name[m.name] then
            client:close()
            fail()
            error("signalr.new: endpoints[" .. i .. "]: the name '" .. m.name .. "' is taken"
                .. " (give each endpoint its own name)", 3)
        end
        -- the health probe: the same service, the check's own timeout, no retries
        local po = shallow(o)
        po.timeout, po.connect_timeout, po.retries = health.timeout, health.timeout, 0
        if self._async then
            po.on_done = function(req) self:_probe_done(m, req) end
        end
        m.probe = assert(new_client(po))
        self._members[i] = m
        self._by_name[m.name] = m
    end
    self._ngx = self._members[1].client._ngx ~= nil
    if self._async then
        local ps = core.pollset()
        if ps then
            for _, m in ipairs(self._members) do
                for _, c in ipairs { m.client, m.probe } do
                    local fd = c:pollfd()
                    if fd then assert(ps:add(fd)) end
                end
            end
        end
        self._pollset = ps or nil
    elseif self._ngx and #self._members > 1 then
        self:_start_timer()
    end
    return self
end

function Multi:_close_members()
    for _, m in pairs(self._members) do
        if m.client then m.client:close() end
        if m.probe then m.probe:close() end
    end
end

-- ===== health =====

-- A check's verdict (attempt = which attempt it was).
function Multi:_checked(m, ok, msg)
    local now, h = mono(), self._health
    m.checked_at = now
    if ok then
        m.online, m.last_error, m.attempt = true, nil, 1
        m.next_check = now + h.interval
    elseif m.online and m.attempt <= h.retries then
        -- an online endpoint gets its retries before it is called offline
        m.attempt = m.attempt + 1
        m.next_check = now + h.retry_delay
    else
        m.online, m.attempt = false, 1
        m.last_error = "health check failed: " .. bare(msg)
        m.next_check = now + h.interval
    end
end

-- Learn from a call's results: a connect failure or a 5xx marks an
-- endpoint offline until a check succeeds (soon: after retry_delay).
function Multi:_observe(targets, results, op)
    if #self._members < 2 then return end
    local now = mono()
    for i, m in ipairs(targets) do
        local r = results[i]
        if r and r[1] == nil then
            local d = r[3] or {}
            if d.code == "ECONNECT" or (d.code == "ESTATUS" and (d.status or 0) >= 500) then
                m.online, m.attempt = false, 1
                m.last_error = bare(r[2])
                m.next_check = now + self._health.retry_delay
            end
        elseif r and op == "health" then
            self:_checked(m, true)
        end
    end
end

-- Run the checks that are due, one attempt each, on a synchronous
-- transport (retries come later, when they are due).
local function run_checks(c)
    local now = mono()
    for _, m in ipairs(c._members) do
        if now >= m.next_check and not m.checking then
            m.checking = true
            local ok, msg = m.probe:health()
            m.checking = false
            c:_checked(m, ok, msg)
        end
    end
end

-- Synchronous transports: the due checks at call time.  Inside nginx a
-- timer runs them instead.
function Multi:_due_checks()
    if self._async or self._timer or #self._members < 2 then return end
    run_checks(self)
end

-- Async: submit the checks that are due through the probes' queues.
function Multi:_due_checks_async()
    if #self._members < 2 or self._closing then return end
    local now = mono()
    for _, m in ipairs(self._members) do
        if now >= m.next_check and not m.checking then
            local req, msg = m.probe:health()
            if req then
                m.checking = true
            else
                self:_checked(m, false, msg)
            end
        end
    end
end

function Multi:_probe_done(m, req)
    m.checking = false
    if self._closing then return end
    self:_checked(m, req.error == nil, req.error)
end

-- nginx: a per-worker timer runs the checks (the client is held weakly:
-- once it is garbage or closed, the timer stops).
function Multi:_start_timer()
    local weak = setmetatable({ c = self }, { __mode = "v" })
    local tick
    tick = function(premature)
        local c = weak.c
        if premature or not c or c._closing then return end
        run_checks(c)
        local step = c._health.interval
        for _, m in ipairs(c._members) do step = min(step, m.next_check - mono()) end
        ngx.timer.at(step > 0.05 and step or 0.05, tick)
    end
    local ok = pcall(ngx.timer.at, 0, tick)
    self._timer = ok or nil
end

-- ===== routing =====

local function offline_list(members)
    local parts = {}
    for _, m in ipairs(members) do
        parts[#parts + 1] = m.name .. ": " .. (m.last_error or "offline")
    end
    return concat(parts, "; ")
end

local function offline_details(members, code)
    local eps = {}
    for _, m in ipairs(members) do
        eps[m.name] = { code = "EOFFLINE", message = m.last_error or "offline" }
    end
    return { code = code or "EOFFLINE", endpoints = eps, sent = false }
end

-- The members a call's names give, or nil, msg, details.
function Multi:_resolve(names, what)
    local out, seen = {}, {}
    for _, n in ipairs(names) do
        local m = self._by_name[n]
        if not m then
            local known = {}
            for _, x in ipairs(self._members) do known[#known + 1] = x.name end
            return nil, "signalr." .. what .. ": unknown endpoint '" .. n .. "' (known: "
                .. concat(known, ", ") .. ")", { code = "EINVAL" }
        end
        if not seen[m] then
            seen[m] = true
            out[#out + 1] = m
        end
    end
    if #out == 0 then
        return nil, "signalr." .. what .. ": opts.endpoints names no endpoint", { code = "EINVAL" }
    end
    return out
end

-- Where a message goes: the named endpoints (online or not, as asked),
-- else every online one.  Returns targets, skipped | nil, msg, details.
function Multi:_targets(names, what)
    if names then
        local out, msg, d = self:_resolve(names, what)
        if not out then return nil, msg, d end
        return out, {}
    end
    self:_due_checks()
    local out, skipped = {}, {}
    for _, m in ipairs(self._members) do
        if m.online or #self._members == 1 then out[#out + 1] = m else skipped[#skipped + 1] = m end
    end
    if #out == 0 then
        return nil, "signalr." .. what .. ": no endpoint is online, nothing was sent ("
            .. offline_list(skipped) .. ")", offline_details(skipped)
    end
    return out, skipped
end

--- The target names a call resolves to (for hub methods that walk the
-- endpoints themselves): names | nil, msg, details.
function Multi:_target_names(names, what)
    local targets, skipped, d = self:_targets(names, what)
    if not targets then return nil, skipped, d end
    local out = {}
    for i, m in ipairs(targets) do out[i] = m.name end
    return out, skipped
end

-- Negotiate's choice: the router's, else a random online primary, else a
-- random online secondary.  (The service SDK weighs by the capacity that
-- server connections report; REST mode has no such figures, so the draw
-- is uniform, which is the SDK's rule without them.)
function Multi:_pick(names, what, ctx)
    local pool = self._members
    if names then
        local msg, d
        pool, msg, d = self:_resolve(names, what)
        if not pool then return nil, msg, d end
    else
        self:_due_checks()
    end
    if self._router then
        local views = {}
        for i, m in ipairs(pool) do views[i] = view(m) end
        local choice = self._router(views, ctx)
        local name = type(choice) == "table" and choice.name or choice
        local m = type(name) == "string" and self._by_name[name]
        local inpool = false
        for _, x in ipairs(pool) do if x == m then inpool = true end end
        if not inpool then
            return nil, "signalr." .. what .. ": the router chose "
                .. (name == nil and "no endpoint" or ("'" .. tostring(name) .. "', not one it was offered")),
                { code = "EINVAL" }
        end
        return m
    end
    if #pool == 1 then return pool[1] end
    for _, want in ipairs { "primary", "secondary" } do
        local c = {}
        for _, m in ipairs(pool) do
            if m.online and m.type == want then c[#c + 1] = m end
        end
        if #c > 0 then return c[random(#c)] end
    end
    return nil, "signalr." .. what .. ": no endpoint is online (" .. offline_list(pool) .. ")",
        offline_details(pool)
end

-- ===== results =====

-- One answer for the caller from every target's result.
local function combine(op, what, targets, skipped, results)
    local eps, failures, n_ok, answer = {}, {}, 0, nil
    local first_fail, same_code = nil, true
    for i, m in ipairs(targets) do
        local r = results[i]
        if r[1] ~= nil then
            n_ok = n_ok + 1
            eps[m.name] = CHECKS[op] and r[1] or true
            if CHECKS[op] then
                if r[1] == true then answer = true elseif answer == nil then answer = false end
            elseif answer == nil then
                answer = r[1]
            end
        else
            local d = r[3] or {}
            eps[m.name] = { code = d.code, status = d.status, service_code = d.service_code,
                            sent = d.sent, message = bare(r[2]) }
            failures[#failures + 1] = m.name .. ": " .. bare(r[2])
            if first_fail and first_fail[3] and first_fail[3].code ~= d.code then same_code = false end
            first_fail = first_fail or r
        end
    end
    for _, m in ipairs(skipped) do
        eps[m.name] = { code = "EOFFLINE", sent = false, message = m.last_error or "offline" }
        failures[#failures + 1] = m.name .. ": offline, not sent (" .. (m.last_error or "offline") .. ")"
    end
    if CHECKS[op] then
        -- true if any says so, false if every one that answered says no
        if answer ~= nil then return answer end
    elseif n_ok == #targets and #skipped == 0 then
        return answer
    elseif op == "invoke" and n_ok > 0 then
        -- the connection lives on one endpoint: its answer is the result
        return answer
    end
    -- one endpoint, or a failure that is the same everywhere: as it is
    if first_fail and ((#targets == 1 and #skipped == 0)
            or (n_ok == 0 and same_code and #skipped == 0 and SAME_EVERYWHERE[(first_fail[3] or {}).code])) then
        local d = first_fail[3] or {}
        d.endpoints = eps
        return nil, first_fail[2], d
    end
    local total = #targets + #skipped
    local msg = CHECKS[op] and ("no endpoint could answer (" .. concat(failures, "; ") .. ")")
        or (n_ok .. " of " .. total .. " endpoints took it; " .. concat(failures, "; "))
    return nil, "signalr." .. what .. ": " .. msg,
        { code = "EPARTIAL", endpoints = eps, delivered = n_ok, failed = total - n_ok }
end
_M.combine = combine

-- ===== calls =====

local function closed_error(what)
    return nil, "signalr." .. what .. ": the client is closed (nothing was sent)",
        { code = "ECANCELED", sent = false }
end

-- Synchronous fan-out: in parallel light threads inside nginx, one after
-- another elsewhere.  Bad input stops at the first endpoint.
function Multi:_run(targets, op, params, what)
    local results = {}
    if self._ngx and #targets > 1 and ngx.get_phase() ~= "init" then
        local threads = {}
        for i, m in ipairs(targets) do
            local p = shallow(params)
            threads[i] = ngx.thread.spawn(function() return m.client:_call(op, p, what) end)
        end
        local raised
        for i, th in ipairs(threads) do
            local r = { ngx.thread.wait(th) }
            if r[1] then
                results[i] = { r[2], r[3], r[4] }
            else
                raised = raised or r[2]
                results[i] = { nil, tostring(r[2]), { code = "EHTTP" } }
            end
        end
        if raised then error(raised, 0) end
        return results
    end
    for i, m in ipairs(targets) do
        local res, msg, details = m.client:_call(op, shallow(params), what)
        results[i] = { res, msg, details }
        if res == nil and i == 1 and details and details.code == "EINVAL" then
            return results, true
        end
    end
    return results
end

-- One chosen endpoint (tokens it signs belong to it).
function Multi:_one(m, op, params, what)
    local res, msg, details = m.client:_call(op, params, what)
    self:_observe({ m }, { { res, msg, details } }, op)
    if res == nil and details then details.endpoints = { [m.name] = { code = details.code,
        status = details.status, message = bare(msg), sent = details.sent } } end
    return res, msg, details
end

function Multi:_call(op, params, what, names)
    if self._closing then return closed_error(what) end
    if op == "generate_client_token" then
        local m, msg, d = self:_pick(names, what, { hub = params.hub, user_id = params.user })
        if not m then return nil, msg, d end
        return self:_one(m, op, params, what)
    end
    local targets, skipped, d = self:_targets(names, what)
    if not targets then return nil, skipped, d end
    if self._async then return self:_call_async(op, params, what, targets, skipped) end
    local results, stopped = self:_run(targets, op, params, what)
    if stopped then return results[1][1], results[1][2], results[1][3] end
    self:_observe(targets, results, op)
    return combine(op, what, targets, skipped, results)
end

function Multi:_negotiate(hub, user_id, claims, lifetime, names, context)
    if self._closing then return closed_error("negotiate") end
    local m, msg, d = self:_pick(names, "negotiate",
        { hub = hub, user_id = user_id, claims = claims, context = context })
    if not m then return nil, msg, d end
    return m.client:_negotiate(hub, user_id, claims, lifetime)
end

-- ===== async mode: one request object per call, finished once =====

function Multi:_call_async(op, params, what, targets, skipped)
    if self._open >= self._queue_size then
        return nil, "signalr." .. what .. ": queue full: " .. self._open
            .. " requests are pending; poll or flush before sending more", { code = "EQUEUEFULL" }
    end
    for _, m in ipairs(targets) do
        local c = m.client
        if c._open >= c._opts.queue_size then
            return nil, "signalr." .. what .. ": queue full for endpoint " .. m.name .. ": "
                .. c._open .. " requests are pending there; poll or flush before sending more"
                .. " (nothing was queued)", { code = "EQUEUEFULL" }
        end
    end
    self._next_id = self._next_id + 1
    local agg = setmetatable({ id = self._next_id, op = what, done = false, _op = op,
        _targets = targets, _skipped = skipped, _results = {}, _left = 0 }, Request)
    for i, m in ipairs(targets) do
        local r, msg, d = m.client:_call(op, shallow(params), what)
        if r == nil then
            if i == 1 and d and (d.code == "EINVAL" or d.code == "EUNSUPPORTED") then
                return nil, msg, d -- bad input: nothing queued anywhere
            end
            agg._results[i] = { nil, msg, d }
        elseif type(r) == "table" then
            r._agg, r._agg_i = agg, i
            agg._left = agg._left + 1
        else
            agg._results[i] = { r }
        end
    end
    self._open = self._open + 1
    if agg._left == 0 then self:_agg_finish(agg) end
    if self._adapter then self._adapter.wake() end
    return agg
end

function Multi:_sub_done(req)
    local agg = req._agg
    if not agg then return end
    if req.error then
        agg._results[req._agg_i] = { nil, req.error, req.details }
    else
        agg._results[req._agg_i] = { req.result }
    end
    agg._left = agg._left - 1
    if agg._left == 0 then self:_agg_finish(agg) end
end

function Multi:_agg_finish(agg)
    self:_observe(agg._targets, agg._results, agg._op)
    local res, msg, d = combine(agg._op, agg.op, agg._targets, agg._skipped, agg._results)
    if res == nil then
        agg.error, agg.details = msg, d
    else
        agg.result = res
    end
    self._ready[#self._ready + 1] = agg
end

-- The loop-driving methods exist for async and persistent clients (a
-- plain client's too: init.lua uses this one).
local function need_async(self, what)
    if not self._async and not self._persistent then
        error("signalr." .. what .. ": only for clients made with async = true or"
            .. " mode = \"persistent\"", 3)
    end
end
_M.need_async = need_async

-- Persistent mode: every endpoint's client has its own server
-- connections; the client of several waits on all of them at once.
function Multi:_persistent_set()
    if self._pset == nil then
        local ps = core.pollset()
        if ps then
            for _, m in ipairs(self._members) do
                local fd = m.client:pollfd()
                if fd then assert(ps:add(fd)) end
            end
        end
        self._pset = ps or false
    end
    return self._pset or nil
end

function Multi:_persistent_poll(timeout)
    local wait = timeout or 0
    local due = self:_due_in()
    if due and due < wait then wait = due end
    for _, m in ipairs(self._members) do m.client:poll(0) end
    if wait > 0 then
        local ps = self:_persistent_set()
        if ps then
            for _, m in ipairs(self._members) do m.client:pollfd() end -- brings each set up to date
            ps:wait(wait)
        else
            self._members[1].client:poll(wait)
        end
        for _, m in ipairs(self._members) do m.client:poll(0) end
    end
    return 0
end

-- Seconds until a sub-client or a health check is due (nil: none).
function Multi:_due_in()
    local t = nil
    for _, m in ipairs(self._members) do
        for _, c in ipairs(self._persistent and { m.client } or { m.client, m.probe }) do
            local s = c:timeout()
            if s and (not t or s < t) then t = s end
        end
        if #self._members > 1 and not m.checking then
            local s = m.next_check - mono()
            if s < 0 then s = 0 end
            if not t or s < t then t = s end
        end
    end
    return t
end

-- Multi:_report is the plain client's too (set by init.lua).

--- Make progress on every endpoint (async): wait up to `timeout` s, then
-- finish what completed; a request finishes once all its endpoints have.
function Multi:poll(timeout)
    need_async(self, "poll")
    if timeout ~= nil and type(timeout) ~= "number" then
        error("signalr.poll: timeout must be a number of seconds", 2)
    end
    if self._persistent then return self:_persistent_poll(timeout) end
    self:_due_checks_async()
    local wait = #self._ready > 0 and 0 or (timeout or 0)
    local due = self:_due_in()
    if due and due < wait then wait = due end
    if wait > 0 then
        if self._pollset then
            self._pollset:wait(wait)
        else
            self._members[1].client:poll(wait)
        end
    end
    for _, m in ipairs(self._members) do
        m.client:poll(0)
        m.probe:poll(0)
    end
    return self:_report()
end

function Multi:step() return self:poll(0) end

function Multi:pending()
    need_async(self, "pending")
    if self._persistent then
        local n, bytes, acks = 0, 0, 0
        for _, m in ipairs(self._members) do
            local a, b, c = m.client:pending()
            n, bytes, acks = n + a, bytes + b, acks + c
        end
        return n, bytes, acks
    end
    return self._open
end

--- Persistent mode: flush every endpoint's connections (at most timeout s in all).
function Multi:_persistent_flush(timeout)
    local deadline = timeout and (mono() + timeout)
    for _, m in ipairs(self._members) do
        local ok, msg, d = m.client:flush(deadline and math.max(0, deadline - mono()) or nil)
        if not ok then return nil, msg, d end
    end
    return true
end

--- Every endpoint's confirm (at most timeout s in all): true when each
-- confirmed; else the first failure's message, with `details.endpoints`
-- naming each endpoint's outcome and `lost` summed over them.
function Multi:confirm(timeout)
    if timeout ~= nil and type(timeout) ~= "number" then
        error("signalr.confirm: timeout must be a number of seconds", 2)
    end
    local deadline = timeout and (mono() + timeout)
    local first, outcomes, lost = nil, {}, 0
    for _, m in ipairs(self._members) do
        local ok, msg, d = m.client:confirm(deadline and math.max(0, deadline - mono()) or nil)
        outcomes[m.name] = ok or { code = d and d.code, message = msg, lost = d and d.lost }
        if not ok then
            lost = lost + (d and d.lost or 0)
            first = first or { msg, d and d.code }
        end
    end
    if not first then return true end
    return nil, first[1], { code = first[2], endpoints = outcomes, lost = lost }
end

-- Multi:flush is the plain client's (it needs only _open and poll):
-- init.lua sets it.

function Multi:fds()
    need_async(self, "fds")
    local out = {}
    for _, m in ipairs(self._members) do
        for _, c in ipairs(self._persistent and { m.client } or { m.client, m.probe }) do
            for _, f in ipairs(c:fds()) do out[#out + 1] = f end
        end
    end
    return out
end

function Multi:timeout()
    need_async(self, "timeout")
    if #self._ready > 0 then return 0 end
    return self:_due_in()
end

function Multi:pollfd()
    need_async(self, "pollfd")
    if self._persistent then
        local ps = self:_persistent_set()
        return ps and ps:fd() or nil
    end
    return self._pollset and self._pollset:fd() or nil
end

function Multi:events()
    need_async(self, "events")
    return "r"
end

-- ===== the client's other methods =====

-- Multi:hub is the plain client's (init.lua sets it).

--- The endpoints and their state: a list of `{ name, type, online,
-- endpoint, client_endpoint, server_endpoint, last_error, checked_at }`.
function Multi:endpoints()
    local out = {}
    for i, m in ipairs(self._members) do out[i] = view(m) end
    return out
end

--- Check every endpoint now (`HEAD /api/health` through each endpoint's
-- client) and record the answers.  true when all are healthy.
function Multi:health(opts)
    if opts ~= nil and type(opts) ~= "table" then
        error("signalr.health: opts must be a table, got " .. type(opts), 2)
    end
    local names = _M.names(opts and opts.endpoints, "health")
    if not names then
        names = {}
        for i, m in ipairs(self._members) do names[i] = m.name end
    end
    return self:_call("health", {}, "health", names)
end

function Multi:info()
    local out = {}
    for i, m in ipairs(self._members) do
        local t = m.client:info()
        t.name, t.type = m.name, m.type
        out[i] = t
    end
    return { endpoints = out }
end

function Multi:close()
    if self._closed then return end
    self._closing = true
    local first_err
    for _, m in ipairs(self._members) do
        for _, c in ipairs { m.client, m.probe } do
            local ok, err = pcall(c.close, c)
            if not ok and first_err == nil then first_err = err end
        end
    end
    if self._async then
        local ok, err = pcall(self._report, self)
        if not ok and first_err == nil then first_err = err end
    end
    self._closed = true
    -- the loop lets go of the descriptor before it closes
    if self._adapter then self._adapter.detach() end
    if self._pollset then self._pollset:close() end
    if self._pset then self._pset:close() end
    if first_err ~= nil then error(first_err, 0) end
end

function Multi:__tostring()
    local names = {}
    for i, m in ipairs(self._members) do names[i] = m.name end
    sort(names)
    return "signalr.client (" .. #names .. " endpoints: " .. concat(names, ", ") .. ")"
end

return _M
