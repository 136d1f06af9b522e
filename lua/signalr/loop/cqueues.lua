--- Drive an async or persistent client (or any object of the event-loop
-- contract, signalr.loop) from a cqueues controller.
--
--     local cqueues = require "cqueues"
--     local cq = cqueues.new()
--     local client = signalr.new { connection_string = cs, async = true }
--     local handle = require("signalr.loop.cqueues").attach(client, cq)
--     cq:wrap(function() ... hub:broadcast(...) ... end)
--     assert(cq:loop())
--
-- The client is itself pollable (`pollfd`, `events`, `timeout`), so one
-- coroutine waits with `cqueues.poll(client, wake)` and polls it; a call
-- queued while that coroutine waits signals `wake`.  `handle:detach()`
-- (also done by `client:close()`) ends the coroutine.  Linux (epoll).
-- cqueues is not a dependency of the rock: install it (Debian:
-- lua-cqueues) to use this module.
-- @module signalr.loop.cqueues
local contract = require "signalr.loop"

local error = error

local _M = {}

--- Attach client to a cqueues controller.
-- @param client an async or persistent signalr client, or any object with
--   `poll`, `pollfd` and `timeout` (and optionally `events`, `set_loop`)
-- @param cq a cqueues controller
-- @treturn table handle with `detach()`
function _M.attach(client, cq)
    contract.check(client, "signalr.loop.cqueues.attach")
    local cqueues = require "cqueues"
    local condition = require "cqueues.condition"
    if not client:pollfd() then
        error("signalr.loop.cqueues.attach: this platform has no pollable client descriptor"
            .. " (epoll); drive client:fds() and client:timeout() yourself", 2)
    end
    local wake = condition.new()
    local handle, attached = {}, true
    function handle.detach()
        if not attached then return end
        attached = false
        if client.set_loop then client:set_loop(nil) end
        wake:signal()
    end
    function handle.wake() wake:signal() end
    if client.set_loop then client:set_loop(handle) end
    -- cqueues asks a pollable for its events: "r" on the one descriptor
    local pollable = client
    if not client.events then
        pollable = { pollfd = function() return client:pollfd() end,
                     timeout = function() return client:timeout() end,
                     events = function() return "r" end }
    end
    cq:wrap(function()
        while attached do
            cqueues.poll(pollable, wake)
            if attached then client:poll(0) end
        end
    end)
    return handle
end

return _M
