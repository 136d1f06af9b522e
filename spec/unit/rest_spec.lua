-- Every row of the public API against a real HTTP server (the bundled
-- emulator, started per file), for both route families: method, exact path
-- and query, headers, the JWT (signature, aud, exp) and the JSON body.
local signalr = require "signalr"
local core = require "signalr.core"
local cjson = require "cjson"
local env = require "helpers.env"

local ARGS = { "hi", { x = 1 } }
local BODY = '{"target":"newMessage","arguments":["hi",{"x":1}]}'

-- name, call, { v2 method, v2 path, v2 result }, { v1 ... } or false when
-- v1 lacks the operation.  The emulator has no clients, so connection
-- operations meet "does not exist".
local ROWS = {
    { "broadcast", function(h) return h:broadcast("newMessage", ARGS) end,
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat", true, BODY } },
    { "broadcast with exclude", function(h)
          return h:broadcast("newMessage", ARGS, { exclude = { "c1", "c 2" } }) end,
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01&excluded=c1&excluded=c%202", true, BODY },
      false },
    { "broadcast without args", function(h) return h:broadcast("newMessage") end,
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01", true,
        '{"target":"newMessage","arguments":[]}' },
      { "POST", "/api/v1/hubs/chat", true, '{"target":"newMessage","arguments":[]}' } },
    { "to_user", function(h) return h:to_user("user/1", "newMessage", ARGS) end,
      { "POST", "/api/hubs/chat/users/user%2F1/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/users/user%2F1", true, BODY } },
    { "to_group", function(h) return h:to_group("group one", "newMessage", ARGS) end,
      { "POST", "/api/hubs/chat/groups/group%20one/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/groups/group%20one", true, BODY } },
    { "to_group with exclude", function(h)
          return h:to_group("g", "newMessage", ARGS, { exclude = { "c1" } }) end,
      { "POST", "/api/hubs/chat/groups/g/:send?api-version=2022-06-01&excluded=c1", true, BODY },
      false },
    { "to_connection", function(h) return h:to_connection("conn?1", "newMessage", ARGS) end,
      { "POST", "/api/hubs/chat/connections/conn%3F1/:send?api-version=2022-06-01", nil, BODY },
      { "POST", "/api/v1/hubs/chat/connections/conn%3F1", nil, BODY } },
    { "add_connection_to_group", function(h) return h:add_connection_to_group("c1", "g") end,
      { "PUT", "/api/hubs/chat/groups/g/connections/c1?api-version=2022-06-01", nil },
      { "PUT", "/api/v1/hubs/chat/groups/g/connections/c1", nil } },
    { "remove_connection_from_group", function(h) return h:remove_connection_from_group("c1", "g") end,
      { "DELETE", "/api/hubs/chat/groups/g/connections/c1?api-version=2022-06-01", nil },
      { "DELETE", "/api/v1/hubs/chat/groups/g/connections/c1", nil } },
    { "remove_connection_from_all_groups", function(h) return h:remove_connection_from_all_groups("c1") end,
      { "DELETE", "/api/hubs/chat/connections/c1/groups?api-version=2022-06-01", nil },
      false },
    { "add_user_to_group", function(h) return h:add_user_to_group("u1", "g") end,
      { "PUT", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "PUT", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "add_user_to_group with ttl", function(h) return h:add_user_to_group("u1", "g", { ttl = 30 }) end,
      { "PUT", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01&ttl=30", true },
      { "PUT", "/api/v1/hubs/chat/groups/g/users/u1?ttl=30", true } },
    { "user_in_group", function(h) return h:user_in_group("u1", "g") end,
      { "HEAD", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "GET", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "remove_user_from_group", function(h) return h:remove_user_from_group("u1", "g") end,
      { "DELETE", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "user_in_group after removal", function(h) return h:user_in_group("u1", "g") end,
      { "HEAD", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/groups/g/users/u1", false } },
    { "remove_user_from_all_groups", function(h) return h:remove_user_from_all_groups("u1") end,
      { "DELETE", "/api/hubs/chat/users/u1/groups?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/users/u1/groups", true } },
    { "connection_exists", function(h) return h:connection_exists("c1") end,
      { "HEAD", "/api/hubs/chat/connections/c1?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/connections/c1", false } },
    { "user_exists", function(h) return h:user_exists("u1") end,
      { "HEAD", "/api/hubs/chat/users/u1?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/users/u1", false } },
    { "group_exists", function(h) return h:group_exists("g") end,
      { "HEAD", "/api/hubs/chat/groups/g?api-version=2022-06-01", false },
      { "GET", "/api/v1/hubs/chat/groups/g", false } },
    { "close_connection", function(h) return h:close_connection("c1", "bye now") end,
      { "DELETE", "/api/hubs/chat/connections/c1?api-version=2022-06-01&reason=bye%20now", true },
      { "DELETE", "/api/v1/hubs/chat/connections/c1?reason=bye%20now", true } },
    { "close_all_connections", function(h) return h:close_all_connections { reason = "x" } end,
      { "POST", "/api/hubs/chat/:closeConnections?api-version=2022-06-01&reason=x", true },
      false },
    { "close_group_connections", function(h) return h:close_group_connections("g") end,
      { "POST", "/api/hubs/chat/groups/g/:closeConnections?api-version=2022-06-01", true },
      false },
    { "close_user_connections", function(h) return h:close_user_connections("u1", { exclude = { "c9" } }) end,
      { "POST", "/api/hubs/chat/users/u1/:closeConnections?api-version=2022-06-01&excluded=c9", true },
      false },
    -- the Azure Functions output-binding shapes
    { "send: message to a user", function(h)
          return h:send { target = "newMessage", arguments = ARGS, userId = "u1" } end,
      { "POST", "/api/hubs/chat/users/u1/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/users/u1", true, BODY } },
    { "send: message to a group", function(h)
          return h:send { target = "newMessage", arguments = ARGS, groupName = "g" } end,
      { "POST", "/api/hubs/chat/groups/g/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat/groups/g", true, BODY } },
    { "send: broadcast", function(h) return h:send { target = "newMessage", arguments = ARGS } end,
      { "POST", "/api/hubs/chat/:send?api-version=2022-06-01", true, BODY },
      { "POST", "/api/v1/hubs/chat", true, BODY } },
    { "send: add user", function(h) return h:send { action = "add", userId = "u1", groupName = "g" } end,
      { "PUT", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "PUT", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "send: remove user", function(h) return h:send { action = "remove", userId = "u1", groupName = "g" } end,
      { "DELETE", "/api/hubs/chat/users/u1/groups/g?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/groups/g/users/u1", true } },
    { "send: removeAll user", function(h) return h:send { action = "removeAll", userId = "u1" } end,
      { "DELETE", "/api/hubs/chat/users/u1/groups?api-version=2022-06-01", true },
      { "DELETE", "/api/v1/hubs/chat/users/u1/groups", true } },
    { "send: add connection", function(h)
          return h:send { action = "Add", connectionId = "c1", groupName = "g" } end,
      { "PUT", "/api/hubs/chat/groups/g/connections/c1?api-version=2022-06-01", nil },
      { "PUT", "/api/v1/hubs/chat/groups/g/connections/c1", nil } },
    { "send: removeAll connection", function(h)
          return h:send { action = "removeAll", connectionId = "c1" } end,
      { "DELETE", "/api/hubs/chat/connections/c1/groups?api-version=2022-06-01", nil },
      false },
}

describe("hub operations over HTTP", function()
    local emu
    setup(function() emu = env.emulator() end)
    teardown(function() emu:stop(); if os.getenv("SHOWLOG") then print(env.read(emu.dir .. "/err")) end end)

    for _, version in ipairs { "2022-06-01", "v1" } do
        describe("api_version " .. version, function()
            local hub, created
            setup(function()
                created = os.time()
                local client = assert(signalr.new { connection_string = emu.cs,
                    api_version = version, retries = 0 })
                hub = assert(client:hub("Chat"))
            end)

            for _, row in ipairs(ROWS) do
                local want = row[3]
                if version == "v1" then want = row[4] end
                if want == false then
                    it(row[1] .. " fails clearly without sending", function()
                        emu:clear()
                        local ok, msg, details = row[2](hub)
                        assert.is_nil(ok)
                        assert.equal("EUNSUPPORTED", details.code)
                        assert.truthy(msg:find("2022-06-01", 1, true), msg)
                        assert.equal(0, #emu:requests())
                    end)
                else
                    it(row[1], function()
                        emu:clear()
                        local ok, msg, details = row[2](hub)
                        local req, n = emu:last_request()
                        assert.equal(1, n)
                        assert.equal(want[1], req.method)
                        assert.equal(want[2], req.path)
                        -- token: signed with the key, aud = URL without query, exp ~ 1 h
                        local token = req.headers.authorization:match("^Bearer (.+)$")
                        local payload = assert(core.jwt_verify(token, env.KEY))
                        local claims = cjson.decode(payload)
                        assert.equal("http://localhost" .. want[2]:gsub("%?.*$", ""), claims.aud)
                        -- tokens are cached per audience: signed at or after setup
                        assert.is_true(claims.exp >= created + 3600 and claims.exp <= os.time() + 3600)
                        assert.truthy(req.headers["user-agent"]:match("^lua%-signalr/%d"))
                        if want[4] then
                            assert.equal(want[4], req.body)
                            assert.equal("application/json; charset=utf-8", req.headers["content-type"])
                        else
                            assert.is_nil(req.body)
                        end
                        if want[3] == nil then
                            assert.is_nil(ok)
                            assert.equal("ESTATUS", details.code)
                            assert.equal(404, details.status)
                            assert.equal("Error.Connection.NotExisted", details.service_code)
                            assert.truthy(msg:find("does not exist", 1, true), msg)
                        else
                            assert.equal(want[3], ok, msg)
                        end
                    end)
                end
            end

            it("health", function()
                emu:clear()
                assert.is_true(hub._client:health())
                local req = emu:last_request()
                assert.equal(version == "v1" and "/api/v1/health" or "/api/health?api-version=2022-06-01", req.path)
                assert.is_nil(req.headers.authorization)
            end)
        end)
    end

    it("keeps one connection alive across calls", function()
        local client = assert(signalr.new(emu.cs))
        local hub = client:hub("chat")
        local before = emu:stats().rest_connections
        for _ = 1, 20 do assert(hub:broadcast("newMessage", { 1 })) end
        assert.equal(before + 1, emu:stats().rest_connections)
    end)

    it("reuses the signed token for one audience", function()
        local hub = assert(signalr.new(emu.cs)):hub("chat")
        emu:clear()
        assert(hub:broadcast("a"))
        assert(hub:broadcast("b"))
        local r = emu:requests()
        assert.equal(r[1].headers.authorization, r[2].headers.authorization)
    end)
end)
