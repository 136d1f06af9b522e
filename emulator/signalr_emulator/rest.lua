--- The emulator's REST API: every route of the v1 and 2022-06-01+ families
-- (both accepted under /api and /api/v1, as the service does), with the
-- service's status codes, error codes, limits and token checks.
local core = require "signalr.core"
local util = require "signalr_emulator.util"
local auth = require "signalr_emulator.auth"
local hubs_mod = require "signalr_emulator.hubs"

local cjson = util.json
local tonumber, tostring, type, pcall, ipairs, pairs =
    tonumber, tostring, type, pcall, ipairs, pairs
local lower, byte, concat = string.lower, string.byte, table.concat

local _M = {}

local MAX_HEADERS = 16 * 1024

-- ===== sends =====

-- Build the invocation record from a PayloadMessage body, forwarding the
-- raw JSON of target and arguments byte for byte.
local function invocation(body)
    local ok, msg = pcall(cjson.decode, body or "")
    if not ok or type(msg) ~= "table" or byte(body, (body:find("%S"))) ~= 123 then
        return nil, "the body is not a JSON object"
    end
    local target
    for k, v in pairs(msg) do
        local lk = lower(k)
        if lk == "target" then target = v
        elseif lk ~= "arguments" then
            return nil, "unknown property '" .. tostring(k) .. "' in the message"
        end
    end
    if type(target) ~= "string" or target == "" then
        return nil, "'target' must be a non-empty string"
    end
    local args = util.raw_member(body, "arguments") or "[]"
    if byte(args, 1) ~= 91 then return nil, "'arguments' must be an array" end
    return '{"type":1,"target":' .. util.raw_member(body, "target")
        .. ',"arguments":' .. args .. "}\30"
end

local function send_to(list_fn)
    return function(ctx)
        local frame, why = invocation(ctx.body)
        if not frame then return 400, "Error.Message.Invalid", why end
        local list, code, msg = list_fn(ctx)
        if not list then return 404, code, msg end
        hubs_mod.deliver(list, frame)
        return 202
    end
end

local function excluded(ctx) return ctx.query.excluded end

local function conn_or_404(ctx, code)
    local c = ctx.state:conn(ctx.key, ctx.vars.connections)
    if not c then
        return nil, code or "Error.Connection.NotExisted",
            "connection '" .. ctx.vars.connections .. "' does not exist"
    end
    return c
end

local broadcast = send_to(function(ctx)
    return ctx.state:select(ctx.key, nil, excluded(ctx))
end)
local to_user = send_to(function(ctx)
    return ctx.state:user_conns(ctx.key, ctx.vars.users)
end)
local to_group = send_to(function(ctx)
    return ctx.state:group_conns(ctx.key, ctx.vars.groups, excluded(ctx))
end)
local to_conn = send_to(function(ctx)
    local c, code, msg = conn_or_404(ctx)
    if not c then return nil, code, msg end
    return { c }
end)

-- ===== closing =====

local function reason(ctx) return ctx.query.reason and ctx.query.reason[1] end

local function close_many(list_fn)
    return function(ctx)
        for _, c in ipairs(list_fn(ctx)) do c.close(reason(ctx)) end
        return 204
    end
end

-- Handlers of one connection: 404 with `code` when it does not exist.
local function with_conn(fn, code)
    return function(ctx)
        local c, code_, msg = conn_or_404(ctx, code)
        if not c then return 404, code_, msg end
        return fn(ctx, c)
    end
end

local close_one = with_conn(function(ctx, c)
    c.close(reason(ctx))
    return 200
end, "Warning.Connection.NotExisted")

-- ===== membership =====

local add_conn = with_conn(function(ctx, c)
    c.groups[ctx.vars.groups] = true
    return 200
end)

local remove_conn = with_conn(function(ctx, c)
    c.groups[ctx.vars.groups] = nil
    return 200
end)

local remove_conn_all = with_conn(function(_, c)
    c.groups = {}
    return 200
end)

local function add_user(ctx)
    local ttl = ctx.query.ttl and ctx.query.ttl[1]
    if ttl then
        ttl = tonumber(ttl)
        if not ttl or ttl < 0 or ttl % 1 ~= 0 then
            return 400, "Error.Ttl.Invalid", "ttl must be a whole number of seconds >= 0"
        end
    end
    ctx.state:add_user(ctx.key, ctx.vars.users, ctx.vars.groups, ttl)
    return 200
end

local function remove_user(ctx)
    ctx.state:remove_user(ctx.key, ctx.vars.users, ctx.vars.groups)
    return 204
end

-- ===== existence =====

local function exists(pred, code, what)
    return function(ctx)
        if pred(ctx) then return 200 end
        return 404, code, what(ctx)
    end
end

local conn_exists = exists(function(ctx) return ctx.state:conn(ctx.key, ctx.vars.connections) end,
    "Warning.Connection.NotExisted",
    function(ctx) return "connection '" .. ctx.vars.connections .. "' does not exist" end)
local user_exists = exists(function(ctx) return #ctx.state:user_conns(ctx.key, ctx.vars.users) > 0 end,
    "Warning.User.NotExisted",
    function(ctx) return "user '" .. ctx.vars.users .. "' has no connection" end)
local group_exists = exists(function(ctx) return ctx.state:group_exists(ctx.key, ctx.vars.groups) end,
    "Warning.Group.NotExisted",
    function(ctx) return "group '" .. ctx.vars.groups .. "' has no connection" end)
local user_in_group = exists(function(ctx)
        return ctx.state:user_in_group(ctx.key, ctx.vars.users, ctx.vars.groups)
    end, "Info.User.NotInGroup",
    function(ctx) return "user '" .. ctx.vars.users .. "' is not in group '" .. ctx.vars.groups .. "'" end)

-- ===== the route table: shape of the path after hubs/{hub} =====

local ROUTES = {
    [""] = { POST = broadcast },
    [":send"] = { POST = broadcast },
    [":closeConnections"] = { POST = close_many(function(ctx)
        return ctx.state:select(ctx.key, nil, excluded(ctx)) end) },
    ["users/*"] = { POST = to_user, GET = user_exists, HEAD = user_exists },
    ["users/*/:send"] = { POST = to_user },
    ["users/*/:closeConnections"] = { POST = close_many(function(ctx)
        return ctx.state:user_conns(ctx.key, ctx.vars.users, excluded(ctx)) end) },
    ["users/*/groups"] = { DELETE = remove_user },
    ["users/*/groups/*"] = { PUT = add_user, DELETE = remove_user,
                             GET = user_in_group, HEAD = user_in_group },
    ["groups/*"] = { POST = to_group, GET = group_exists, HEAD = group_exists },
    ["groups/*/:send"] = { POST = to_group },
    ["groups/*/:closeConnections"] = { POST = close_many(function(ctx)
        return ctx.state:group_conns(ctx.key, ctx.vars.groups, excluded(ctx)) end) },
    ["groups/*/users/*"] = { PUT = add_user, DELETE = remove_user,
                             GET = user_in_group, HEAD = user_in_group },
    ["groups/*/connections/*"] = { PUT = add_conn, DELETE = remove_conn },
    ["connections/*"] = { POST = to_conn, GET = conn_exists, HEAD = conn_exists,
                          DELETE = close_one },
    ["connections/*/:send"] = { POST = to_conn },
    ["connections/*/groups"] = { DELETE = remove_conn_all },
    ["connections/*/groups/*"] = { PUT = add_conn, DELETE = remove_conn },
}
local NEEDS_BODY = { [broadcast] = true, [to_user] = true, [to_group] = true,
                     [to_conn] = true }

-- Split the tail into a route shape and its variables (decoded).
local function shape(segs, from)
    local parts, vars, i = {}, {}, from
    while i <= #segs do
        local s = segs[i]
        if (s == "users" or s == "groups" or s == "connections") and segs[i + 1] then
            local v = core.url_decode(segs[i + 1])
            if not v or v == "" then return nil end
            parts[#parts + 1] = s
            parts[#parts + 1] = "*"
            vars[s] = v
            i = i + 2
        else
            parts[#parts + 1] = s
            i = i + 1
        end
    end
    return concat(parts, "/"), vars
end

local function header_bytes(req)
    local n = 0
    for k, v in req:each() do n = n + #k + #v + 4 end
    return n
end

--- Handle one request under /api.  Returns status (for the log).
function _M.handle(emu, stream, req, method, path, query_string, rec)
    local ctx = { state = emu.state, stream = stream, method = method }
    local function fail(status, code, msg)
        util.error_reply(stream, status, code, msg, method)
        return status
    end
    if header_bytes(req) > MAX_HEADERS then
        return fail(431, "Error.Headers.TooLarge", "request headers exceed 16 KB")
    end
    local clen = tonumber(req:get("content-length") or "0") or 0
    if clen > emu.max_body then
        return fail(413, "Error.Payload.TooLarge",
            "the body is " .. clen .. " bytes; at most " .. emu.max_body .. " are accepted")
    end
    ctx.query = util.parse_query(query_string)
    local segs = {}
    for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
    -- segs[1] == "api"
    local v1 = segs[2] == "v1"
    local at = v1 and 3 or 2
    if segs[at] == "health" and #segs == at then
        if method ~= "GET" and method ~= "HEAD" then
            return fail(405, "Error.Method.NotAllowed", "use GET or HEAD")
        end
        util.reply(stream, 200, nil, nil, method)
        return 200
    end
    if not v1 then
        local ver = ctx.query["api-version"] and ctx.query["api-version"][1]
        if not ver or not ver:match("^%d%d%d%d%-%d%d%-%d%d") or ver < "2022-06-01" then
            return fail(400, "Error.ApiVersion.Invalid",
                "api-version is missing or not supported (use 2022-06-01 or later, or /api/v1)")
        end
    end
    if segs[at] ~= "hubs" or not segs[at + 1] then
        return fail(404, "Error.Route.NotFound", "no such route: " .. path)
    end
    local hub = core.url_decode(segs[at + 1]) or ""
    local ok, why = core.validate("hub", hub)
    if not ok then return fail(400, "Error.Hub.Invalid", "invalid hub name: " .. why) end
    local app = ctx.query.application and ctx.query.application[1]
    if app then
        ok, why = core.validate("hub", app)
        if not ok then return fail(400, "Error.Application.Invalid", "invalid application name: " .. why) end
    end
    local tail, vars = shape(segs, at + 2)
    local row = tail and ROUTES[tail]
    if not row then return fail(404, "Error.Route.NotFound", "no such route: " .. path) end
    local handler = row[method]
    if not handler then
        return fail(405, "Error.Method.NotAllowed", method .. " is not allowed on " .. path)
    end
    if vars.groups then
        ok, why = core.validate("group", vars.groups)
        if not ok then return fail(400, "Error.Group.Invalid", "invalid group name: " .. why) end
    end
    -- authentication: aud = this request's URL on this host
    local token = (req:get("authorization") or ""):match("^[Bb]earer%s+(%S+)$")
    local claims, reason_ = auth.rest(emu.key, token, path, req:get(":authority"))
    if not claims then
        return fail(401, "Error.Unauthorized", "authorization failed: " .. reason_)
    end
    ctx.key = hubs_mod.key(hub, app)
    ctx.vars = vars
    if NEEDS_BODY[handler] then
        ctx.body = stream:get_body_as_string(emu.timeout)
        rec.body = ctx.body
        if not ctx.body then return fail(400, "Error.Body.Missing", "could not read the body") end
        if #ctx.body > emu.max_body then
            return fail(413, "Error.Payload.TooLarge", "the body exceeds " .. emu.max_body .. " bytes")
        end
    end
    local status, code, msg = handler(ctx)
    if code then return fail(status, code, msg) end
    util.reply(stream, status, nil, nil, method)
    return status
end

return _M
