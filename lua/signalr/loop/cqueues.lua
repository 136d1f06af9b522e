--- Drive an async client from a cqueues controller.
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
local type, error = type, error

local _M = {}

--- Attach client to a cqueues controller.
-- @param client an async signalr client
-- @param cq a cqueues controller
-- @treturn table handle with `detach()`
function _M.attach(client, cq)
    if type(client) ~= "table" or type(client.pollfd) ~= "function" then
        error("signalr.loop.cqueues.attach: expected a signalr client", 2)
    end
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
        client._adapter = nil
        wake:signal()
    end
    function handle.wake() wake:signal() end
    client._adapter = handle
    cq:wrap(function()
        while attached do
            cqueues.poll(client, wake)
            if attached then client:poll(0) end
        end
    end)
    return handle
end

return _M
