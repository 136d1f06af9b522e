-- signalr.hub against a stand-in transport: every hub method hands the
-- transport the operation, parameters, method name and endpoints it
-- stands for, checks its input before that, and reads the replies of the
-- calls that answer with data.  No network.
local hub_mod = require "signalr.hub"
local json = require "signalr.json"

-- A transport that records each call and answers `reply(op)`.
local function stand_in(reply)
    local t = { calls = {} }
    function t.call(_, op, params, what, names)
        t.calls[#t.calls + 1] = { op = op, params = params, what = what, names = names }
        if reply then return reply(op, params) end
        return true
    end
    function t.list(_, names, _, fetch)
        return fetch(names, {})
    end
    return t
end

local function hub(reply)
    local t = stand_in(reply)
    return hub_mod.new({}, t, "Chat"), t
end

describe("signalr.hub", function()
    describe("sends", function()
        for _, c in ipairs {
            { "broadcast", { "m", { 1 }, { exclude = { "c1" } } }, "broadcast",
              { hub = "Chat", target = "m", arguments = "[1]", excluded = { "c1" } } },
            { "to_user", { "u", "m", { "x" } }, "to_user",
              { hub = "Chat", user = "u", target = "m", arguments = '["x"]' } },
            { "to_group", { "g", "m", nil, { exclude = { "c2" } } }, "to_group",
              { hub = "Chat", group = "g", target = "m", arguments = "[]", excluded = { "c2" } } },
            { "to_connection", { "c", "m", { json.null } }, "to_connection",
              { hub = "Chat", connection = "c", target = "m", arguments = "[null]" } },
            { "to_users", { { "a", "b" }, "m" }, "to_users",
              { hub = "Chat", users = { "a", "b" }, target = "m", arguments = "[]" } },
            { "to_groups", { { "g" }, "m", { 2 } }, "to_groups",
              { hub = "Chat", groups = { "g" }, target = "m", arguments = "[2]" } },
            { "to_connections", { { "c" }, "m" }, "to_connections",
              { hub = "Chat", connections = { "c" }, target = "m", arguments = "[]" } },
        } do
            it(c[1] .. " hands the transport its operation and parameters", function()
                local h, t = hub()
                assert.is_true(h[c[1]](h, (table.unpack or unpack)(c[2], 1, 4)))
                assert.equal(1, #t.calls)
                assert.equal(c[3], t.calls[1].op)
                assert.equal(c[1], t.calls[1].what)
                assert.same(c[4], t.calls[1].params)
                assert.is_nil(t.calls[1].names)
            end)
        end

        it("passes the endpoints a call names, as names", function()
            local h, t = hub()
            h:to_user("u", "m", {}, { endpoints = { "eu", { name = "us", online = true } } })
            assert.same({ "eu", "us" }, t.calls[1].names)
        end)

        it("arguments JSON cannot carry fail before the transport is called", function()
            local h, t = hub()
            local ok, msg, d = h:broadcast("m", { print })
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.matches("^signalr%.broadcast: arguments cannot be encoded as JSON", msg)
            assert.equal(0, #t.calls)
        end)

        it("raises on wrong types, naming the method", function()
            local h = hub()
            for _, c in ipairs {
                { function() h:to_connection(1, "m") end,
                  "signalr.to_connection: connection_id must be a string, got number" },
                { function() h:to_users("a", "m") end,
                  "signalr.to_users: user_ids must be a non-empty list of strings, got string" },
                { function() h:to_groups({ "g", 2 }, "m") end,
                  "signalr.to_groups: groups[2] must be a string, got number" },
                { function() h:broadcast("m", {}, { endpoints = "eu" }) end,
                  "signalr.broadcast: opts.endpoints must be a list of endpoint names or endpoint tables,"
                  .. " got string" },
                { function() h:to_user("u", "m", {}, { exclude = {} }) end,
                  "signalr.to_user: unknown option 'exclude'" },
                { function() h.to_group("g", "m") end, "signalr.to_group: call it as hub:to_group(...)" },
            } do
                assert.has_error(c[1], c[2])
            end
        end)
    end)

    describe("group membership, checks, closes", function()
        for _, c in ipairs {
            { "add_connection_to_group", { "c", "g" }, { hub = "Chat", connection = "c", group = "g" } },
            { "remove_connection_from_group", { "c", "g" }, { hub = "Chat", connection = "c", group = "g" } },
            { "remove_connection_from_all_groups", { "c" }, { hub = "Chat", connection = "c" } },
            { "add_user_to_group", { "u", "g", { ttl = 60 } }, { hub = "Chat", user = "u", group = "g", ttl = 60 } },
            { "remove_user_from_group", { "u", "g" }, { hub = "Chat", user = "u", group = "g" } },
            { "remove_user_from_all_groups", { "u" }, { hub = "Chat", user = "u" } },
            { "connection_exists", { "c" }, { hub = "Chat", connection = "c" } },
            { "user_exists", { "u" }, { hub = "Chat", user = "u" } },
            { "group_exists", { "g" }, { hub = "Chat", group = "g" } },
            { "user_in_group", { "u", "g" }, { hub = "Chat", user = "u", group = "g" } },
            { "close_connection", { "c", "bye" }, { hub = "Chat", connection = "c", reason = "bye" } },
            { "close_all_connections", { { exclude = { "c" }, reason = "r" } },
              { hub = "Chat", excluded = { "c" }, reason = "r" } },
            { "close_group_connections", { "g" }, { hub = "Chat", group = "g" } },
            { "close_user_connections", { "u", { reason = "r" } }, { hub = "Chat", user = "u", reason = "r" } },
        } do
            it(c[1], function()
                local h, t = hub()
                assert.is_true(h[c[1]](h, (table.unpack or unpack)(c[2], 1, 3)))
                assert.equal(c[1], t.calls[1].op)
                assert.same(c[3], t.calls[1].params)
            end)
        end

        it("a check answers the transport's boolean", function()
            local h = hub(function() return false end)
            assert.is_false(h:user_exists("u"))
        end)

        it("a ttl out of range is EINVAL before the transport is called", function()
            local h, t = hub()
            local ok, msg, d = h:add_user_to_group("u", "g", { ttl = -1 })
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.equal("signalr.add_user_to_group: ttl must be a whole number of seconds from 0 to 2147483647", msg)
            assert.equal(0, #t.calls)
        end)
    end)

    describe("negotiate()", function()
        it("hands the transport the hub, user, claims (JSON), lifetime and context", function()
            local h, t = hub(function() return { url = "u", accessToken = "t" } end)
            local n = assert(h:negotiate { user_id = "alice", claims = { role = "a" }, lifetime = 60,
                                           context = { region = "eu" }, endpoints = { "eu" } })
            assert.same({ url = "u", accessToken = "t" }, n)
            local c = t.calls[1]
            assert.equal("negotiate", c.op)
            assert.same({ hub = "Chat", user = "alice", claims = '{"role":"a"}', lifetime = 60,
                          context = { region = "eu" } }, c.params)
            assert.same({ "eu" }, c.names)
        end)

        it("a lifetime under a second is EINVAL", function()
            local h, t = hub()
            local ok, _, d = h:negotiate { lifetime = 0.5 }
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.equal(0, #t.calls)
        end)
    end)

    describe("calls that answer with data", function()
        it("group_connections follows every page through its continuationToken", function()
            local pages = {
                '{"value":[{"connectionId":"a","userId":"u"}],"nextLink":"https://x/p?continuationToken=t%2F1&x=1"}',
                '{"value":[{"connectionId":"b"}]}',
            }
            local h, t = hub(function() return table.remove(pages, 1) end)
            local list = assert(h:group_connections("g", { max_page_size = 1 }))
            assert.same({ { connection_id = "a", user_id = "u" }, { connection_id = "b" } }, list)
            assert.is_nil(t.calls[1].params.continuation_token)
            assert.equal("t/1", t.calls[2].params.continuation_token)
            assert.equal(1, t.calls[2].params.max_page_size)
        end)

        it("group_connections: a page that repeats a token is EREPLY with what was fetched", function()
            local page = '{"value":[{"connectionId":"a"}],"nextLink":"https://x/p?continuationToken=t"}'
            local h = hub(function() return page end)
            local ok, msg, d = h:group_connections("g")
            assert.is_nil(ok)
            assert.equal("EREPLY", d.code)
            assert.equal(2, d.fetched)
            assert.equal("signalr.group_connections: the service repeated a continuationToken", msg)
        end)

        it("generate_client_token reads the token; minutes rounded up", function()
            local h, t = hub(function() return '{"token":"tok"}' end)
            assert.equal("tok", h:generate_client_token { user_id = "u", lifetime = 61 })
            assert.same({ hub = "Chat", user = "u", minutes_to_expire = 2 }, t.calls[1].params)
            local ok, _, d = h:generate_client_token { groups = { "g" } }
            assert.is_nil(ok)
            assert.equal("EUNSUPPORTED", d.code)
        end)

        it("invoke reads the client's result (a JSON null is signalr.null)", function()
            local h = hub(function() return '{"protocol":"json"}' end)
            local r = assert(h:invoke("c", "getScore", { 1 }))
            assert.equal(json.null, r.result)
            assert.equal("json", r.protocol)
        end)

        it("execute builds the commands' JSON; bad ones are EINVAL before any call", function()
            local h, t = hub()
            assert.is_true(h:execute({ { type = "SendMessage", target = "m", arguments = { 1 } },
                                       { type = "JoinGroup", group = "g" }, { type = "CloseConnection" } },
                                     { filter = "'g' in groups" }))
            assert.equal('[{"type":"SendMessage","message":{"target":"m","arguments":[1]}},'
                .. '{"type":"JoinGroup","group":"g"},{"type":"CloseConnection"}]', t.calls[1].params.commands)
            assert.equal("'g' in groups", t.calls[1].params.filter)
            local ok, msg, d = h:execute { { type = "Dance" } }
            assert.is_nil(ok)
            assert.equal("EINVAL", d.code)
            assert.matches("unknown type 'Dance'", msg)
            assert.equal(1, #t.calls)
        end)
    end)

    it("send() runs the Functions binding's shapes through the hub methods", function()
        local h, t = hub()
        assert.is_true(h:send { target = "m", arguments = { 1 }, groupName = "g" })
        assert.is_true(h:send { action = "removeAll", userId = "u" })
        assert.equal("to_group", t.calls[1].op)
        assert.equal("remove_user_from_all_groups", t.calls[2].op)
    end)

    it("prints its name", function()
        assert.equal("signalr.hub (Chat)", tostring((hub())))
    end)
end)
