--- Drive an async or persistent client (or any object of the event-loop
-- contract, signalr.loop) from a luv (libuv) event loop.
--
--     local uv = require "luv"
--     local client = signalr.new { connection_string = cs, async = true,
--                                  on_done = function(req) ... end }
--     local handle = require("signalr.loop.luv").attach(client, uv)
--     uv.run()
--
-- One poll handle watches the client's single descriptor (`pollfd()`, an
-- epoll set: sockets libcurl opens and closes, even reused fd numbers,
-- never reach libuv) and one timer follows `client:timeout()`; a call
-- queued while the loop idles wakes it.  `handle:detach()` (also done by
-- `client:close()`) stops and closes both; as libuv requires, let the
-- loop run once more (`uv.run("nowait")`) before the process exits, so
-- the closes complete.  Linux (epoll).  luv is not a dependency of the
-- rock: install it (Debian: lua-luv) to use this module.
-- @module signalr.loop.luv
local contract = require "signalr.loop"

local error, math = error, math

local _M = {}

--- Attach client to a luv loop.
-- @param client an async or persistent signalr client, or any object with
--   `poll`, `pollfd` and `timeout` (and optionally `set_loop`)
-- @param uv the luv module (its default loop is used)
-- @treturn table handle with `detach()`
function _M.attach(client, uv)
    contract.check(client, "signalr.loop.luv.attach")
    uv = uv or require "luv"
    local fd = client:pollfd()
    if not fd then
        error("signalr.loop.luv.attach: this platform has no pollable client descriptor"
            .. " (epoll); drive client:fds() and client:timeout() yourself", 2)
    end
    local poll, timer = uv.new_poll(fd), uv.new_timer()
    local handle, attached = {}, true
    local step
    local function arm()
        timer:stop()
        local t = client:timeout()
        if t then timer:start(math.max(0, math.ceil(t * 1000)), 0, step) end
    end
    step = function()
        if not attached then return end
        client:poll(0)
        if attached then arm() end
    end
    poll:start("r", step)
    function handle.detach()
        if not attached then return end
        attached = false
        if client.set_loop then client:set_loop(nil) end
        poll:stop()
        poll:close()
        timer:stop()
        timer:close()
    end
    -- a call queued from outside the loop's callbacks: step soon
    function handle.wake()
        if attached then
            timer:stop()
            timer:start(0, 0, step)
        end
    end
    if client.set_loop then client:set_loop(handle) end
    arm()
    return handle
end

return _M
