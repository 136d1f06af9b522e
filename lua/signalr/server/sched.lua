--- Coroutines of a hub server: each invocation (and each client's
-- connected and disconnected handler) runs in one, so a handler that waits
-- (for an acknowledgement, an async REST call, a client's result) lets
-- other clients' invocations go on.  A coroutine waits either for a wake
-- by name (an acknowledgement arrived) or for a condition the scheduler
-- checks on every step, each with a deadline.
-- @module signalr.server.sched
local coroutine, setmetatable, pairs, ipairs, error, select, unpack =
    coroutine, setmetatable, pairs, ipairs, error, select, table.unpack or unpack
local create, resume, yield, running, status = coroutine.create, coroutine.resume,
    coroutine.yield, coroutine.running, coroutine.status

local _M = {}

local Sched = {}
Sched.__index = Sched

--- A scheduler; `now` gives the time in seconds (monotonic).
function _M.new(now)
    return setmetatable({ now = now, waiting = {}, tasks = {}, count = 0 }, Sched)
end

-- Run co until it yields or ends; an end calls its task's on_end(ok, ...)
-- (a coroutine of the caller's own that ends here has no task: an error
-- it raises goes to on_orphan).
local function after(self, co, task, ok, ...)
    if status(co) == "dead" then
        self.waiting[co] = nil
        if task then
            self.tasks[co] = nil
            self.count = self.count - 1
            if task.on_end then task.on_end(ok, ...) end
        elseif not ok and self.on_orphan then
            self.on_orphan(...)
        end
    end
end

local function step(self, co, ...)
    return after(self, co, self.tasks[co], resume(co, ...))
end

--- Start fn(...) in a coroutine of its own; on_end(ok, ...) gets what it
-- returned (ok true) or the error it raised (ok false).
function Sched:spawn(on_end, fn, ...)
    local co = create(fn)
    self.tasks[co] = { on_end = on_end }
    self.count = self.count + 1
    step(self, co, ...)
    return co
end

-- The running coroutine, nil in the main one (5.1 gives nil there,
-- later versions the main coroutine and true).
local function current()
    local co, main = running()
    if co == nil or main then return nil end
    return co
end

--- True when called from a coroutine that can wait here: one of this
-- scheduler's, or the caller's own (resumed by the scheduler when its
-- wait ends).
function Sched.inside()
    return current() ~= nil
end

--- Wait (inside a task) until cond() is true or `timeout` seconds pass:
-- true, or nil + "timeout".  With cond nil, wait for Sched:wake(co, ...)
-- and return its values (nil + "timeout" past the deadline).
function Sched:wait(cond, timeout)
    local co = current()
    if not co then
        error("signalr.server: this call waits, and only a coroutine can wait: call it from a"
            .. " handler, or from a coroutine of your own (server:poll() resumes it)", 3)
    end
    if self.closed then return nil, "closed" end
    local w = { cond = cond, deadline = timeout and (self.now() + timeout) }
    self.waiting[co] = w
    return yield()
end

--- Resume a waiting task with values (a wake by name: an answer came).
function Sched:wake(co, ...)
    if self.waiting[co] then
        self.waiting[co] = nil
        step(self, co, ...)
    end
end

--- Resume tasks whose condition holds or whose deadline passed; returns
-- the seconds until the nearest deadline (nil: none; 0.05 while a
-- condition is polled).
function Sched:step()
    local t, next_in = self.now(), nil
    local ready = {}
    for co, w in pairs(self.waiting) do
        if w.cond and w.cond() then
            ready[#ready + 1] = { co, true }
        elseif w.deadline and t >= w.deadline then
            ready[#ready + 1] = { co, nil, "timeout" }
        else
            local d = w.deadline and (w.deadline - t)
            if w.cond then d = d and (d < 0.05 and d or 0.05) or 0.05 end
            if d and (not next_in or d < next_in) then next_in = d end
        end
    end
    for _, r in ipairs(ready) do
        local co = r[1]
        if self.waiting[co] then
            self.waiting[co] = nil
            step(self, co, select(2, unpack(r, 1, 3)))
        end
    end
    return next_in
end

--- End every waiting task: each wait returns nil + why (and a later
-- wait at once with nil, "closed").
function Sched:cancel(why)
    self.closed = true
    for co in pairs(self.waiting) do
        self.waiting[co] = nil
        step(self, co, nil, why)
    end
end

return _M
