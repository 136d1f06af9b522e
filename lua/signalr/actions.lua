--- The Azure Functions SignalR output-binding shapes, so code written
-- against the binding ports one to one:
--
--   hub:send{ target = "newMessage", arguments = { ... },
--             userId = ..., groupName = ..., connectionId = ... }
--   hub:send{ action = "add" | "remove" | "removeAll",
--             userId = ..., connectionId = ..., groupName = ... }
--
-- A message names at most one recipient (none = broadcast).  `endpoints`
-- chooses the endpoints of a client made with several: a list of names,
-- or of endpoint tables (`{ name = ..., ... }`, as `client:endpoints()`
-- returns them, or the binding's `{ endpointType, name, endpoint,
-- online }`); matched by name.
-- @module signalr.actions
local type, error, pairs, tostring = type, error, pairs, tostring
local lower = string.lower

local _M = {}

local MESSAGE_KEYS = { target = true, arguments = true, userId = true,
                       groupName = true, connectionId = true, endpoints = true }
local GROUP_KEYS = { action = true, userId = true, connectionId = true,
                     groupName = true, endpoints = true }

local function fail(msg)
    return nil, "signalr.send: " .. msg, { code = "EINVAL" }
end

local function check_keys(action, known)
    for k, v in pairs(action) do
        if not known[k] then
            error("signalr.send: unknown action key '" .. tostring(k) .. "'", 4)
        end
        if k == "endpoints" then
            if type(v) ~= "table" then
                error("signalr.send: action.endpoints must be a list, got " .. type(v), 4)
            end
        elseif k ~= "arguments" and type(v) ~= "string" then
            error("signalr.send: action." .. k .. " must be a string, got "
                .. type(v), 4)
        end
    end
end

local function message(hub, a)
    check_keys(a, MESSAGE_KEYS)
    local n = (a.userId and 1 or 0) + (a.groupName and 1 or 0)
        + (a.connectionId and 1 or 0)
    if n > 1 then
        return fail("a message names at most one of userId, groupName and connectionId")
    end
    local o = a.endpoints and { endpoints = a.endpoints } or nil
    if a.userId then return hub:to_user(a.userId, a.target, a.arguments, o) end
    if a.groupName then return hub:to_group(a.groupName, a.target, a.arguments, o) end
    if a.connectionId then
        return hub:to_connection(a.connectionId, a.target, a.arguments, o)
    end
    return hub:broadcast(a.target, a.arguments, o)
end

local function group(hub, a)
    check_keys(a, GROUP_KEYS)
    local kind = lower(a.action)
    local o = a.endpoints and { endpoints = a.endpoints } or nil
    if a.userId and a.connectionId then
        return fail("a group action names userId or connectionId, not both")
    end
    if not a.userId and not a.connectionId then
        return fail("a group action needs userId or connectionId")
    end
    if kind == "removeall" then
        if a.groupName then
            return fail("removeAll takes no groupName")
        end
        if a.userId then return hub:remove_user_from_all_groups(a.userId, o) end
        return hub:remove_connection_from_all_groups(a.connectionId, o)
    end
    if kind ~= "add" and kind ~= "remove" then
        return fail("unknown group action '" .. a.action
            .. "' (expected add, remove or removeAll)")
    end
    if not a.groupName then
        return fail("a group action '" .. a.action .. "' needs groupName")
    end
    if a.userId then
        if kind == "add" then return hub:add_user_to_group(a.userId, a.groupName, o) end
        return hub:remove_user_from_group(a.userId, a.groupName, o)
    end
    if kind == "add" then
        return hub:add_connection_to_group(a.connectionId, a.groupName, o)
    end
    return hub:remove_connection_from_group(a.connectionId, a.groupName, o)
end

--- Run one action on hub.
function _M.run(hub, action)
    if type(action) ~= "table" then
        error("signalr.send: action must be a table, got " .. type(action), 3)
    end
    if action.action ~= nil then return group(hub, action) end
    if action.target ~= nil then return message(hub, action) end
    error("signalr.send: action needs 'target' (a message) or 'action' "
        .. "(a group action)", 3)
end

return _M
