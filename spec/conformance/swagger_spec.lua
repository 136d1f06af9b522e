-- Conformance with the official REST contract: every request the library
-- can emit, for every public call and option, both route families, with
-- and without an application, through libcurl (blocking and async), is
-- judged against the official swagger files (their rules as committed in
-- spec/conformance/contract.lua, which contract_spec.lua keeps true to
-- them) as the emulator received it: method,
-- path template and parameter rules, every query parameter, api-version,
-- content type, the body against its schema, and the emulator's answer
-- against the declared responses.  A refusal is right only where the
-- family's file has no such route, or the input breaks a rule the files
-- state.  (Cosockets inside nginx are judged by spec/nginx through the
-- shared rows, which run the same check.)
local signalr = require "signalr"
local request = require "signalr.request"
local env = require "helpers.env"
local swagger = require "helpers.swagger"

local unpack = table.unpack or unpack
local ops = swagger.load(swagger.contract(env.root), env.root .. "/spec/conformance/sheets")

local ARGS = { "hi", { x = 1 } }

-- Every public call, with every option it takes.  Connection ids are
-- unknown to the emulator, so its 404 answers are checked too.
local CALLS = {
    { "broadcast", { "newMessage", ARGS } },
    { "broadcast", { "newMessage" } },
    { "broadcast", { "newMessage", ARGS, { exclude = { "c1", "c 2/3" } } } },
    { "to_user", { "user/1 é", "newMessage", ARGS } },
    { "to_group", { "group one", "newMessage", ARGS } },
    { "to_group", { "g", "newMessage", ARGS, { exclude = { "c1" } } } },
    { "to_connection", { "conn?1", "newMessage", ARGS } },
    { "add_connection_to_group", { "c1", "g" } },
    { "remove_connection_from_group", { "c1", "g" } },
    { "remove_connection_from_all_groups", { "c1" } },
    { "add_user_to_group", { "u1", "g" } },
    { "add_user_to_group", { "u1", "g", { ttl = 0 } } },
    { "add_user_to_group", { "u1", "g", { ttl = 30 } } },
    { "remove_user_from_group", { "u1", "g" } },
    { "remove_user_from_all_groups", { "u1" } },
    { "connection_exists", { "c1" } },
    { "user_exists", { "u1" } },
    { "group_exists", { "g" } },
    { "user_in_group", { "u1", "g" } },
    { "close_connection", { "c1" } },
    { "close_connection", { "c1", "bye now" } },
    { "close_all_connections", {} },
    { "close_all_connections", { { exclude = { "c9" }, reason = "x y" } } },
    { "close_group_connections", { "g", { reason = "r" } } },
    { "close_user_connections", { "u1", { exclude = { "c9" } } } },
    { "send", { { target = "newMessage", arguments = ARGS, userId = "u1" } } },
    { "send", { { target = "newMessage", arguments = ARGS, groupName = "g" } } },
    { "send", { { target = "newMessage", arguments = ARGS, connectionId = "c1" } } },
    { "send", { { target = "newMessage", arguments = ARGS } } },
    { "send", { { action = "add", userId = "u1", groupName = "g" } } },
    { "send", { { action = "remove", connectionId = "c1", groupName = "g" } } },
    { "send", { { action = "removeAll", userId = "u1" } } },
    { "send", { { action = "removeAll", connectionId = "c1" } } },
    { "health" },
}

-- v1 refusals, each with the v1 route that would carry the call: v1.json
-- must have none.
local V1_ABSENT = {
    remove_connection_from_all_groups = { "DELETE", "/api/v1/hubs/chat/connections/c1/groups" },
    close_all_connections = { "POST", "/api/v1/hubs/chat/:closeConnections" },
    close_group_connections = { "POST", "/api/v1/hubs/chat/groups/g/:closeConnections" },
    close_user_connections = { "POST", "/api/v1/hubs/chat/users/u1/:closeConnections" },
}

local function has_route(method, path)
    for _, o in ipairs(ops) do
        if o.method == method and path:match(o.regex) then return true end
    end
    return false
end

local function describe_call(c)
    local a = {}
    for i, v in ipairs(c[2] or {}) do
        a[i] = type(v) == "table" and "{...}" or string.format("%q", v)
    end
    return c[1] .. "(" .. table.concat(a, ", ") .. ")"
end

-- Run a call; in async mode wait for its outcome.
local function run(client, hub, c)
    if c[1] == "health" then
        local r, msg, d = client:health()
        if type(r) == "table" then client:flush(5); return r.result, r.error, r.details end
        return r, msg, d
    end
    local r, msg, d = hub[c[1]](hub, unpack(c[2]))
    if type(r) == "table" and getmetatable(r) == request.Request then
        assert(client:flush(5))
        return r.result, r.error, r.details
    end
    return r, msg, d
end

local function assert_conforms(emu, what)
    local reqs = emu:requests()
    assert.is_true(#reqs >= 1, what .. ": nothing was sent")
    for _, rec in ipairs(reqs) do
        local op, why = swagger.check(ops, rec)
        assert(op, what .. ": " .. rec.method .. " " .. rec.path .. " breaks the contract:\n  "
            .. table.concat(why or {}, "\n  "))
    end
end

describe("conformance with the swagger files", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop() end)

    it("loads both official families", function()
        local files = {}
        for _, o in ipairs(ops) do files[o.version] = true end
        assert.is_true(files.v1 and files["2022-06-01"] and true or false)
    end)

    for _, version in ipairs { "2022-06-01", "v1" } do
        for _, app in ipairs { false, "MyApp" } do
            for _, mode in ipairs { "curl", "async" } do
                local label = version .. (app and " + application" or "") .. ", " .. mode
                describe(label, function()
                    local client, hub
                    setup(function()
                        client = assert(signalr.new { connection_string = emu.cs,
                            api_version = version, application = app or nil,
                            retries = 0, async = mode == "async" })
                        hub = assert(client:hub("Chat"))
                    end)
                    teardown(function() client:close() end)
                    for _, c in ipairs(CALLS) do
                        it(describe_call(c), function()
                            emu:clear()
                            local ok, msg, details = run(client, hub, c)
                            local name = c[1]
                            if name == "send" and c[2][1].action == "removeAll" and c[2][1].connectionId then
                                name = "remove_connection_from_all_groups"
                            end
                            local absent = version == "v1" and V1_ABSENT[name]
                            if absent then
                                assert.is_nil(ok)
                                assert.equal("EUNSUPPORTED", details.code, msg)
                                assert.equal(0, #emu:requests())
                                assert.is_false(has_route(absent[1], absent[2]))
                                return
                            end
                            assert_conforms(emu, describe_call(c))
                            -- every answer is a declared one; sends always succeed
                            if c[1] ~= "add_connection_to_group" and c[1] ~= "remove_connection_from_group"
                                and not (c[1] == "send" and c[2][1].action and c[2][1].connectionId)
                                and c[1] ~= "remove_connection_from_all_groups" then
                                assert.is_not_nil(ok, msg)
                            end
                            if app and c[1] ~= "health" then
                                local rec = emu:requests()[1]
                                if version == "v1" then
                                    assert.truthy(rec.path:find("^/api/v1/hubs/myapp_chat"), rec.path)
                                else
                                    assert.truthy(rec.path:find("application=myapp", 1, true), rec.path)
                                end
                            end
                        end)
                    end
                end)
            end
        end
    end

    describe("newer routes (2024-12-01)", function()
        for _, app in ipairs { false, "MyApp" } do
            local client, hub
            local label = app and " + application" or ""
            setup(function()
                client = assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01",
                    application = app or nil, retries = 0 })
                hub = assert(client:hub("Chat"))
            end)
            it("generate_client_token" .. label, function()
                emu:clear()
                assert.is_string(hub:generate_client_token { user_id = "u 1", lifetime = 90 })
                assert.is_string(hub:generate_client_token())
                assert_conforms(emu, "generate_client_token")
                local rec = emu:requests()[1]
                assert.truthy(rec.path:find("minutesToExpire=2", 1, true), rec.path)
                -- :generateToken has no application parameter: the hub carries it
                assert.falsy(rec.path:find("application=", 1, true))
                if app then assert.truthy(rec.path:find("/hubs/myapp_chat/", 1, true), rec.path) end
            end)
            it("execute" .. label, function()
                emu:clear()
                assert.is_true(hub:execute({
                    { type = "JoinGroup", group = "g 1" },
                    { type = "SendMessage", target = "t", arguments = { 1, "a" } },
                    { type = "SendMessage", target = "t" },
                    { type = "LeaveGroup", group = "g 1" },
                    { type = "CloseConnection", reason = "bye" },
                    { type = "CloseConnection" },
                }, { filter = "startswith(userId, 'nobody-') and 'x' in groups" }))
                assert.is_true(hub:execute { { type = "SendMessage", target = "t", arguments = {} } })
                assert_conforms(emu, "execute")
                local rec = emu:requests()[1]
                assert.truthy(rec.path:find("filter=startswith%28userId%2C%20%27nobody-%27%29", 1, true), rec.path)
                assert.falsy(rec.path:find("application=", 1, true))
                if app then assert.truthy(rec.path:find("/hubs/myapp_chat/", 1, true), rec.path) end
            end)
            it("invoke" .. label, function()
                emu:clear()
                local ok, _, details = hub:invoke("nobody?1", "getScore", { 1, "a" })
                assert.is_nil(ok)
                assert.equal(404, details.status) -- no such client: the emulator's answer
                assert_conforms(emu, "invoke")
            end)
            it("group_connections" .. label, function()
                emu:clear()
                assert.same({}, hub:group_connections("g", { top = 5, max_page_size = 2 }))
                assert.same({}, hub:group_connections("a group"))
                assert_conforms(emu, "group_connections")
            end)
        end
    end)

    describe("refusals are justified by a rule of the files", function()
        -- call, swagger parameter, bad value: the client must refuse with
        -- EINVAL, send nothing, and some file's rule for that parameter
        -- must reject the value.
        local long = string.rep("x", 1025)
        local BAD = {
            { "hub", "1chat", function(c) return c:hub("1chat") end },
            { "hub", "chat-room", function(c) return c:hub("chat-room") end },
            { "hub", string.rep("h", 129), function(c) return c:hub(string.rep("h", 129)) end },
            { "application", "my-app", function() return signalr.new {
                connection_string = "Endpoint=http://x;AccessKey=k", application = "my-app" } end },
            { "group", "", function(_, h) return h:to_group("", "t") end },
            { "group", " \t", function(_, h) return h:add_connection_to_group("c", " \t") end },
            { "group", "a\nb", function(_, h) return h:group_exists("a\nb") end },
            { "group", "a\r", function(_, h) return h:user_in_group("u", "a\r") end },
            { "group", "a\226\128\169b", function(_, h) return h:close_group_connections("a\226\128\169b") end },
            { "group", "\227\128\128", function(_, h) return h:remove_user_from_group("u", "\227\128\128") end },
            { "group", long, function(_, h) return h:add_user_to_group("u", long) end },
            { "user", long, function(_, h) return h:close_user_connections(long) end },
            { "user", "", function(_, h) return h:to_user("", "t") end },
            { "connectionId", "", function(_, h) return h:connection_exists("") end },
            { "ttl", "2147483648", function(_, h) return h:add_user_to_group("u", "g", { ttl = 2147483648 }) end },
            { "maxpagesize", "201", function(_, h) return h:group_connections("g", { max_page_size = 201 }) end },
            { "maxpagesize", "0", function(_, h) return h:group_connections("g", { max_page_size = 0 }) end },
            { "top", "0", function(_, h) return h:group_connections("g", { top = 0 }) end },
            { "minutesToExpire", "0", function(_, h) return h:generate_client_token { lifetime = 0 } end },
        }
        -- One refusal rests on the service SDK rather than the files: a
        -- negative ttl (int32, no minimum declared) is refused as the SDK
        -- refuses it ("Ttl cannot be less than 0").
        it("ttl -1 (the SDK's rule)", function()
            emu:clear()
            local h = assert(assert(signalr.new(emu.cs)):hub("chat"))
            local ok, msg, details = h:add_user_to_group("u", "g", { ttl = -1 })
            assert.is_nil(ok)
            assert.equal("EINVAL", details.code, msg)
            assert.equal(0, #emu:requests())
        end)
        local client, hub
        setup(function()
            client = assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01" })
            hub = assert(client:hub("chat"))
        end)
        for _, b in ipairs(BAD) do
            it(b[1] .. " " .. string.format("%q", b[2]:sub(1, 16)), function()
                emu:clear()
                local ok, msg, details = b[3](client, hub)
                assert.is_nil(ok)
                assert.equal("EINVAL", details.code, msg)
                assert.equal(0, #emu:requests())
                local rejected = {}
                for _, o in ipairs(ops) do
                    for _, where in ipairs { "path", "query" } do
                        local p = o.params[where][b[1]]
                        if p then
                            local why = swagger.check_string(p, b[2])
                            if b[2] == "" and not why then
                                -- an empty path segment cannot carry a value at all
                                if where == "path" then why = "empty" end
                            end
                            if why then rejected[#rejected + 1] = o.file .. ": " .. why end
                        end
                    end
                end
                assert(#rejected > 0, "no file's rule for '" .. b[1] .. "' rejects this value: "
                    .. "the refusal is not justified")
            end)
        end
    end)

    describe("the checker fails requests made wrong on purpose", function()
        local good = { method = "POST", status = 202,
            path = "/api/hubs/chat/groups/g%20x/:send?api-version=2022-06-01&excluded=c1",
            headers = { ["content-type"] = "application/json; charset=utf-8", ["content-length"] = "37" },
            body = '{"target":"t","arguments":[1,"a"]}' }
        local function with(changes)
            local r = {}
            for k, v in pairs(good) do r[k] = v end
            for k, v in pairs(changes) do r[k] = v end
            return r
        end
        it("accepts the good request", function()
            assert.truthy(swagger.check(ops, good))
        end)
        for _, c in ipairs {
            { "wrong method", { method = "PUT" } },
            { "undeclared query parameter", { path = good.path .. "&filter=x" } },
            { "missing api-version", { path = "/api/hubs/chat/groups/g%20x/:send" } },
            { "an old api-version", { path = "/api/hubs/chat/groups/g%20x/:send?api-version=2021-01-01" } },
            { "a bad hub", { path = "/api/hubs/1chat/groups/g/:send?api-version=2022-06-01" } },
            { "a group with a line break", { method = "HEAD", body = false, status = 200,
                headers = {}, path = "/api/hubs/chat/groups/a%0Ab?api-version=2022-06-01" } },
            { "an unescaped character", { path = "/api/hubs/chat/groups/g:x/:send?api-version=2022-06-01" } },
            { "an extra body property (v1.json forbids them)", { path = "/api/v1/hubs/chat",
                body = '{"target":"t","arguments":[],"extra":1}' } },
            { "an empty target", { body = '{"target":"","arguments":[]}' } },
            { "no body", { body = false } },
            { "a wrong content type", { headers = { ["content-type"] = "text/plain" } } },
            { "an undeclared answer", { status = 200 } },
            { "a body where none is taken", { method = "HEAD", body = false, status = 200,
                path = "/api/hubs/chat/groups/g?api-version=2022-06-01" } },
            { "an unknown :execute command", { path = "/api/hubs/chat/:execute?api-version=2024-12-01",
                body = '[{"type":"Teleport"}]' } },
            { "an :execute command with a stray property", {
                path = "/api/hubs/chat/:execute?api-version=2024-12-01",
                body = '[{"type":"JoinGroup","group":"g","extra":1}]' } },
            { "ttl that is not an integer", { method = "PUT", body = false, status = 200,
                path = "/api/hubs/chat/users/u/groups/g?api-version=2022-06-01&ttl=1.5",
                headers = {} } },
        } do
            it("rejects " .. c[1], function()
                local r = with(c[2])
                if r.body == false then r.body = nil end
                assert.is_nil((swagger.check(ops, r)))
            end)
        end
    end)
end)
