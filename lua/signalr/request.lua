--- Request objects and the queue that reports them: what a call returns
-- when its outcome comes later (async mode; persistent mode while no
-- server connection is up; several endpoints in async mode).
--
-- A request is `{ id, op, done }`; once finished, `done` is true and it
-- holds `result` (true, or a boolean for checks) or `error` + `details`.
-- A queue counts the requests it handed out, keeps the finished ones
-- until `report()` marks them done and calls `on_done` for each, in
-- order, exactly once.  The error texts every transport shares live here.
-- @module signalr.request
local core = require "signalr.core"

local error, pcall, setmetatable = error, pcall, setmetatable
local max, min = math.max, math.min
local mono = core.monotonic

local _M = {}

--- What a closed client answers (nothing was sent).
_M.CLOSED = "the client is closed (nothing was sent)"

--- The failure of a call made after close(): nil, message, details.
-- @tparam string what the method, for the message
function _M.closed(what)
    return nil, "signalr." .. what .. ": " .. _M.CLOSED, { code = "ECANCELED", sent = false }
end

local Request = {}
Request.__index = Request
_M.Request = Request

function Request:__tostring()
    return "signalr.request #" .. self.id .. " (" .. self.op .. ", "
        .. (self.done and (self.error and "failed" or "done") or "pending") .. ")"
end

--- A new request object (not counted by any queue yet).
-- @tparam number id
-- @tparam string what the method it stands for ("broadcast", ...)
function _M.new(id, what)
    return setmetatable({ id = id, op = what, done = false }, Request)
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

--- req finished with a complete message (already "signalr.<op>: ...").
function Queue:settle(req, result, msg, details)
    if msg then
        req.error, req.details = msg, details
    else
        req.result = result
    end
    local ready = self.ready
    ready[#ready + 1] = req
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
        if on_done then
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
