--- The `signalr` command: every hub operation from a shell.
--
--   signalr [global options] COMMAND ARGS... [command options]
--
-- Exit status: 0 success (an existence check that answered "yes"), 1 an
-- existence check that answered "no", 2 a usage or local input error
-- (also a Microsoft Entra ID certificate or token file that cannot be
-- read), 3 a service error (an HTTP status, or Microsoft Entra ID
-- refusing the token request), 4 a transport error (nothing or not all
-- of the request got through).  Secrets never reach the output: an
-- argument is echoed only when it is a plain word.
-- @module signalr.cli
local signalr = require "signalr"
local json = require "signalr.json"

local type, pairs, ipairs, tonumber, tostring, concat = type, pairs, ipairs, tonumber,
    tostring, table.concat

local _M = {}

local EXIT = { ok = 0, no = 1, usage = 2, service = 3, transport = 4 }
_M.EXIT = EXIT

local SERVICE = { ESTATUS = true, EREPLY = true }
-- EAUTH is a service error when Microsoft Entra ID answered (a refusal, a
-- reply without a token: details.status); without a status it is local
-- (the credential's certificate or token file could not be read)
local TRANSPORT = { ECONNECT = true, ETIMEDOUT = true, EHTTP = true, ECANCELED = true }

-- name, hub method, positional argument names, option names, summary.
-- A "json" positional is parsed as a JSON array (the invocation arguments).
local COMMANDS = {
    { "broadcast", "broadcast", { "hub", "target", "json?" }, { "exclude" },
      "send to every client of the hub" },
    { "send-user", "to_user", { "hub", "user", "target", "json?" }, {},
      "send to every connection of a user" },
    { "send-group", "to_group", { "hub", "group", "target", "json?" }, { "exclude" },
      "send to every connection in a group" },
    { "send-connection", "to_connection", { "hub", "connection", "target", "json?" }, {},
      "send to one connection" },
    { "add-user", "add_user_to_group", { "hub", "user", "group" }, { "ttl" },
      "add a user to a group (ttl: seconds)" },
    { "remove-user", "remove_user_from_group", { "hub", "user", "group" }, {},
      "remove a user from a group" },
    { "remove-user-all", "remove_user_from_all_groups", { "hub", "user" }, {},
      "remove a user from every group" },
    { "add-connection", "add_connection_to_group", { "hub", "connection", "group" }, {},
      "add a connection to a group" },
    { "remove-connection", "remove_connection_from_group", { "hub", "connection", "group" }, {},
      "remove a connection from a group" },
    { "remove-connection-all", "remove_connection_from_all_groups", { "hub", "connection" }, {},
      "remove a connection from every group" },
    { "user-exists", "user_exists", { "hub", "user" }, {}, "does the user have a connection?" },
    { "group-exists", "group_exists", { "hub", "group" }, {}, "does the group have a connection?" },
    { "connection-exists", "connection_exists", { "hub", "connection" }, {},
      "is the connection open?" },
    { "user-in-group", "user_in_group", { "hub", "user", "group" }, {}, "is the user in the group?" },
    { "close-connection", "close_connection", { "hub", "connection" }, { "reason" },
      "close one connection" },
    { "close-all", "close_all_connections", { "hub" }, { "exclude", "reason" },
      "close every connection of the hub" },
    { "close-group", "close_group_connections", { "hub", "group" }, { "exclude", "reason" },
      "close every connection in a group" },
    { "close-user", "close_user_connections", { "hub", "user" }, { "exclude", "reason" },
      "close every connection of a user" },
    { "group-connections", "group_connections", { "hub", "group" }, { "top" },
      "list the connections in a group (api 2024-12-01)" },
    { "generate-token", "generate_client_token", { "hub" }, { "user", "lifetime" },
      "have the service issue a client token (api 2022-11-01)" },
    { "invoke", "invoke", { "hub", "connection", "target", "json?" }, {},
      "call a client method, print its result (api 2024-12-01)" },
    { "execute", "execute", { "hub", "commands" }, { "filter" },
      "run commands on the connections a filter picks (api 2023-07-01)" },
    { "negotiate", "negotiate", { "hub" }, { "user", "lifetime" },
      "what a negotiate endpoint returns (url and accessToken; no I/O)" },
    { "health", "health", {}, {}, "is the service healthy? (no token)" },
}
local BY_NAME = {}
for _, c in ipairs(COMMANDS) do BY_NAME[c[1]] = c end

local GLOBAL = [[
global options:
  --connection-string CS   else $AzureSignalRConnectionString (prefer the
                           variable: arguments show in the process list)
  --api-version V          "2022-06-01" (default), a later date, or "v1"
  --application NAME       app-name prefix of hubs
  --timeout S --retries N  per request
  --json                   print one JSON object: {"ok":..,"result"|"error",..}
  --help                   this text; COMMAND --help for one command
exit status: 0 success (or "yes"), 1 "no" (existence checks), 2 usage or
local input error, 3 service error (Microsoft Entra ID refusals too),
4 transport error]]

local function command_usage(c)
    local pos = {}
    for _, p in ipairs(c[3]) do
        pos[#pos + 1] = p == "json?" and "[ARGS_JSON]" or p == "commands" and "COMMANDS_JSON" or p:upper()
    end
    local opts = {}
    for _, o in ipairs(c[4]) do
        opts[#opts + 1] = "[--" .. o .. (o == "exclude" and " ID,ID..." or " VALUE") .. "]"
    end
    return "signalr " .. c[1] .. " " .. concat(pos, " ") .. (#opts > 0 and (" " .. concat(opts, " ")) or "")
        .. "\n  " .. c[5] .. (c[3][#c[3]] == "json?"
            and "\n  ARGS_JSON: the invocation's arguments as a JSON array (default [])" or "")
        .. (c[1] == "execute" and ("\n  COMMANDS_JSON: a JSON array of {\"type\":\"SendMessage\",\"target\":..,"
            .. "\"arguments\":[..]}, {\"type\":\"JoinGroup\"|\"LeaveGroup\",\"group\":..},"
            .. " {\"type\":\"CloseConnection\",\"reason\":..}") or "")
end

function _M.usage()
    local lines = { "usage: signalr [global options] COMMAND ARGS... [options]", "", "commands:" }
    for _, c in ipairs(COMMANDS) do
        lines[#lines + 1] = string.format("  %-22s %s", c[1], c[5])
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = GLOBAL
    return concat(lines, "\n")
end

-- Print the outcome; return the exit status.
local function finish(out, as_json, ok, result, msg, details)
    if as_json then
        local t
        if ok then
            t = { ok = true, result = result }
        else
            t = { ok = false, error = msg, code = details and details.code,
                  status = details and details.status,
                  service_code = details and details.service_code ~= "" and details.service_code or nil }
        end
        out.stdout(json.encode_value(t) .. "\n")
    elseif ok then
        if type(result) == "table" then
            out.stdout(json.encode_value(result) .. "\n")
        elseif type(result) == "string" then
            out.stdout(result .. "\n")
        else
            out.stdout(tostring(result) .. "\n")
        end
    else
        out.stderr("signalr: " .. tostring(msg) .. "\n")
    end
    if ok then return result == false and EXIT.no or EXIT.ok end
    local code = details and details.code
    if SERVICE[code] or (code == "EAUTH" and details.status) then return EXIT.service end
    if TRANSPORT[code] then return EXIT.transport end
    return EXIT.usage
end

--- Run the command line `args` (a list of strings).  `out` has `stdout(s)`,
-- `stderr(s)` and `getenv(name)`.  Returns the exit status.
function _M.run(args, out)
    local global, rest, as_json = {}, {}, false
    local i = 1
    local function fail(msg)
        out.stderr("signalr: " .. msg .. "\n")
        return EXIT.usage
    end
    -- split options (anywhere) from positionals
    local opts = {}
    while i <= #args do
        local a = args[i]
        local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
        name = name or a:match("^%-%-([%w%-]+)$")
        if name then
            if name == "json" then as_json = true
            elseif name == "help" or name == "h" then opts.help = true
            else
                local v = inline
                if v == nil then
                    i = i + 1
                    v = args[i]
                    if v == nil then return fail("--" .. name .. " needs a value") end
                end
                opts[name] = v
            end
        else
            rest[#rest + 1] = a
        end
        i = i + 1
    end
    local cname = table.remove(rest, 1)
    if not cname then
        if opts.help then out.stdout(_M.usage() .. "\n"); return EXIT.ok end
        return fail("no command\n" .. _M.usage())
    end
    local c = BY_NAME[cname]
    if not c then
        -- echoed only when it is a plain word: an argument in the wrong
        -- place may be the connection string, with its key
        if cname:find("=", 1, true) or cname:find(";", 1, true) then
            return fail("unknown command (the first argument looks like a connection string,"
                .. " not shown: pass it in AzureSignalRConnectionString or with --connection-string;"
                .. " see signalr --help)")
        elseif #cname > 32 or not cname:match("^[%w][%w%-_]*$") then
            return fail("unknown command (not shown: not a command name; see signalr --help)")
        end
        return fail("unknown command '" .. cname .. "' (see signalr --help)")
    end
    if opts.help then out.stdout("usage: " .. command_usage(c) .. "\n\n" .. GLOBAL .. "\n"); return EXIT.ok end
    -- global options
    for _, g in ipairs { "connection-string", "api-version", "application", "timeout", "retries" } do
        global[g] = opts[g]
        opts[g] = nil
    end
    for k in pairs(opts) do
        local known = false
        for _, o in ipairs(c[4]) do if o == k then known = true end end
        if not known then return fail("unknown option --" .. k .. " for " .. cname) end
    end
    local min, max = 0, #c[3]
    for _, p in ipairs(c[3]) do if p:sub(-1) ~= "?" then min = min + 1 end end
    if #rest < min or #rest > max then
        return fail("wrong number of arguments\nusage: " .. command_usage(c))
    end
    local cs = global["connection-string"] or out.getenv("AzureSignalRConnectionString")
    if not cs or cs == "" then
        return fail("no connection string: set AzureSignalRConnectionString or pass --connection-string")
    end
    local o = { connection_string = cs, api_version = global["api-version"],
                application = global.application, transport = "curl" }
    for _, k in ipairs { "timeout", "retries" } do
        if global[k] then
            o[k] = tonumber(global[k])
            if not o[k] then return fail("--" .. k .. " must be a number") end
        end
    end
    local okn, client, msg, details = pcall(signalr.new, o)
    if not okn then return fail(tostring(client):gsub("^[^:]*:%d+: ", "")) end
    if not client then return finish(out, as_json, false, nil, msg, details) end
    if c[2] == "health" then
        local r, m, d = client:health()
        return finish(out, as_json, r ~= nil, r, m, d)
    end
    -- positional arguments, then the JSON arguments
    local call = {}
    local hub_name = rest[1]
    local hub, hm, hd = client:hub(hub_name)
    if not hub then return finish(out, as_json, false, nil, hm, hd) end
    for k = 2, #c[3] do
        local p = c[3][k]
        if p == "json?" then
            local text = rest[k] or "[]"
            local okj, v = pcall(json.decode_exact, text)
            if not okj or type(v) ~= "table" or text:match("^%s*(.)") ~= "[" then
                return fail("ARGS_JSON must be a JSON array, e.g. '[\"hi\", {\"x\": 1}]'")
            end
            call[#call + 1] = v
        else
            call[#call + 1] = rest[k]
        end
    end
    -- command options
    local t = {}
    if opts.exclude then
        t.exclude = {}
        for id in opts.exclude:gmatch("[^,]+") do t.exclude[#t.exclude + 1] = id end
    end
    for _, k in ipairs { "ttl", "top", "lifetime" } do
        if opts[k] then
            t[k] = tonumber(opts[k])
            if not t[k] then return fail("--" .. k .. " must be a number") end
        end
    end
    t.reason, t.user_id = opts.reason, opts.user
    local m = c[2]
    local okc, r, em, ed
    if m == "execute" then
        local okj, list = pcall(json.decode_exact, call[1])
        if not okj or type(list) ~= "table" or call[1]:match("^%s*(.)") ~= "[" then
            return fail("COMMANDS_JSON must be a JSON array of command objects")
        end
        okc, r, em, ed = pcall(hub.execute, hub, list, { filter = opts.filter })
    elseif m == "negotiate" or m == "generate_client_token" then
        okc, r, em, ed = pcall(hub[m], hub, t)
    elseif m == "close_connection" then
        okc, r, em, ed = pcall(hub[m], hub, call[1], t.reason)
    elseif next(t) then
        -- the options table goes last (after the JSON arguments, if any)
        if m == "add_user_to_group" then t = { ttl = t.ttl }
        elseif m == "group_connections" then t = { top = t.top }
        elseif c[4][1] == "exclude" then t = { exclude = t.exclude, reason = t.reason } end
        if m == "broadcast" or m == "to_group" then
            if #call == #c[3] - 2 then call[#call + 1] = {} end
            t.reason = nil
        end
        call[#call + 1] = t
        okc, r, em, ed = pcall(hub[m], hub, (table.unpack or unpack)(call))
    else
        okc, r, em, ed = pcall(hub[m], hub, (table.unpack or unpack)(call))
    end
    if not okc then return fail(tostring(r):gsub("^[^:]*:%d+: ", "")) end
    return finish(out, as_json, r ~= nil, r, em, ed)
end

return _M
