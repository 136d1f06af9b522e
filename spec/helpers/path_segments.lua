-- The operations with an id in their path, for the dot-segment specs of
-- every transport: { method, what the id is, arguments with ID where the
-- id goes }.  Each transport refuses "." and ".." (EINVAL, nothing sent)
-- and sends ids that merely contain dots as they are.
local M = {}

M.CALLS = {
    { "to_user", "user id", { "ID", "t", { 1 } } },
    { "to_group", "group name", { "ID", "t", { 1 } } },
    { "to_connection", "connection id", { "ID", "t", { 1 } } },
    { "add_connection_to_group", "connection id", { "ID", "g" } },
    { "add_connection_to_group", "group name", { "c", "ID" } },
    { "remove_connection_from_group", "connection id", { "ID", "g" } },
    { "remove_connection_from_group", "group name", { "c", "ID" } },
    { "remove_connection_from_all_groups", "connection id", { "ID" } },
    { "add_user_to_group", "user id", { "ID", "g" } },
    { "add_user_to_group", "group name", { "u", "ID" } },
    { "remove_user_from_group", "user id", { "ID", "g" } },
    { "remove_user_from_group", "group name", { "u", "ID" } },
    { "remove_user_from_all_groups", "user id", { "ID" } },
    { "connection_exists", "connection id", { "ID" } },
    { "user_exists", "user id", { "ID" } },
    { "group_exists", "group name", { "ID" } },
    { "user_in_group", "user id", { "ID", "g" } },
    { "user_in_group", "group name", { "u", "ID" } },
    { "close_connection", "connection id", { "ID" } },
    { "close_group_connections", "group name", { "ID" } },
    { "close_user_connections", "user id", { "ID" } },
    { "group_connections", "group name", { "ID" } },
    { "invoke", "connection id", { "ID", "t", { 1 } } },
}

M.DOTS = { ".", ".." }
M.DOTTED = { "..x", "x..", ".x", "../..", "./.", "%2E%2E" }

--- The call's arguments with the id in place.
function M.args(call, id)
    local out = {}
    for i, a in ipairs(call[3]) do out[i] = a == "ID" and id or a end
    return out
end

--- The message a refused dot segment gets.
function M.message(call, id)
    return call[2] .. ' "' .. id .. '" is a dot segment: it would change the request\'s path'
end

local function escape(s)
    return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

--- nil when the one request the service got carries id as a whole path
-- segment and no dot segment; else what is wrong.
function M.check_received(reqs, id)
    if #reqs ~= 1 then return #reqs .. " requests reached the service for " .. id end
    local path = reqs[1].path:match("^[^?]*")
    local seg = "/" .. escape(id)
    local at = path:find(seg, 1, true)
    if not at then return path .. " lacks " .. seg end
    local after = path:sub(at + #seg, at + #seg)
    if after ~= "" and after ~= "/" then return path .. ": " .. seg .. " is not a whole segment" end
    if path:find("/%.%.?/") or path:find("/%.%.?$") then return path .. " has a dot segment" end
    return nil
end

return M
