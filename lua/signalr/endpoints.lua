--- Several SignalR Service instances behind one client:
-- `signalr.new{ endpoints = { { connection_string = ..., name = "eu",
-- type = "primary" }, ... } }`.  A transport of transports: each endpoint
-- has a transport of its own (its own credential, options and mode), and
-- this one fans calls out to them.
--
-- Sends and group operations go to every online endpoint (or to the ones
-- a call names in `opts.endpoints`) and answer `true` only when every
-- endpoint took them; otherwise `nil, message, details` with
-- `details.endpoints` saying which did and which did not (an endpoint
-- skipped as offline counts as "did not": nothing is lost without an
-- error saying so).  Negotiate picks an online primary, else an online
-- secondary (or asks the `router` option).  Health: `HEAD /api/health`
-- without a token (2 s, 2 retries 3 s apart, every 2 min, as the service
-- SDK checks), and passively: a connect failure or a 5xx marks an
-- endpoint offline until a check succeeds.  Checks run in the background
-- where the runtime has timers (a per-worker timer inside nginx, the poll
-- loop in async mode) and at call time otherwise.
-- @module signalr.endpoints
local core = require "signalr.core"
local options = require "signalr.options"
local request = require "signalr.request"
local util = require "signalr.util"
local loop = require "signalr.loop"
local transport = require "signalr.transport"

local type, error, pairs, ipairs, tostring, setmetatable, pcall =
    type, error, pairs, ipairs, tostring, setmetatable, pcall
local concat, sort, random, min, max = table.concat, table.sort, math.random, math.min, math.max
local lower = string.lower
local mono = core.monotonic
local bare, shallow = util.bare, util.shallow
local after = request.after

local _M = {}

local Endpoints = {}
Endpoints.__index = Endpoints
_M.Endpoints = Endpoints

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

local function view(m)
    return { name = m.name, type = m.type, online = m.online, endpoint = m.endpoint,
             client_endpoint = m.client_endpoint, server_endpoint = m.server_endpoint,
             last_error = m.last_error, checked_at = m.checked_at }
end

-- One endpoint's transport (its options are checked as signalr.new's).
local function single(o, seam)
    options.check(o, 2)
    options.check_single(o, 2)
    return transport.new(options.fill(o), nil, 2, seam)
end

-- The health probe: the same service over REST, the check's own
-- timeout, no retries.
local function probe_options(o, health)
    local po = shallow(o)
    po.timeout, po.connect_timeout, po.retries = health.timeout, health.timeout, 0
    po.mode = nil
    for _, k in ipairs(options.ONLY.persistent) do po[k] = nil end
    return po
end

--- Build the transport of several endpoints (signalr.new does, for
-- option `endpoints`).
-- @tparam table opts the checked options
-- @tparam[opt] function wake called when an async call is queued
-- @tparam number level where an error points (as error's level, from the caller)
-- @tparam[opt] function seam_for `seam_for(i)`: the pool seam of endpoint
--   i's persistent transport (a hub server's connections to every endpoint)
-- @treturn[1] table the transport
-- @treturn[2] nil, message, details (a bad connection string, naming the entry)
-- @raise on a wrong shape, naming the entry
function _M.new(opts, wake, level, seam_for)
    level = level + 1
    local list = opts.endpoints
    if type(list) ~= "table" or #list == 0 then
        error("signalr.new: option 'endpoints' must be a non-empty list of endpoint tables"
            .. " ({ connection_string = ..., name = ..., type = \"primary\"|\"secondary\" })", level)
    end
    if opts.connection_string ~= nil then
        error("signalr.new: give either 'connection_string' or 'endpoints', not both", level)
    end
    local health = {
        interval = opts.health_interval or _M.HEALTH.interval,
        timeout = opts.health_timeout or _M.HEALTH.timeout,
        retries = opts.health_retries or _M.HEALTH.retries,
        retry_delay = opts.health_retry_delay or _M.HEALTH.retry_delay,
    }
    local async, persistent = opts.async or nil, opts.mode == "persistent" or nil
    local self = setmetatable({
        members = {}, by_name = {}, async = async, persistent = persistent,
        loop = async or persistent, router = opts.router, checks = health, wake = wake,
        log = util.logger(opts.on_log),
        queue = request.queue(opts.on_done, opts.queue_size or 1024),
        -- async: each endpoint's request -> { its call's fan-out, index }
        parts = {}, next_id = 0,
    }, Endpoints)
    local function fail(...)
        self:close_members()
        return ...
    end
    local now = mono()
    for i, e in ipairs(list) do
        if type(e) == "string" then e = { connection_string = e } end
        if type(e) ~= "table" then
            fail()
            error("signalr.new: endpoints[" .. i .. "] must be a table or a connection string, got "
                .. type(e), level)
        end
        local name, kind = e.name, e.type
        if name ~= nil and type(name) ~= "string" then
            fail()
            error("signalr.new: endpoints[" .. i .. "].name must be a string", level)
        end
        kind = kind == nil and "primary" or (type(kind) == "string" and lower(kind))
        if kind ~= "primary" and kind ~= "secondary" then
            fail()
            error("signalr.new: endpoints[" .. i .. "].type must be \"primary\" or \"secondary\"", level)
        end
        -- this endpoint's options: the client's, then its own
        local o = {}
        for k, v in pairs(opts) do if not MULTI_ONLY[k] then o[k] = v end end
        for k, v in pairs(e) do
            if MULTI_ONLY[k] then
                fail()
                error("signalr.new: endpoints[" .. i .. "]: option '" .. k
                    .. "' is for the whole client, not one endpoint", level)
            end
            if not ENTRY_ONLY[k] then o[k] = v end
        end
        if o.connection_string == nil then
            fail()
            error("signalr.new: endpoints[" .. i .. "] needs a connection_string", level)
        end
        local m = { type = kind, online = true, attempt = 1, next_check = now + health.interval,
                    queue_size = o.queue_size or options.DEFAULTS.queue_size }
        if async then
            o.on_done = function(req) self:part_done(req) end
        end
        local ok, t, msg, details = pcall(single, o, seam_for and seam_for(i))
        if not ok then fail() error(t, 0) end
        if not t then
            return fail(nil, (msg:gsub("^signalr%.new: ", "signalr.new: endpoints[" .. i .. "]: ")), details)
        end
        m.t = t
        local info = t:describe()
        m.endpoint, m.client_endpoint, m.server_endpoint =
            info.endpoint, info.client_endpoint, info.server_endpoint
        m.name = name or info.endpoint
        if self.by_name[m.name] then
            t:close()
            fail()
            error("signalr.new: endpoints[" .. i .. "]: the name '" .. m.name .. "' is taken"
                .. " (give each endpoint its own name)", level)
        end
        local po = probe_options(o, health)
        if async then
            po.on_done = function(req) self:probe_done(m, req) end
        end
        m.probe = assert(transport.new(options.fill(po), nil, 1))
        self.members[i] = m
        self.by_name[m.name] = m
    end
    self.in_nginx = self.members[1].t.in_nginx
    if self.loop then
        local pollables = {}
        for _, m in ipairs(self.members) do
            pollables[#pollables + 1] = m.t
            if async then pollables[#pollables + 1] = m.probe end
        end
        self.group = loop.group(pollables)
    elseif self.in_nginx and #self.members > 1 then
        self:start_timer()
    end
    return self
end

--- Close every endpoint's transports (a failed construction).
function Endpoints:close_members()
    for _, m in pairs(self.members) do
        if m.t then m.t:close() end
        if m.probe then m.probe:close() end
    end
end

-- ===== health =====

-- A check's verdict (attempt = which attempt it was).
local function checked(self, m, ok, msg)
    local now, h = mono(), self.checks
    m.checked_at = now
    if ok then
        if not m.online and self.log then self.log("info", "endpoint " .. m.name .. " is online again") end
        m.online, m.last_error, m.attempt = true, nil, 1
        m.next_check = now + h.interval
    elseif m.online and m.attempt <= h.retries then
        -- an online endpoint gets its retries before it is called offline
        m.attempt = m.attempt + 1
        m.next_check = now + h.retry_delay
    else
        if m.online and self.log then
            self.log("warn", "endpoint " .. m.name .. " is offline: health check failed: " .. bare(msg))
        end
        m.online, m.attempt = false, 1
        m.last_error = "health check failed: " .. bare(msg)
        m.next_check = now + h.interval
    end
end

-- Learn from a call's results: a connect failure or a 5xx marks an
-- endpoint offline until a check succeeds (soon: after retry_delay).
local function observe(self, targets, results, op)
    if #self.members < 2 then return end
    local now = mono()
    for i, m in ipairs(targets) do
        local r = results[i]
        if r and r[1] == nil then
            local d = r[3] or {}
            if d.code == "ECONNECT" or (d.code == "ESTATUS" and (d.status or 0) >= 500) then
                if m.online and self.log then
                    self.log("warn", "endpoint " .. m.name .. " is offline: " .. bare(r[2]))
                end
                m.online, m.attempt = false, 1
                m.last_error = bare(r[2])
                m.next_check = now + self.checks.retry_delay
            end
        elseif r and op == "health" then
            checked(self, m, true)
        end
    end
end

-- Run the checks that are due, one attempt each, on a synchronous
-- transport (retries come later, when they are due).
local function run_checks(self)
    local now = mono()
    for _, m in ipairs(self.members) do
        if now >= m.next_check and not m.checking then
            m.checking = true
            local ok, msg = m.probe:health()
            m.checking = false
            checked(self, m, ok, msg)
        end
    end
end

-- Synchronous transports: the due checks at call time.  Inside nginx a
-- timer runs them instead.
local function due_checks(self)
    if self.async or self.timer or #self.members < 2 then return end
    run_checks(self)
end

-- Async: submit the checks that are due through the probes' queues.
local function due_checks_async(self)
    if #self.members < 2 or self.closing then return end
    local now = mono()
    for _, m in ipairs(self.members) do
        if now >= m.next_check and not m.checking then
            local req, msg = m.probe:health()
            if req then
                m.checking = true
            else
                checked(self, m, false, msg)
            end
        end
    end
end

--- A probe's outcome (async; the probe's on_done).
function Endpoints:probe_done(m, req)
    m.checking = false
    if self.closing then return end
    checked(self, m, req.error == nil, req.error)
end

--- nginx: a per-worker timer runs the checks (the transport is held
-- weakly: once it is garbage or closed, the timer stops).
function Endpoints:start_timer()
    local weak = setmetatable({ c = self }, { __mode = "v" })
    local tick
    tick = function(premature)
        local c = weak.c
        if premature or not c or c.closing then return end
        run_checks(c)
        local step = c.checks.interval
        for _, m in ipairs(c.members) do step = min(step, m.next_check - mono()) end
        ngx.timer.at(step > 0.05 and step or 0.05, tick)
    end
    local ok = pcall(ngx.timer.at, 0, tick)
    self.timer = ok or nil
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
local function resolve(self, names, what)
    local out, seen = {}, {}
    for _, n in ipairs(names) do
        local m = self.by_name[n]
        if not m then
            local known = {}
            for _, x in ipairs(self.members) do known[#known + 1] = x.name end
            return nil, "signalr." .. what .. ": unknown endpoint '" .. n .. "' (known: "
                .. concat(known, ", ") .. ")", { code = "EINVAL" }
        end
        if not seen[m] then
            seen[m] = true
            out[#out + 1] = m
        end
    end
    if #out == 0 then return util.no_endpoint(what) end
    return out
end

-- Where a message goes: the named endpoints (online or not, as asked),
-- else every online one.  Returns targets, skipped | nil, msg, details.
local function targets_of(self, names, what)
    if names then
        local out, msg, d = resolve(self, names, what)
        if not out then return nil, msg, d end
        return out, {}
    end
    due_checks(self)
    local out, skipped = {}, {}
    for _, m in ipairs(self.members) do
        if m.online or #self.members == 1 then out[#out + 1] = m else skipped[#skipped + 1] = m end
    end
    if #out == 0 then
        return nil, "signalr." .. what .. ": no endpoint is online, nothing was sent ("
            .. offline_list(skipped) .. ")", offline_details(skipped)
    end
    return out, skipped
end

-- Negotiate's choice: the router's, else a random online primary, else a
-- random online secondary.  (The service SDK weighs by the capacity that
-- server connections report; REST mode has no such figures, so the draw
-- is uniform, which is the SDK's rule without them.)
local function pick(self, names, what, ctx)
    local pool = self.members
    if names then
        local msg, d
        pool, msg, d = resolve(self, names, what)
        if not pool then return nil, msg, d end
    else
        due_checks(self)
    end
    if self.router then
        local views = {}
        for i, m in ipairs(pool) do views[i] = view(m) end
        local choice = self.router(views, ctx)
        local name = type(choice) == "table" and choice.name or choice
        local m = type(name) == "string" and self.by_name[name]
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

-- Inside nginx: may this phase start light threads? (the phases with
-- cosockets; loaded on first use, outside nginx it is never asked)
local threads_usable

-- Synchronous fan-out: in parallel light threads inside nginx, one after
-- another elsewhere, and in the nginx phases without light threads (those
-- without cosockets too: there a REST member answers EPHASE, a persistent
-- one only touches memory).  Bad input stops at the first endpoint.
local function run(self, targets, op, params, what)
    local results = {}
    local parallel = self.in_nginx and #targets > 1
    if parallel then
        threads_usable = threads_usable or require("signalr.transport.ngx").usable
        parallel = threads_usable()
    end
    if parallel then
        local threads = {}
        for i, m in ipairs(targets) do
            local p = shallow(params)
            threads[i] = ngx.thread.spawn(function() return m.t:call(op, p, what) end)
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
        local res, msg, details = m.t:call(op, shallow(params), what)
        results[i] = { res, msg, details }
        if res == nil and i == 1 and details and details.code == "EINVAL" then
            return results, true
        end
    end
    return results
end

-- One chosen endpoint (tokens it signs belong to it).
local function one(self, m, op, params, what)
    local res, msg, details = m.t:call(op, params, what)
    observe(self, { m }, { { res, msg, details } }, op)
    if res == nil and details then details.endpoints = { [m.name] = { code = details.code,
        status = details.status, message = bare(msg), sent = details.sent } } end
    return res, msg, details
end

--- One hub operation over the endpoints it targets (see the module).
function Endpoints:call(op, params, what, names)
    if self.closing then return request.closed(what) end
    if op == "negotiate" then
        local m, msg, d = pick(self, names, what,
            { hub = params.hub, user_id = params.user, claims = params.claims, context = params.context })
        if not m then return nil, msg, d end
        local r, rmsg, rd = m.t:call(op, params, what)
        -- async mode under Entra ID: the endpoint's request object,
        -- reported through this client's queue (on_done, poll)
        if self.async and getmetatable(r) == request.Request then return self:adopt(r, what) end
        return r, rmsg, rd
    end
    if op == "generate_client_token" then
        local m, msg, d = pick(self, names, what, { hub = params.hub, user_id = params.user })
        if not m then return nil, msg, d end
        -- async: the request is this client's (reported by its queue)
        if self.async then return self:call_async(op, params, what, { m }, {}) end
        return one(self, m, op, params, what)
    end
    local targets, skipped, d = targets_of(self, names, what)
    if not targets then return nil, skipped, d end
    if self.async then return self:call_async(op, params, what, targets, skipped) end
    local results, stopped = run(self, targets, op, params, what)
    if stopped then return results[1][1], results[1][2], results[1][3] end
    observe(self, targets, results, op)
    return combine(op, what, targets, skipped, results)
end

--- A listing over the endpoints a call targets: `fetch(names, list)`
-- appends one endpoint's members (names: that endpoint; it returns a
-- result, or in async mode a request object); a failure anywhere fails
-- the whole list, and so does an endpoint skipped as offline (its
-- members are unknown).  At most `limit` members.  Async mode: a request
-- object whose result is the list.
function Endpoints:list(names, what, fetch, limit)
    local targets, skipped, details = targets_of(self, names, what)
    if not targets then return nil, skipped, details end
    local list, eps = {}, {}
    local function from(i)
        local m = targets[i]
        if not m then
            if #skipped > 0 then
                local off = {}
                for k, s in ipairs(skipped) do
                    off[k] = s.name
                    eps[s.name] = { code = "EOFFLINE", message = s.last_error or "offline" }
                end
                return nil, "signalr." .. what .. ": not listed, endpoint(s) offline: "
                    .. concat(off, ", "), { code = "EPARTIAL", endpoints = eps, fetched = #list }
            end
            return list
        end
        local name = m.name
        local r, msg, d = fetch({ name }, list)
        return after(r, msg, d, function()
            eps[name] = true
            if limit and #list >= limit then return list end
            return from(i + 1)
        end, function(fmsg, fd)
            fd = fd or {}
            eps[name] = { code = fd.code, status = fd.status, message = fmsg }
            fd.endpoints, fd.fetched = eps, #list
            return fmsg, fd
        end)
    end
    return from(1)
end

-- ===== async mode: one request object per call, finished once =====

--- Queue a call on every target: one request object, finished once
-- every endpoint answered.
function Endpoints:call_async(op, params, what, targets, skipped)
    local full, fd = self.queue:full(what)
    if full then return nil, full, fd end
    for _, m in ipairs(targets) do
        local n = m.t:pending()
        if n >= m.queue_size then
            return nil, "signalr." .. what .. ": queue full for endpoint " .. m.name .. ": "
                .. n .. " requests are pending there; poll or flush before sending more"
                .. " (nothing was queued)", { code = "EQUEUEFULL" }
        end
    end
    local fan = { op = op, targets = targets, skipped = skipped, results = {}, left = 0, parts = {} }
    self.next_id = self.next_id + 1
    local agg = request.new(self.next_id, what)
    fan.req = agg
    -- req:cancel(): every endpoint's part that is still under way
    agg._cancel = function()
        local any = false
        for _, r in pairs(fan.parts) do
            if r:cancel() then any = true end
        end
        return any
    end
    for i, m in ipairs(targets) do
        local r, msg, d = m.t:call(op, shallow(params), what)
        if r == nil then
            if i == 1 and d and (d.code == "EINVAL" or d.code == "EUNSUPPORTED") then
                return nil, msg, d -- bad input: nothing queued anywhere
            end
            fan.results[i] = { nil, msg, d }
        elseif type(r) == "table" then
            self.parts[r] = { fan, i }
            fan.parts[i] = r
            fan.left = fan.left + 1
        else
            fan.results[i] = { r }
        end
    end
    self.queue:track(agg)
    if fan.left == 0 then self:fan_done(fan) end
    if self.wake then self.wake() end
    return agg
end

--- One endpoint's request object as this client's (negotiate under
-- Entra ID in async mode): its outcome as it is, reported by this
-- client's queue.
function Endpoints:adopt(r, what)
    self.next_id = self.next_id + 1
    local agg = request.new(self.next_id, what)
    agg._cancel = function() return r:cancel() end
    self.parts[r] = { { req = agg, adopted = true }, 1 }
    self.queue:track(agg)
    if self.wake then self.wake() end
    return agg
end

--- An endpoint's request finished (its transport's on_done).
function Endpoints:part_done(req)
    local part = self.parts[req]
    if not part then return end
    self.parts[req] = nil
    local fan = part[1]
    if fan.adopted then
        if req.error then return self.queue:settle(fan.req, nil, req.error, req.details) end
        return self.queue:settle(fan.req, req.result)
    end
    fan.parts[part[2]] = nil
    if req.error then
        fan.results[part[2]] = { nil, req.error, req.details }
    else
        fan.results[part[2]] = { req.result }
    end
    fan.left = fan.left - 1
    if fan.left == 0 then self:fan_done(fan) end
end

--- Every endpoint answered: the call's one outcome.
function Endpoints:fan_done(fan)
    observe(self, fan.targets, fan.results, fan.op)
    local res, msg, d = combine(fan.op, fan.req.op, fan.targets, fan.skipped, fan.results)
    self.queue:settle(fan.req, res, msg, d)
end

-- ===== the event loop (async and persistent mode) =====

-- Seconds until an endpoint's transport or a health check is due (nil: none).
local function due_in(self)
    local t = self.group:due()
    if #self.members > 1 then
        for _, m in ipairs(self.members) do
            if not m.checking then t = loop.earliest(t, max(0, m.next_check - mono())) end
        end
    end
    return t
end

--- Make progress on every endpoint: wait up to `timeout` s, then finish
-- what completed; a request finishes once all its endpoints have.
function Endpoints:poll(timeout)
    local g = self.group
    if self.persistent then
        -- each endpoint's transport reports its own requests
        local wait = timeout or 0
        local due = due_in(self)
        if due and due < wait then wait = due end
        g:step()
        if wait > 0 then
            g:wait(wait)
            g:step()
        end
        return 0
    end
    due_checks_async(self)
    local wait = self.queue:waiting() and 0 or (timeout or 0)
    local due = due_in(self)
    if due and due < wait then wait = due end
    if wait > 0 then g:wait(wait) end
    g:step()
    return self.queue:report()
end

--- Requests pending (persistent mode: summed over the endpoints, with
-- the bytes not yet written and the acks awaited).
function Endpoints:pending()
    if self.persistent then
        local n, bytes, acks = 0, 0, 0
        for _, m in ipairs(self.members) do
            local a, b, c = m.t:pending()
            n, bytes, acks = n + a, bytes + b, acks + c
        end
        return n, bytes, acks
    end
    return self.queue.open
end

--- Until every request finished (persistent mode: every endpoint's
-- connections flushed), at most timeout s in all.
function Endpoints:flush(timeout)
    if not self.persistent then
        return self.queue:drain(function(wait) self:poll(wait) end, timeout)
    end
    local deadline = timeout and (mono() + timeout)
    for _, m in ipairs(self.members) do
        local ok, msg, d = m.t:flush(deadline and max(0, deadline - mono()) or nil)
        if not ok then return nil, msg, d end
    end
    return true
end

--- Every endpoint's confirm (at most timeout s in all): true when each
-- confirmed; else the first failure's message, with `details.endpoints`
-- naming each endpoint's outcome and `lost` summed over them.
function Endpoints:confirm(timeout)
    local deadline = timeout and (mono() + timeout)
    local first, outcomes, lost = nil, {}, 0
    for _, m in ipairs(self.members) do
        local ok, msg, d = m.t:confirm(deadline and max(0, deadline - mono()) or nil)
        outcomes[m.name] = ok or { code = d and d.code, message = msg, lost = d and d.lost }
        if not ok then
            lost = lost + (d and d.lost or 0)
            first = first or { msg, d and d.code }
        end
    end
    if not first then return true end
    return nil, first[1], { code = first[2], endpoints = outcomes, lost = lost }
end

function Endpoints:fds()
    return self.group:fds()
end

function Endpoints:timeout()
    if self.queue:waiting() then return 0 end
    return due_in(self)
end

function Endpoints:pollfd()
    return self.group:fd()
end

-- ===== the rest of the client's methods =====

--- The endpoints and their state: a list of `{ name, type, online,
-- endpoint, client_endpoint, server_endpoint, last_error, checked_at }`.
function Endpoints:endpoints()
    local out = {}
    for i, m in ipairs(self.members) do out[i] = view(m) end
    return out
end

--- Check every endpoint now (`HEAD /api/health` through each endpoint's
-- transport) and record the answers.  true when all are healthy.
function Endpoints:health(opts)
    if opts ~= nil and type(opts) ~= "table" then
        error("signalr.health: opts must be a table, got " .. type(opts), 3)
    end
    local names = util.names(opts and opts.endpoints, "health", 4)
    if not names then
        names = {}
        for i, m in ipairs(self.members) do names[i] = m.name end
    end
    return self:call("health", {}, "health", names)
end

--- What each endpoint's connection string says: `{ endpoints = { ... } }`.
function Endpoints:describe()
    local out = {}
    for i, m in ipairs(self.members) do
        local t = m.t:describe()
        t.name, t.type = m.name, m.type
        out[i] = t
    end
    return { endpoints = out }
end

--- Each endpoint's status (persistent mode: its connections).
function Endpoints:status()
    local out = {}
    for _, m in ipairs(self.members) do out[m.name] = m.t:status() end
    return { endpoints = out }
end

function Endpoints:close()
    if self.closed then return end
    self.closing = true
    local first_err
    for _, m in ipairs(self.members) do
        for _, c in ipairs { m.t, m.probe } do
            local ok, err = pcall(c.close, c)
            if not ok and first_err == nil then first_err = err end
        end
    end
    if self.async then
        local ok, err = pcall(self.queue.report, self.queue)
        if not ok and first_err == nil then first_err = err end
    end
    self.closed = true
    if self.group then self.group:close() end
    if first_err ~= nil then error(first_err, 0) end
end

function Endpoints:__tostring()
    local names = {}
    for i, m in ipairs(self.members) do names[i] = m.name end
    sort(names)
    return "signalr.client (" .. #names .. " endpoints: " .. concat(names, ", ") .. ")"
end

return _M
