--- The event-loop contract, written once for anything that has sockets
-- (a client in async or persistent mode, a pool of server connections,
-- a client of several endpoints, a hub server):
--
--   * `obj:poll(seconds)`: make progress, waiting at most that long;
--   * `obj:pollfd()`: one descriptor (an epoll set; Linux) readable when
--     `poll(0)` has socket work, or nil where there is none;
--   * `obj:timeout()`: seconds until `poll` is due (0: now), nil for none;
--   * `obj:fds()`: every socket and its interest, `{ {fd=, read=, write=}, ... }`;
--   * optionally `obj:set_loop(handle | nil)`: an adapter registers (and
--     unregisters) a handle whose `wake()` the object calls when work is
--     queued outside the loop, and whose `detach()` it calls on close.
--
-- The adapters (`signalr.loop.luv`, `signalr.loop.cqueues`) drive any
-- such object.  Two helpers implement the contract for owners of
-- descriptors: `sockets()` (an epoll set kept equal to a changing list of
-- sockets, for a pool of server connections) and `group(members)`
-- (several pollable objects as one, for a client of several endpoints).
-- @module signalr.loop
local core = require "signalr.core"

local type, error, ipairs, pairs, setmetatable, min = type, error, ipairs, pairs, setmetatable, math.min

local _M = {}

--- Raise unless obj implements the contract (poll, pollfd, timeout).
-- @tparam table obj
-- @tparam string who the caller, for the message ("signalr.loop.luv.attach")
function _M.check(obj, who)
    if type(obj) ~= "table" or type(obj.pollfd) ~= "function" or type(obj.poll) ~= "function"
            or type(obj.timeout) ~= "function" then
        error(who .. ": expected a signalr client (or an object with poll, pollfd and timeout)", 3)
    end
end

-- ===== sockets: one epoll set over a changing list of descriptors =====

local Sockets = {}
Sockets.__index = Sockets

--- An epoll set kept equal to a list of sockets (made on first use; none
-- where the platform has no epoll).
function _M.sockets()
    return setmetatable({ watched = {} }, Sockets)
end

--- The set watching exactly `list` (`{ {fd=, read=, write=}, ... }`),
-- or nil where there is no epoll.
function Sockets:update(list)
    if self.set == nil then self.set = core.pollset() or false end
    local set = self.set
    if not set then return nil end
    local want, watched = {}, self.watched
    for i = 1, #list do
        local f = list[i]
        want[f.fd] = (f.read and 1 or 0) + (f.write and 2 or 0)
    end
    for fd, ev in pairs(want) do
        if watched[fd] ~= ev then
            set:watch(fd, ev % 2 == 1, ev >= 2)
            watched[fd] = ev
        end
    end
    for fd in pairs(watched) do
        if not want[fd] then
            set:remove(fd)
            watched[fd] = nil
        end
    end
    return set
end

--- The set's descriptor after `update(list)`, or nil.
function Sockets:fd(list)
    local set = self:update(list)
    return set and set:fd() or nil
end

--- Wait up to `seconds` for activity on `list`.  false where there is
-- no epoll (nothing waited).
function Sockets:wait(list, seconds)
    local set = self:update(list)
    if not set then return false end
    if seconds > 0 then set:wait(seconds) end
    return true
end

function Sockets:close()
    if self.set then self.set:close() end
    self.set = false
end

-- ===== group: several pollable objects as one =====

local Group = {}
Group.__index = Group

--- Several objects of the contract as one: one descriptor over theirs,
-- the earliest timeout, every socket.
-- @tparam {table,...} members
function _M.group(members)
    return setmetatable({ members = members }, Group)
end

--- The union set (made on first use), or nil without epoll.
function Group:set()
    if self.ps == nil then
        local ps = core.pollset()
        if ps then
            for _, m in ipairs(self.members) do
                local fd = m:pollfd()
                if fd then assert(ps:add(fd)) end
            end
        end
        self.ps = ps or false
    end
    return self.ps or nil
end

--- The union descriptor, or nil.
function Group:fd()
    local ps = self:set()
    return ps and ps:fd() or nil
end

--- Wait up to `seconds` for any member (each member's set is brought up
-- to date first); without epoll, the first member's own wait.
function Group:wait(seconds)
    local ps = self:set()
    if ps then
        for _, m in ipairs(self.members) do m:pollfd() end
        ps:wait(seconds)
    else
        self.members[1]:poll(seconds)
    end
end

--- poll(0) on every member.
function Group:step()
    for _, m in ipairs(self.members) do m:poll(0) end
end

--- The earliest member timeout (nil: none).
function Group:due()
    local t
    for _, m in ipairs(self.members) do
        local s = m:timeout()
        if s and (not t or s < t) then t = s end
    end
    return t
end

--- Every member's sockets.
function Group:fds()
    local out = {}
    for _, m in ipairs(self.members) do
        for _, f in ipairs(m:fds()) do out[#out + 1] = f end
    end
    return out
end

function Group:close()
    if self.ps then self.ps:close() end
    self.ps = false
end

--- The earlier of two timeouts (nil: none).
function _M.earliest(a, b)
    if a == nil then return b end
    if b == nil then return a end
    return min(a, b)
end

return _M
