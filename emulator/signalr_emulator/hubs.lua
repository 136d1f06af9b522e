--- In-memory state of the emulator: hubs, client connections, groups and
-- user memberships (with ttl), and delivery of messages to clients.
local pairs, next, os_time = pairs, next, os.time
local lower = string.lower

local _M = {}
local Hubs = {}
Hubs.__index = Hubs

function _M.new(clock)
    return setmetatable({ hubs = {}, clock = clock or os_time, count = 0 }, Hubs)
end

--- The service's identity of a hub: lower(hub) or lower(app)_lower(hub).
function _M.key(hub, app)
    if app and app ~= "" then return lower(app) .. "_" .. lower(hub) end
    return lower(hub)
end

function Hubs:get(key)
    local h = self.hubs[key]
    if not h then
        h = { conns = {}, user_members = {} }
        self.hubs[key] = h
    end
    return h
end

--- Register a connected client: conn = { id, user, send = fn(frame),
-- close = fn(reason) }.
function Hubs:add(key, conn)
    conn.groups = conn.groups or {}
    self:get(key).conns[conn.id] = conn
    self.count = self.count + 1
end

function Hubs:remove(key, id)
    local h = self.hubs[key]
    if h and h.conns[id] then
        h.conns[id] = nil
        self.count = self.count - 1
    end
end

function Hubs:conn(key, id)
    local h = self.hubs[key]
    return h and h.conns[id]
end

-- Live (unexpired) user membership of group g.
local function user_member(self, h, user, g)
    local m = user and h.user_members[user]
    local exp = m and m[g]
    if not exp then return false end
    if exp ~= true and exp <= self.clock() then
        m[g] = nil
        return false
    end
    return true
end

function Hubs:in_group(key, conn, g)
    return conn.groups[g] == true or user_member(self, self:get(key), conn.user, g)
end

--- Every group a connection is in (its own and its user's), as a set.
function Hubs:groups_of(key, conn)
    local out = {}
    for g in pairs(conn.groups) do out[g] = true end
    local m = conn.user and self:get(key).user_members[conn.user]
    for g in pairs(m or {}) do
        if self:in_group(key, conn, g) then out[g] = true end
    end
    return out
end

--- Connections matching pred, minus excluded ids.
function Hubs:select(key, pred, excluded)
    local h, out = self.hubs[key], {}
    if not h then return out end
    local left_out = {}
    for _, id in ipairs(excluded or {}) do left_out[id] = true end
    for id, c in pairs(h.conns) do
        if not left_out[id] and (not pred or pred(c)) then out[#out + 1] = c end
    end
    return out
end

function Hubs:user_conns(key, user, excluded)
    return self:select(key, function(c) return c.user == user end, excluded)
end

function Hubs:group_conns(key, g, excluded)
    return self:select(key, function(c) return self:in_group(key, c, g) end, excluded)
end

function Hubs:group_exists(key, g)
    return #self:group_conns(key, g) > 0
end

function Hubs:user_in_group(key, user, g)
    local h = self:get(key)
    if user_member(self, h, user, g) then return true end
    for _, c in pairs(h.conns) do
        if c.user == user and c.groups[g] then return true end
    end
    return false
end

--- ttl nil: lasting membership; 0: only the user's current connections.
function Hubs:add_user(key, user, g, ttl)
    local h = self:get(key)
    if ttl == 0 then
        for _, c in pairs(h.conns) do
            if c.user == user then c.groups[g] = true end
        end
        return
    end
    local m = h.user_members[user]
    if not m then m = {}; h.user_members[user] = m end
    m[g] = ttl and (self.clock() + ttl) or true
end

function Hubs:remove_user(key, user, g)
    local h = self:get(key)
    local m = h.user_members[user]
    if m then
        if g then m[g] = nil else h.user_members[user] = nil end
        if m and next(m) == nil then h.user_members[user] = nil end
    end
    for _, c in pairs(h.conns) do
        if c.user == user then
            if g then c.groups[g] = nil else c.groups = {} end
        end
    end
end

--- Deliver an invocation frame to each connection in list.
function _M.deliver(list, frame)
    for i = 1, #list do list[i].send(frame) end
    return #list
end

return _M
