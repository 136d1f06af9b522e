--- Handlers of a hub server inside nginx: each invocation (and each
-- connected / disconnected handler) runs in a light thread of its own
-- (`ngx.thread.spawn`) with the cosocket API available, so a handler may
-- sleep, call lua-resty-redis, another HTTP service or the REST API, and
-- a slow one holds no other client.  Same interface as
-- signalr.server.sched (spawn, inside, wait, wake, step, cancel).
--
-- The threads are spawned by a dispatcher timer that hands over to a new
-- one every `ROTATE` threads: nginx keeps the bookkeeping of a timer's
-- threads until the timer's (fake) request ends, so no timer lives
-- forever; a dispatcher's request ends when its last thread does.
-- Handlers are never started from the phase that received the client's
-- message (the server connection's reader), which goes on reading.
-- @module signalr.server.sched_ngx
local ngx = ngx
local semaphore = require "ngx.semaphore"
local cosockets = require "signalr.transport.ngx"

local setmetatable, pairs, select, unpack, pcall, running, min =
    setmetatable, pairs, select, table.unpack or unpack, pcall, coroutine.running, math.min

local _M = {}

--- Threads one dispatcher timer spawns before a new one takes over.
_M.ROTATE = 512

local Sched = {}
Sched.__index = Sched

--- A scheduler; `now` gives the time in seconds (monotonic), `log(level,
-- msg)` reports what cannot be returned (a timer that would not start).
function _M.new(now, log)
    return setmetatable({ now = now, log = log, waiting = {}, count = 0,
                          queue = {}, head = 1, tail = 0, sema = semaphore.new(),
                          gen = 0, closed = false }, Sched)
end

-- One task in its light thread: fn(...), then on_end(ok, ...).
local function run(self, task)
    local function after(ok, ...)
        self.count = self.count - 1
        if task.on_end then
            local eok, err = pcall(task.on_end, ok, ...)
            if not eok then self.log("error", "a handler's end failed: " .. tostring(err)) end
        end
    end
    after(pcall(task.fn, unpack(task, 1, task.n)))
end

local start

-- The dispatcher: tasks into light threads, ROTATE at most, then a new
-- dispatcher (if none can start, this one goes on); it ends with the
-- scheduler.  A premature run (the worker exits) still starts what is
-- queued: the disconnected handlers of a closing server.
local function dispatch(premature, self, gen)
    local spawned = 0
    while self.gen == gen do
        self.beat = self.now()
        local h = self.head
        local task = self.queue[h]
        if task then
            self.queue[h] = nil
            self.head = h + 1
            local ok, err = pcall(ngx.thread.spawn, run, self, task)
            if not ok then
                self.count = self.count - 1
                self.log("error", "cannot start a handler's thread: " .. tostring(err))
            end
            spawned = spawned + 1
            if spawned >= _M.ROTATE and not premature then
                self.gen = gen + 1
                if start(self) then return end
                self.gen, spawned = gen, 0 -- no new timer: this one goes on
            end
        elseif self.closed or premature then
            return
        else
            self.sema:wait(1)
        end
    end
end

start = function(self)
    local ok, err = ngx.timer.at(0, dispatch, self, self.gen)
    if not ok then
        self.log("error", "cannot start the handlers' dispatcher: " .. tostring(err))
        return nil, err
    end
    -- it has not run yet: the watchdog gives it a while
    self.beat = self.now()
    return true
end

--- Called by the server's timer: a dispatcher that has not looked at its
-- queue for `stall` seconds while tasks wait (nginx did not run its timer:
-- lua_max_running_timers reached, or its start failed) is replaced.
function Sched:watch(stall)
    if self.closed or self.head > self.tail then return end
    if self.now() - (self.beat or 0) < (stall or 1) then return end
    self.log("warn", "the handlers' dispatcher stalled (is lua_max_running_timers too low?): starting another")
    self.gen = self.gen + 1
    start(self)
end

--- Start the dispatcher (the server's start does).
function Sched:start()
    if self.started then return true end
    self.started = true
    return start(self)
end

--- Run fn(...) in a light thread of its own; on_end(ok, ...) gets what it
-- returned (ok true) or the error it raised.
function Sched:spawn(on_end, fn, ...)
    local task = { on_end = on_end, fn = fn, n = select("#", ...), ... }
    self.count = self.count + 1
    local t = self.tail + 1
    if t < self.head then t = self.head end
    self.tail = t
    self.queue[t] = task
    if self.sema:count() < 1 then self.sema:post(1) end
end

--- True where nginx lets the caller wait (a handler's thread, a timer, the
-- rewrite, access and content phases).
function Sched.inside()
    return cosockets.usable() and true or false
end

-- nginx's timers take milliseconds in an int: waits are cut in slices.
local SLICE = 60

--- Wait until cond() is true or `timeout` seconds pass: true, or nil +
-- "timeout".  With cond nil, wait for Sched:wake(co, ...) and return its
-- values.  Sched:cancel ends every wait with nil, why.
function Sched:wait(cond, timeout)
    if not cosockets.usable() then
        error("signalr.server: this call waits, and nginx cannot wait in this phase: call it from a"
            .. " handler, a timer or a rewrite, access or content phase", 3)
    end
    if self.closed then return nil, "closed" end
    if cond and cond() then
        -- other threads run first, as the wait promises
        ngx.sleep(0)
        return true
    end
    local co = running()
    local w = { cond = cond, sema = semaphore.new() }
    self.waiting[co] = w
    local deadline = timeout and (self.now() + timeout)
    while true do
        if w.values then
            self.waiting[co] = nil
            return unpack(w.values, 1, w.values.n)
        end
        if cond and cond() then
            self.waiting[co] = nil
            return true
        end
        local left = deadline and (deadline - self.now())
        if left and left <= 0 then
            self.waiting[co] = nil
            return nil, "timeout"
        end
        -- a condition is looked at every 50 ms (and on every message)
        w.sema:wait(min(left or SLICE, cond and 0.05 or SLICE))
    end
end

--- Resume a task waiting for a wake with values (an answer came).
function Sched:wake(co, ...)
    local w = self.waiting[co]
    if w and not w.cond and not w.values then
        w.values = { n = select("#", ...), ... }
        w.sema:post(1)
    end
end

--- Wake the tasks whose condition holds (after a message came).
function Sched:step()
    for _, w in pairs(self.waiting) do
        if w.cond and w.sema:count() < 1 then
            local ok, yes = pcall(w.cond)
            if not ok or yes then w.sema:post(1) end
        end
    end
    return nil
end

--- End every wait (nil, why); the dispatcher starts what is queued (the
-- disconnected handlers of a closing server), then ends.
function Sched:cancel(why)
    for _, w in pairs(self.waiting) do
        if not w.values then
            w.values = { n = 2, nil, why }
            w.sema:post(1)
        end
    end
    self.closed = true
    self.sema:post(1)
end

return _M
