--- The emulator's REST API: every route of the v1 and 2022-06-01+ families
-- (both accepted under /api and /api/v1, as the service does), with the
-- service's status codes (each family's own, from its swagger file), error
-- codes, limits and token checks, and the newer routes :generateToken
-- (2022-11-01) and the paged group listing (2024-12-01).
local core = require "signalr.core"
local util = require "signalr_emulator.util"
local auth = require "signalr_emulator.auth"
local hubs_mod = require "signalr_emulator.hubs"
local filter_mod = require "signalr_emulator.filter"

local cjson = util.json
local tonumber, tostring, type, pcall, ipairs, pairs =
    tonumber, tostring, type, pcall, ipairs, pairs
local lower, byte, concat = string.lower, string.byte, table.concat

local _M = {}

local MAX_HEADERS = 16 * 1024

-- The api-versions of the service's published swagger files.
local VERSIONS = { ["2022-06-01"] = true, ["2022-11-01"] = true,
                   ["2023-07-01"] = true, ["2024-12-01"] = true }
local VERSION_LIST = "2022-06-01, 2022-11-01, 2023-07-01, 2024-12-01"

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
-- The swagger lists no 404 for sends: an unknown connection is 202, as for
-- a user or group without connections.
local to_conn = send_to(function(ctx)
    return { ctx.state:conn(ctx.key, ctx.vars.connections) }
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

-- v1.json answers 202 where 2022-06-01 answers 200 or 204.
local function done(ctx, status) return ctx.v1 and 202 or status end

local close_known = with_conn(function(ctx, c)
    c.close(reason(ctx))
    return done(ctx, 200)
end, "Warning.Connection.NotExisted")

-- v1.json declares only 202 and 400 here: closing a connection that is
-- already gone is accepted there.
local function close_one(ctx)
    if ctx.v1 and not ctx.state:conn(ctx.key, ctx.vars.connections) then return 202 end
    return close_known(ctx)
end

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
    return done(ctx, 200)
end

local function remove_user(ctx)
    ctx.state:remove_user(ctx.key, ctx.vars.users, ctx.vars.groups)
    return done(ctx, 204)
end

-- ===== newer routes =====

-- POST :generateToken?userId=&minutesToExpire= -> {"token": "..."}: a
-- client token for this hub, signed with the access key.
local function generate_token(ctx)
    local q = ctx.query
    local user = q.userId and q.userId[1]
    local minutes = q.minutesToExpire and q.minutesToExpire[1]
    if minutes then
        minutes = tonumber(minutes)
        if not minutes or minutes < 1 or minutes % 1 ~= 0 or minutes > 2147483647 then
            return 400, "Error.Argument.Invalid", "minutesToExpire must be an integer >= 1"
        end
    end
    local now = os.time()
    local claims = { aud = ctx.scheme .. "://" .. ctx.host .. "/client/?hub=" .. ctx.key,
                     exp = now + (minutes or 60) * 60, iat = now, nbf = now }
    if user and user ~= "" then claims["asrs.s.uid"] = user end
    local token
    if ctx.emu.disable_local_auth then
        -- no AccessKey to sign with: a temporary key, named by kid
        local kid, key = ctx.emu:issue_key()
        token = core.jwt_sign(cjson.encode(claims), key, kid)
    else
        token = core.jwt_sign(cjson.encode(claims), ctx.emu.key)
    end
    return 200, nil, nil, cjson.encode { token = token }
end

-- POST connections/{id}/:invoke: an invocation with an invocationId to the
-- client, then its Completion as {"result": ...}.  How the service answers
-- a client error, a missing client or a timeout is not documented: here a
-- client error is 400 Error.Invocation.Failed with the client's message, a
-- connection that is gone (or goes) is 404 Error.Connection.NotExisted and
-- no Completion within 30 s is 408 Error.Invocation.Timeout.
local invocations = 0
local function invoke(ctx)
    local frame, why = invocation(ctx.body)
    if not frame then return 400, "Error.Message.Invalid", why end
    local c = ctx.state:conn(ctx.key, ctx.vars.connections)
    if not c or not c.invoke then
        return 404, "Error.Connection.NotExisted", "connection '" .. ctx.vars.connections .. "' does not exist"
    end
    invocations = invocations + 1
    local id = "srv" .. invocations
    frame = '{"type":1,"invocationId":"' .. id .. '",' .. frame:sub(11)
    local rec, fail_why = c.invoke(id, frame, 30)
    if not rec then
        if fail_why == "gone" then
            return 404, "Error.Connection.NotExisted", "the connection closed before it answered"
        end
        return 408, "Error.Invocation.Timeout", "the client gave no result in 30 s"
    end
    if rec.error ~= nil then
        return 400, "Error.Invocation.Failed", "the client answered with an error: " .. tostring(rec.error)
    end
    local result = rec.result
    if result == nil then result = cjson.null end
    return 200, nil, nil, '{"result":' .. cjson.encode(result) .. "}"
end

-- POST :execute?filter= with a JSON array of SignalRCommand: each command,
-- in order, on every connection of the hub the filter selects.
local COMMAND_KEYS = {
    SendMessage = { type = true, message = true }, JoinGroup = { type = true, group = true },
    LeaveGroup = { type = true, group = true }, CloseConnection = { type = true, reason = true },
}

local function commands_of(body)
    local ok, list = pcall(cjson.decode, body or "")
    if not ok or type(list) ~= "table" or body:match("^%s*(.)") ~= "[" or #list == 0 then
        return nil, "the body must be a non-empty JSON array of commands"
    end
    for i, c in ipairs(list) do
        local keys = type(c) == "table" and COMMAND_KEYS[c.type]
        if not keys then return nil, "command " .. i .. " has no known type" end
        for k in pairs(c) do
            if not keys[k] then return nil, "command " .. i .. ": unknown property '" .. tostring(k) .. "'" end
        end
        if c.type == "SendMessage" then
            local m = c.message
            if type(m) ~= "table" or type(m.target) ~= "string" or m.target == ""
                    or (m.arguments ~= nil and type(m.arguments) ~= "table") then
                return nil, "command " .. i .. ": message needs a target and an arguments array"
            end
            local args = m.arguments or {}
            c.frame = '{"type":1,"target":' .. cjson.encode(m.target) .. ',"arguments":'
                .. (#args == 0 and "[]" or cjson.encode(args)) .. "}\30"
        elseif c.type == "JoinGroup" or c.type == "LeaveGroup" then
            if type(c.group) ~= "string" then return nil, "command " .. i .. ": group must be a string" end
            local okg, why = core.validate("group", c.group)
            if not okg then return nil, "command " .. i .. ": invalid group: " .. why end
        elseif c.reason ~= nil and type(c.reason) ~= "string" then
            return nil, "command " .. i .. ": reason must be a string"
        end
    end
    return list
end

local function execute(ctx)
    local list, why = commands_of(ctx.body)
    if not list then return 400, "Error.Command.Invalid", why end
    local pick = function() return true end
    local f = ctx.query.filter and ctx.query.filter[1]
    if f then
        pick, why = filter_mod.compile(f)
        if not pick then return 400, "Error.Filter.Invalid", "invalid filter: " .. why end
    end
    local chosen = ctx.state:select(ctx.key, function(c)
        return pick { id = c.id, user = c.user, groups = ctx.state:groups_of(ctx.key, c) }
    end)
    for _, c in ipairs(chosen) do
        for _, cmd in ipairs(list) do
            if cmd.type == "SendMessage" then hubs_mod.deliver({ c }, cmd.frame)
            elseif cmd.type == "JoinGroup" then c.groups[cmd.group] = true
            elseif cmd.type == "LeaveGroup" then c.groups[cmd.group] = nil
            else c.close(cmd.reason) end
        end
    end
    return 202
end

-- GET groups/{group}/connections?maxpagesize=&top=&continuationToken= ->
-- {"value":[{connectionId, userId}], "nextLink": absolute URL}.  The
-- token is the offset into the members sorted by id.
local function int_param(q, name, lo, hi)
    local v = q[name] and q[name][1]
    if v == nil then return true, nil end
    v = tonumber(v)
    if not v or v % 1 ~= 0 or v < lo or v > hi then return false end
    return true, v
end

local function list_group(ctx)
    local q = ctx.query
    local ok1, size = int_param(q, "maxpagesize", 1, 200)
    local ok2, top = int_param(q, "top", 1, 2147483647)
    if not ok1 or not ok2 then
        return 400, "Error.Argument.Invalid",
            "maxpagesize must be 1..200 and top 1..2147483647"
    end
    size = size or 200
    local from = 0
    local tok = q.continuationToken and q.continuationToken[1]
    if tok then
        from = tonumber(tok:match("^o(%d+)$") or "")
        if not from then
            return 400, "Error.ContinuationToken.Invalid", "invalid continuationToken"
        end
    end
    local members = ctx.state:group_conns(ctx.key, ctx.vars.groups)
    table.sort(members, function(a, b) return a.id < b.id end)
    local limit = top and math.min(#members, top) or #members
    local page = {}
    for i = from + 1, math.min(limit, from + size) do
        local c = members[i]
        page[#page + 1] = { connectionId = c.id, userId = c.user }
    end
    local out = { value = page }
    if from + size < limit then
        local parts = { ctx.scheme, "://", ctx.authority, ctx.path, "?" }
        if top then parts[#parts + 1] = "top=" .. top .. "&" end
        parts[#parts + 1] = "maxpagesize=" .. size .. "&continuationToken=o"
            .. (from + size)
        if ctx.app then parts[#parts + 1] = "&application=" .. core.url_encode(ctx.app) end
        parts[#parts + 1] = "&api-version=" .. ctx.version
        out.nextLink = concat(parts)
    end
    return 200, nil, nil, #page == 0 and '{"value":[]}' or cjson.encode(out)
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
    [":generateToken"] = { POST = generate_token, since = "2022-11-01" },
    [":execute"] = { POST = execute, since = "2023-07-01" },
    ["connections/*/:invoke"] = { POST = invoke, since = "2024-12-01" },
    ["groups/*/connections"] = { GET = list_group, since = "2024-12-01" },
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
                     [to_conn] = true, [execute] = true, [invoke] = true }

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
    local ver = ctx.query["api-version"] and ctx.query["api-version"][1]
    if not v1 and not VERSIONS[ver or ""] then
        return fail(400, "Error.ApiVersion.Invalid", "api-version "
            .. (ver and ("'" .. ver .. "' is not supported") or "is missing")
            .. " (supported: " .. VERSION_LIST .. "; or use /api/v1)")
    end
    if segs[at] == "health" and #segs == at then
        -- both swagger files define HEAD only
        if method ~= "HEAD" then
            return fail(405, "Error.Method.NotAllowed", "use HEAD")
        end
        util.reply(stream, 200, nil, nil, method)
        return 200
    end
    if segs[at] == "auth" and segs[at + 1] == "accessKey" and #segs == at + 1 then
        -- a temporary access key for an Entra ID identity (entra-id.md
        -- 8.1): /api/v1/auth/accessKey (the SDK's path, no api-version)
        -- or /api/auth/accessKey?api-version=2023-07-01 and later
        if method ~= "GET" then return fail(405, "Error.Method.NotAllowed", "use GET") end
        if not v1 and ver < "2023-07-01" then
            return fail(404, "Error.Route.NotFound", "no such route in api-version " .. ver
                .. ": " .. path .. " needs 2023-07-01")
        end
        local token = (req:get("authorization") or ""):match("^[Bb]earer%s+(%S+)$")
        local claims, st, code, why = emu:rest_auth(token, path, req:get(":authority"), "key")
        if not claims then return fail(st, code, why) end
        local kid, key = emu:issue_key()
        util.reply(stream, 200, cjson.encode { KeyId = kid, AccessKey = key }, nil, method)
        return 200
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
    if row.since and (v1 or ver < row.since) then
        return fail(404, "Error.Route.NotFound", "no such route in api-version "
            .. (v1 and "v1" or ver) .. ": " .. path .. " needs " .. row.since)
    end
    if vars.groups then
        ok, why = core.validate("group", vars.groups)
        if not ok then return fail(400, "Error.Group.Invalid", "invalid group name: " .. why) end
    end
    -- authentication: aud = this request's URL on this host
    local token = (req:get("authorization") or ""):match("^[Bb]earer%s+(%S+)$")
    local what = handler == generate_token and "token"
        or (method == "GET" or method == "HEAD") and "read" or "send"
    local claims, st, acode, refusal = emu:rest_auth(token, path, req:get(":authority"), what)
    if not claims then return fail(st, acode, refusal) end
    ctx.key = hubs_mod.key(hub, app)
    ctx.vars = vars
    ctx.v1, ctx.emu, ctx.app, ctx.version, ctx.path = v1, emu, app, ver, path
    ctx.scheme = "http"
    ctx.authority = req:get(":authority") or (emu.host .. ":" .. emu.port)
    ctx.host = auth.host_of(ctx.authority)
    if NEEDS_BODY[handler] then
        -- at most max_body + 1 bytes are read: a longer (chunked) body is
        -- refused without buffering it, and its connection closed
        ctx.body = stream:get_body_chars(emu.max_body + 1, emu.timeout)
        rec.body = ctx.body
        if not ctx.body then return fail(400, "Error.Body.Missing", "could not read the body") end
        if #ctx.body > emu.max_body then
            rec.body = nil
            fail(413, "Error.Payload.TooLarge", "the body exceeds " .. emu.max_body .. " bytes")
            require("signalr_emulator").drop(stream)
            return 413
        end
        -- clients must reject invalid UTF-8 in a text frame: refuse it here
        local valid, problem = core.validate("body", ctx.body)
        if not valid and not problem:find("is empty", 1, true) then
            return fail(400, "Error.Message.Invalid", "the message " .. problem:gsub("^body ", ""))
        end
    end
    local status, code, msg, body = handler(ctx)
    if code then return fail(status, code, msg) end
    util.reply(stream, status, body, nil, method)
    return status
end

return _M
