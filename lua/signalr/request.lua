--- Request objects and the queue that reports them: what a call returns
-- when its outcome comes later (async mode; persistent mode while no
-- server connection is up; several endpoints in async mode).
--
-- A request is `{ id, op, done }`; once finished, `done` is true and it
-- holds `result` (what the blocking call returns: true, a boolean for
-- checks, a list, a token, invoke's table) or `error` + `details`;
-- `req:cancel()` ends it with ECANCELED.  A request may carry on (a reply
-- to read, a next page: `after`) before its one outcome.  A queue counts
-- the requests it handed out, keeps the finished ones until `report()`
-- marks them done and calls `on_done` for each, in order, exactly once.
-- The error texts every transport shares live here.
-- @module signalr.request
local core = require "signalr.core"

local error, pcall, setmetatable, getmetatable, tostring =
    error, pcall, setmetatable, getmetatable, tostring
local max, min = math.max, math.min
local mono = core.monotonic

local _M = {}

--- What a closed client answers (nothing was sent).
_M.CLOSED = "the client is closed (nothing was sent)"

--- What a request canceled before anything went out answers.
_M.CANCELED = "canceled: with req:cancel() before the request was sent"

--- The failure of a call made after close(): nil, message, details.
-- @tparam string what the method, for the message
function _M.closed(what)
    return nil, "signalr." .. what .. ": " .. _M.CLOSED, { code = "ECANCELED", sent = false }
end

local Request = {}
Request.__index = Request
_M.Request = Request

--- Cancel the request: unless it finished already, it ends with
-- `ECANCELED` and that is its one outcome (reported, with `on_done`, by
-- the next poll).  `details.sent` says whether the request may have
-- reached the service (true: it went out, wholly or in part, and may
-- have been delivered; false: nothing was sent).
-- @treturn boolean true when canceled; false when it had finished (its
--   outcome stands) or cannot be canceled
function Request:cancel()
    if self.done or self._over then return false end
    if self._inner then return self._inner:cancel() end
    local c = self._cancel
    if not c then return false end
    return c(self) and true or false
end

function Request:__tostring()
    return "signalr.request #" .. self.id .. " (" .. self.op .. ", "
        .. (self.done and (self.error and "failed" or "done") or "pending") .. ")"
end

--- A new request object (not counted by any queue yet).
-- @tparam number id
-- @tparam string what the method it stands for ("broadcast", ...)
-- @param[opt] t the transport that carries it (`req._t`)
-- @tparam[opt] function cancel what `req:cancel()` calls (`req._cancel`)
function _M.new(id, what, t, cancel)
    -- every field a send's request gets, in one constructor: its table is
    -- made at its final size (the nil fields count; no resize later)
    return setmetatable({ id = id, op = what, done = false, _t = t, _cancel = cancel,
                          _over = false, result = nil }, Request)
end

local Queue = {}
Queue.__index = Queue

--- A queue of requests.
-- @tparam[opt] function on_done called with each finished request
-- @tparam[opt] number size most requests pending at once (`full()`)
function _M.queue(on_done, size)
    return setmetatable({ open = 0, ready = {}, seq = 0, on_done = on_done, size = size }, Queue)
end

--- Why a call cannot queue while `size` requests are pending: message,
-- details; nil when there is room.
function Queue:full(what)
    if self.size and self.open >= self.size then
        return "signalr." .. what .. ": queue full: " .. self.open
            .. " requests are pending; poll or flush before sending more", { code = "EQUEUEFULL" }
    end
end

--- Count req as pending (its outcome will be reported).
function Queue:track(req)
    self.open = self.open + 1
    return req
end

--- A new pending request with the queue's next id.
function Queue:request(what)
    self.seq = self.seq + 1
    return self:track(_M.new(self.seq, what))
end

--- req finished: its result, or its error ("signalr.<op>: " is put
-- before err); reported by the next `report()`.
function Queue:finish(req, result, err, details)
    if err then
        return self:settle(req, nil, "signalr." .. req.op .. ": " .. err, details)
    end
    return self:settle(req, result)
end

--- What a call gives when its answer needs more work once it arrived
-- (a reply body to read, a next page to fetch): with a request object
-- `r`, `fn` runs on its result when it succeeds and what `fn` returns
-- (a value, nil + message + details, or another request object that
-- carries on) becomes `r`'s outcome, reported once; otherwise `fn` runs
-- now on `r`.  `nil, msg, details` pass through.
-- @param r a result, a request object, or nil
-- @tparam[opt] string msg
-- @tparam[opt] table details
-- @tparam function fn called with the result
-- @tparam[opt] function on_fail called with a failure's message and
--   details: returns the message and details to report instead
-- @return what `fn` returns, or r (a request object)
function _M.after(r, msg, details, fn, on_fail)
    if r == nil then
        if on_fail then return nil, on_fail(msg, details) end
        return nil, msg, details
    end
    if getmetatable(r) == Request and not r.done then
        local pc, pf = r._chain, r._on_fail
        if not pc then
            r._chain, r._on_fail = fn, on_fail
            return r
        end
        -- continued already: this continuation follows that one
        r._chain = function(v)
            local a, b, c = pc(v)
            return _M.after(a, b, c, fn, on_fail)
        end
        r._on_fail = function(m, d)
            if pf then m, d = pf(m, d) end
            if on_fail then return on_fail(m, d) end
            return m, d
        end
        return r
    end
    return fn(r)
end

-- Run req's continuation on its result: result | nil, msg, details |
-- a request object (pending) that carries on.
local function continued(req, result)
    local fn = req._chain
    req._chain = nil
    local ok, r, msg, details = pcall(fn, result)
    if not ok then
        return nil, "signalr." .. req.op .. ": " .. tostring(r), { code = "EREPLY" }
    end
    return r, msg, details
end

--- req finished with a complete message (already "signalr.<op>: ...").
function Queue:settle(req, result, msg, details)
    -- one outcome each: a late answer after a cancel is dropped
    if req._over or req.done then return end
    if not msg and not req._chain and not req._parent then
        -- the common case: a result, nothing to continue or hand on
        if req._on_fail then req._on_fail = nil end
        req.result, req._over = result, true
        local ready = self.ready
        ready[#ready + 1] = req
        return
    end
    if msg and req._on_fail then
        msg, details = req._on_fail(msg, details)
    end
    req._on_fail = nil
    if req._chain and not msg then
        result, msg, details = continued(req, result)
        if getmetatable(result) == Request and result ~= req then
            local inner = result
            if inner.done or inner._over then
                -- finished already: its outcome is req's (and it is not
                -- reported on its own)
                if not inner.done then inner._silent = true end
                result, msg, details = inner.result, inner.error, inner.details
            else
                -- inner's outcome becomes req's: it is not reported on
                -- its own, nor counted twice
                inner._parent, req._inner = req, inner
                self.open = self.open - 1
                return
            end
        end
    end
    local parent = req._parent
    if parent then
        req._parent, req.done, parent._inner = nil, true, nil
        if msg then req.error, req.details = msg, details else req.result = result end
        return self:settle(parent, result, msg, details)
    end
    if msg then
        req.error, req.details = msg, details
    else
        req.result = result
    end
    req._over = true
    local ready = self.ready
    ready[#ready + 1] = req
end

--- req was canceled before anything was sent: it finishes with
-- ECANCELED (reported by the next `report()`).
function Queue:canceled(req)
    return self:finish(req, nil, _M.CANCELED, { code = "ECANCELED", sent = false })
end

--- Report what finished, in order: `done`, then `on_done`.  Raises the
-- first error an `on_done` raised, after every one was reported.
-- @treturn number how many were reported
function Queue:report()
    local ready, first_err = self.ready, nil
    self.ready = {}
    local on_done = self.on_done
    for i = 1, #ready do
        local req = ready[i]
        req.done = true
        self.open = self.open - 1
        if on_done and not req._silent then
            local ok, err = pcall(on_done, req)
            if not ok and not first_err then first_err = err end
        end
    end
    if first_err then error(first_err, 0) end
    return #ready
end

--- Finished and not yet reported (a poll is due at once)?
function Queue:waiting()
    return #self.ready > 0
end

--- Wait until no request is pending, driving `poll(seconds)` (at most
-- `timeout` seconds in all; nil: no limit).
-- @treturn[1] true
-- @treturn[2] nil, message, details (`code` "ETIMEDOUT", `pending` = n)
function Queue:drain(poll, timeout)
    local deadline = timeout and mono() + timeout
    while self.open > 0 do
        if deadline and mono() >= deadline then
            local n = self.open
            return nil, "signalr.flush: " .. n .. " requests still pending after "
                .. timeout .. " s", { code = "ETIMEDOUT", pending = n }
        end
        local wait = 0.05
        if deadline then wait = max(0, min(wait, deadline - mono())) end
        poll(wait)
    end
    return true
end

return _M
