--- The asynchronous transport (option `async = true`): calls queue on
-- libcurl's multi interface (keep-alive, parallel connections) and
-- return a request object at once; the program drives progress with
-- `poll` (or an event loop, through `pollfd`, `fds` and `timeout`) and
-- learns each outcome exactly once, through the request and `on_done`.
-- Token and key fetches of Microsoft Entra ID go through the same queue,
-- so a call waiting for a token never blocks.
-- @module signalr.transport.async
local base = require "signalr.transport.base"
local auth_mod = require "signalr.auth"
local request = require "signalr.request"

local setmetatable, pcall, error, type = setmetatable, pcall, error, type
local send_params = base.send_params
local new_request = request.new

local _M = {}

local Async = { loop = true }
_M.Async = Async

--- An asynchronous transport.
-- @tparam userdata handle the core's client
-- @tparam table info `handle:info()`
-- @tparam table o the client's options, defaults filled in (`on_done`,
--   `queue_size`)
-- @tparam[opt] table auth Entra ID (signalr.auth)
-- @tparam[opt] function wake called when a request is queued (an event
--   loop that idles should poll soon)
function _M.new(handle, info, o, auth, wake)
    local self = setmetatable({
        handle = handle, info = info, o = o, auth = auth, wake = wake,
        queue = request.queue(o.on_done, o.queue_size),
        -- requests on the wire by core id, and their operations where
        -- they are not the request's `op` (two maps: no table more per
        -- request); under Entra ID, by request, what a
        -- retry with a new token needs: { token, submit, retried }
        inflight = {}, ops = {}, entra = {},
        -- poll's outcomes, flat: id, value, id, value, ... (reused)
        buf = {},
        -- identity and key fetches of ours by core id: their continuations
        handlers = {},
    }, Async)
    -- one identity request through the queue (signalr.auth's submit)
    self.submit = function(spec, cb)
        local id, msg, d = handle:submit_fetch(spec.method, spec.url, spec.headers, spec.body,
            spec.content_type)
        if not id then return nil, msg, d end
        self.handlers[id] = function(out)
            if out.error then return cb(nil, out.error, out.details) end
            cb(out.status, out.body)
        end
        return true
    end
    return self
end

local function woken(self)
    if self.wake then self.wake() end
end

-- req:cancel() of this transport's requests
local function cancel(req)
    return req._t:cancel_request(req)
end

local function cancel_now(req)
    local self = req._t
    self.queue:canceled(req)
    woken(self)
    return true
end

--- End one request with ECANCELED (signalr.request's `req:cancel()`):
-- one waiting for an Entra ID token at once (nothing was sent); one the
-- core carries by the core (it says whether it went out).
-- @treturn boolean whether it was canceled (false: it had finished)
function Async:cancel_request(req)
    local rec = self.entra[req]
    if rec and self.inflight[req.id] ~= req then
        -- waiting for a token: nothing went out
        rec.canceled = true
        self.entra[req] = nil
        return cancel_now(req)
    end
    if req.id ~= 0 and self.inflight[req.id] == req and self.handle:cancel(req.id) then
        woken(self)
        return true
    end
    return false
end

--- Queue one hub operation (after signalr.transport.base's checks): a
-- request object | nil, message, details (bad input, a full queue:
-- nothing was queued).
function Async:run(op, params, what)
    local full, fd = self.queue:full(what)
    if full then return nil, full, fd end
    if not self.auth then
        -- AccessKey clients: the core signs; bad input fails here,
        -- nothing queued
        local id, msg, details = self.handle:submit(op, params)
        if not id then return nil, "signalr." .. what .. ": " .. msg, details end
        local req = self.queue:track(new_request(id, what, self, cancel))
        self.inflight[id], self.ops[id] = req, op
        woken(self)
        return req
    end
    return self:call_entra(op, params, what)
end

--- A single send (the hub calls this, without a parameter table, when a
-- call names no endpoints): as `call` would, with the fields as
-- arguments.  Under Entra ID, or once closed, through `call`.
-- @tparam string op "broadcast", "to_user", "to_group" or "to_connection"
-- @tparam string hub
-- @tparam string target
-- @tparam string text the arguments' JSON text
-- @tparam[opt] string id the user, group or connection
-- @tparam[opt] table excluded connection ids
-- @return a request object | nil, message, details
function Async:send_data(op, hub, target, text, id, excluded)
    if self.auth or self.closing then
        return self:call(op, send_params(op, hub, target, text, id, excluded), op)
    end
    local q = self.queue
    if q.size and q.open >= q.size then return nil, q:full(op) end
    local rid, msg, details = self.handle:submit_send(op, hub, target, text, id, excluded)
    if not rid then return nil, "signalr." .. op .. ": " .. msg, details end
    q.open = q.open + 1
    local req = new_request(rid, op, self, cancel)
    self.inflight[rid] = req -- (no ops entry: the operation is req.op)
    if self.wake then self.wake() end
    return req
end

-- The Entra ID half of call (apart, so that the AccessKey path holds no
-- closures: LuaJIT compiles it then).
function Async:call_entra(op, params, what)
    local a = self.auth
    local req = new_request(0, what, self, cancel)
    local rec = {}
    -- failures while this call runs are its results (bad input, no token
    -- from a provider); later ones, the request's
    local now, refused = true, nil
    rec.submit = function(tok, msg, details)
        if rec.canceled then return end
        if self.closing then
            self.entra[req] = nil
            return self.queue:finish(req, nil, request.CLOSED, { code = "ECANCELED", sent = false })
        end
        local id
        if tok then
            params.bearer = tok
            id, msg, details = self.handle:submit(op, params)
        end
        if not id then
            self.entra[req] = nil
            if now then refused = { msg, details } return end
            return self.queue:finish(req, nil, msg, details)
        end
        req.id, rec.token = id, tok
        self.inflight[id], self.ops[id] = req, op
    end
    if not a.provider and not a:peek(auth_mod.now()) then
        -- the token is still to come: check the input now, send it later
        params.bearer = "-"
        local ok, msg, details = self.handle:build(op, params)
        params.bearer = nil
        if not ok then return nil, "signalr." .. what .. ": " .. msg, details end
    end
    self.entra[req] = rec
    a:with_token(rec.submit, self.submit)
    now = false
    if refused then return nil, "signalr." .. what .. ": " .. refused[1], refused[2] end
    self.queue:track(req)
    woken(self)
    return req
end

--- negotiate: local with an AccessKey; under Entra ID a request object
-- whose `result` is `{ url, accessToken }` once the temporary key came.
function Async:negotiate(p)
    if self.info.has_key then return base.sign(self.handle, p) end
    if self.closing then return request.closed("negotiate") end
    local req = self.queue:track(new_request(0, "negotiate", self, cancel_now))
    woken(self)
    self.auth:when_key(self.info, self.submit, function()
        local res, msg, details = self.auth:use_key(self.handle, self.info)
        if res then res, msg, details = base.sign(self.handle, p) end
        if res then return self.queue:finish(req, res) end
        self.queue:finish(req, nil, (msg:gsub("^signalr%.negotiate: ", "")), details)
    end)
    return req
end

--- Make progress: wait up to `timeout` seconds for network activity,
-- then finish what completed, calling `on_done` for each.
-- @treturn number how many requests finished in this call
function Async:poll(timeout)
    -- the reused list is this call's while it reads it (a poll from a
    -- callback below gets one of its own)
    local buf = self.buf or {}
    self.buf = nil
    local n, msg = self.handle:poll(self.queue:waiting() and 0 or timeout or 0, buf)
    if not n then
        self.buf = buf
        return nil, "signalr.poll: " .. msg
    end
    local a, q = self.auth, self.queue
    local inflight, ops, handlers = self.inflight, self.ops, self.handlers
    for k = 1, 2 * n, 2 do
        -- an outcome: its id, then a result, or a table (a failure:
        -- error, details; a fetch of ours: status, body)
        local id, v = buf[k], buf[k + 1]
        buf[k + 1] = false -- holds no body
        local handler = handlers[id]
        if handler then
            -- a token or key fetch of ours: its waiters go on
            handlers[id] = nil
            handler(v)
        else
            local req, op = inflight[id], ops[id]
            inflight[id] = nil
            if op then ops[id] = nil else op = req.op end
            if type(v) ~= "table" then
                if a then self.entra[req] = nil end
                q:settle(req, v)
            else
                local rec = a and self.entra[req]
                if rec and a.cred and v.details and v.details.status == 401
                        and not rec.retried and not self.closing then
                    -- a refused Entra ID token: once more with a new one (a
                    -- 401 did no work, so nothing is duplicated)
                    rec.retried = true
                    a:invalidate(rec.token)
                    a:with_token(rec.submit, self.submit)
                else
                    if rec then self.entra[req] = nil end
                    q:finish(req, nil, auth_mod.explain(a, op, v.error, v.details), v.details)
                end
            end
        end
    end
    self.buf = buf
    return q:report()
end

--- Requests queued and not yet reported.
function Async:pending()
    return self.queue.open
end

--- Wait until every queued request has finished, at most `timeout` s.
function Async:flush(timeout)
    return self.queue:drain(function(wait) self:poll(wait) end, timeout)
end

--- A send's outcome is the service's answer: waiting for them all confirms.
function Async:confirm(timeout)
    return self:flush(timeout)
end

--- Every socket and its interest (libcurl's).
function Async:fds()
    return self.handle:fds()
end

--- Seconds until `poll` is due (0: now), or nil.
function Async:timeout()
    if self.queue:waiting() then return 0 end
    return self.handle:timeout()
end

--- One descriptor for every socket (an epoll set), or nil.
function Async:pollfd()
    return self.handle:pollfd()
end

--- End what is in flight with ECANCELED (callbacks run), then release.
function Async:close()
    if self.closed then return end
    -- from here on calls are refused (each gets its ECANCELED outcome at
    -- once), also those an on_done callback makes while we close
    self.closing = true
    local first_err
    repeat
        self.handle:cancel()
        local ok, err = pcall(self.poll, self, 0)
        if not ok and first_err == nil then first_err = err end
    until self.handle:pending() == 0 and not self.queue:waiting()
    self.closed = true
    self.handle:close()
    -- a callback's error surfaces after the transport is closed for good
    if first_err ~= nil then error(first_err, 0) end
end

base.extend(Async)
return _M
