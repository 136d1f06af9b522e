--- The client: `signalr.new` makes one, `client:hub(name)` makes hubs, and
-- every other method hands the work to the client's one transport
-- (signalr.transport: blocking, async, nginx, persistent, or several
-- endpoints).  Programmer errors (a wrong type, a method of a mode the
-- client is not in) raise here; everything else is the transport's.
-- @module signalr.client
local core = require "signalr.core"
local options = require "signalr.options"
local transport = require "signalr.transport"
local hub_mod = require "signalr.hub"

local type, error, pcall, tostring, setmetatable, getmetatable =
    type, error, pcall, tostring, setmetatable, getmetatable

local _M = {}

local Client = {}
Client.__index = Client
_M.Client = Client

--- Create a client.  No I/O happens here.
-- @tparam string|table opts a connection string, or a table with
--   `connection_string` and the options listed in the README
-- @treturn[1] client
-- @treturn[2] nil
-- @treturn[2] string message ("signalr.new: ...")
-- @treturn[2] table details (`code` is "ECONNSTR" or "EINVAL")
-- @raise on a wrong type, an unknown option or a missing connection string
function _M.new(opts)
    if type(opts) == "string" then
        opts = { connection_string = opts }
    elseif type(opts) ~= "table" then
        error("signalr.new: expected a connection string or an options table, got "
            .. type(opts), 2)
    end
    options.check(opts, 2)
    local self = setmetatable({}, Client)
    -- an event loop idling on the client wakes when a call queues
    local function wake()
        local a = self._adapter
        if a then a.wake() end
    end
    local t, msg, details
    if opts.endpoints ~= nil then
        -- (loaded by the clients that have several)
        t, msg, details = require("signalr.endpoints").new(opts, wake, 2)
    else
        options.check_single(opts, 2)
        t, msg, details = transport.new(options.fill(opts), wake, 2)
    end
    if not t then return nil, msg, details end
    self._t = t
    return self
end

--- A client over a transport made elsewhere (signalr.server gives its
-- hub objects one over the server's own connections).
-- @tparam table t a transport (signalr.transport)
function _M.wrap(t)
    return setmetatable({ _t = t }, Client)
end

--- Return a hub object for `name` (validated: a letter, then up to 127
-- letters, digits or _`,.[]).  Hub names are case-insensitive.
-- @tparam string name
-- @treturn[1] hub
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] table details
function Client:hub(name)
    if getmetatable(self) ~= Client then
        error("signalr: call client:hub(name) with a colon", 2)
    end
    if type(name) ~= "string" then
        error("signalr.hub: hub name must be a string, got " .. type(name), 2)
    end
    local ok, msg, details = core.validate("hub", name)
    if not ok then return nil, "signalr.hub: " .. msg, details end
    return hub_mod.new(self, self._t, name)
end

--- Is the service reachable and healthy? (HEAD /api/health, no token;
-- with several endpoints, every one, or those `opts.endpoints` names)
-- @treturn[1] true
-- @treturn[2] nil, message, details
function Client:health(opts)
    return self._t:health(opts)
end

--- The endpoints, `{ { name, type, online, endpoint, client_endpoint,
-- server_endpoint[, last_error, checked_at] }, ... }` (a plain client has
-- one, named "").
function Client:endpoints()
    return self._t:endpoints()
end

--- What the connection string says (never the key); with several
-- endpoints, `{ endpoints = { ... } }`.
function Client:info()
    return self._t:describe()
end

--- Persistent mode: what the server connections are doing, `{ hubs =
-- { [hub] = { connections = { { state, attempt, last_error }, ... },
-- queued } }, stats = { sent, queued, requeued, expired } }` (with
-- several endpoints, `{ endpoints = { [name] = ... } }`); nil in other
-- modes.
function Client:status()
    return self._t:status()
end

--- Release the client's connections now (also done by the GC).  Pending
-- requests end first with `ECANCELED` (their callbacks run), so every
-- request gets exactly one outcome; persistent mode writes what is
-- queued first (for at most a second).
-- @raise an error an on_done callback raised, after the client closed
function Client:close()
    -- the loop lets go of the client's descriptors before they close
    local a = self._adapter
    if a then a.detach() end
    local ok, err = pcall(self._t.close, self._t)
    if not ok then error(err, 0) end
end

local function seconds(v, what, level)
    if v ~= nil and type(v) ~= "number" then
        error("signalr." .. what .. ": timeout must be a number of seconds", level)
    end
end

-- The loop methods exist for async and persistent clients (a timeout,
-- where the method takes one, is checked next).
local function loop_of(self, what, timeout)
    local t = self._t
    if not t.loop then
        error("signalr." .. what .. ": only for clients made with async = true or"
            .. " mode = \"persistent\"", 3)
    end
    seconds(timeout, what, 4)
    return t
end

--- Make progress: wait up to `timeout` seconds (default 0) for network
-- activity, then finish what completed, calling `on_done` for each.
-- @treturn number how many requests finished in this call
-- @raise when an on_done callback raised (after all outcomes were recorded)
function Client:poll(timeout)
    return loop_of(self, "poll", timeout):poll(timeout)
end

--- poll(0): make progress without waiting.
function Client:step()
    return self:poll(0)
end

--- Requests queued and not yet finished (persistent mode: then the bytes
-- not yet written and the acknowledgements awaited).
function Client:pending()
    -- (loop_of's check inline: a sending loop calls this per send)
    local t = self._t
    if not t.loop then loop_of(self, "pending") end
    return t:pending()
end

--- Wait until every queued request has finished, at most `timeout` s.
-- @treturn[1] true
-- @treturn[2] nil, message, details (`code` "ETIMEDOUT", `pending` = n)
function Client:flush(timeout)
    return loop_of(self, "flush", timeout):flush(timeout)
end

--- Wait until every message sent so far has reached the service.
-- Persistent mode: a send answers `true` once its frame is handed to a
-- server connection, as the service SDK's does; a connection lost then
-- may lose what the network had taken but the service had not processed.
-- `confirm` writes what is queued, then an acknowledged message behind
-- the sends on every connection that carried some, and waits for the
-- answers (the service answers one connection's messages in order).
-- Transient mode: a send that answered `true` was accepted by the
-- service already; async mode waits for the outcomes as `flush` does.
-- @tparam[opt] number timeout seconds (default: the `ack_timeout` option
-- in persistent mode; none in async mode)
-- @treturn[1] boolean true: everything sent before the call reached the service
-- @treturn[2] nil, message, details (`code` "ECONNECT" with `lost`, the
-- number of messages that may not have reached it: send them again;
-- "ETIMEDOUT"; "EPHASE" in nginx phases that cannot wait)
function Client:confirm(timeout)
    seconds(timeout, "confirm", 3)
    return self._t:confirm(timeout)
end

--- For an existing event loop: every socket to watch, as
-- `{ { fd = n, read = bool, write = bool }, ... }` (exact; the set changes
-- as transfers start and end), and `client:timeout()`, the seconds until
-- `poll` is due (nil: no timer).  Call `client:poll(0)` when a socket is
-- ready or the timeout passed.  Simpler: wait on `client:pollfd()`.
function Client:fds()
    return loop_of(self, "fds"):fds()
end

--- Seconds until `poll` is due (0: now), or nil when nothing is timed.
function Client:timeout()
    return loop_of(self, "timeout"):timeout()
end

--- One descriptor for the whole client (an epoll descriptor, Linux):
-- readable when `poll(0)` has socket work.  Wait for it to be readable,
-- or for `client:timeout()`, then `client:poll(0)`.  With `events()` and
-- `timeout()` this lets cqueues wait on the client itself:
-- `cqueues.poll(client)`.  nil where there is no epoll (use `fds()`).
function Client:pollfd()
    return loop_of(self, "pollfd"):pollfd()
end

--- The events to wait for on `pollfd()`: always "r" (cqueues' protocol).
function Client:events()
    loop_of(self, "events")
    return "r"
end

--- An event-loop adapter (signalr.loop.luv, signalr.loop.cqueues)
-- registers with a handle (`wake()`, `detach()`), or unregisters (nil):
-- a call queued while the loop idles wakes it, and `close()` detaches it.
-- @tparam table|nil handle
function Client:set_loop(handle)
    self._adapter = handle
end

function Client:__tostring()
    return tostring(self._t)
end

return _M
