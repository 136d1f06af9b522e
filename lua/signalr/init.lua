--- lua-signalr: Azure SignalR Service for Lua.
-- `signalr.new` parses a connection string and returns a client
-- (signalr.client); `client:hub` returns hub objects (signalr.hub) whose
-- methods call the service, over the transport the options choose
-- (signalr.transport).
-- @module signalr
local core = require "signalr.core"
local json = require "signalr.json"
local options = require "signalr.options"
local client = require "signalr.client"
local dispatch = require "signalr.server.dispatch"

local _M = { _NAME = "signalr", _VERSION = core._VERSION }

--- Pass `signalr.null` in an argument list to send a JSON null.
_M.null = json.null

--- The options' defaults (signalr.options).
_M.DEFAULTS = options.DEFAULTS

--- Create a client.  No I/O happens here.
-- @function new
-- @tparam string|table opts a connection string, or a table with
--   `connection_string` and the options listed in the README
-- @treturn[1] client
-- @treturn[2] nil
-- @treturn[2] string message ("signalr.new: ...")
-- @treturn[2] table details (`code` is "ECONNSTR" or "EINVAL")
-- @raise on a wrong type, an unknown option or a missing connection string
_M.new = client.new

--- The client class (signalr.client).
_M.Client = client.Client

--- Make a hub server behind the service (Default mode): see
-- signalr.server (loaded on first use: a client does not pay for it).
-- @function server
-- @tparam table opts `connection_string`, `hub` or `hubs`, ...
-- @treturn[1] server
-- @treturn[2] nil, message, details
setmetatable(_M, { __index = function(t, k)
    if k == "server" then
        local new = require("signalr.server").new
        rawset(t, k, new)
        return new
    end
end })

--- An error whose message reaches the client, as a HubException's does
-- in ASP.NET Core: `error(signalr.hub_error("bad move"))` in a handler.
-- @function hub_error
-- @tparam string message
_M.hub_error = dispatch.hub_error

--- Return `signalr.stream(iter[, opts])` from a handler to stream items
-- to a client's `connection.stream(...)`: `iter()` gives each next item
-- (nil ends the stream); `opts.on_cancel()` runs once if the client
-- cancels.
-- @function stream
_M.stream = dispatch.stream

return _M
