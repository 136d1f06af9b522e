-- End to end: the emulator, real @microsoft/signalr clients (Node), tokens
-- from hub:negotiate, and every row of the API table as the clients see it.
local signalr = require "signalr"
local env = require "helpers.env"

describe("delivery to real SignalR clients", function()
    local emu, pool, hub, ids = nil, nil, nil, {}

    -- Messages of one client, sync markers left out.
    local function got(name) return pool:got(name) end

    -- Broadcast a marker and wait until each named client has it.
    local function sync(names)
        pool:sync(function(marker) assert(hub:broadcast("newMessage", { "sync", marker })) end, names)
    end

    local function count(name, tag)
        local n = 0
        for _, a in ipairs(got(name)) do if a[1] == tag then n = n + 1 end end
        return n
    end

    local ALL = { "alice1", "alice2", "bob", "carol" }

    setup(function()
        emu = env.emulator("--ping-interval 1")
        pool = env.clients(emu)
        local client = assert(signalr.new(emu.cs))
        hub = assert(client:hub("Chat"))
        for _, c in ipairs { { "alice1", "alice" }, { "alice2", "alice" }, { "bob", "bob" },
                             { "carol", "carol" } } do
            local err
            ids[c[1]], err = pool:connect(c[1], assert(hub:negotiate { user_id = c[2] }), nil, 4000)
            assert(ids[c[1]], err)
        end
    end)
    teardown(function()
        pool:quit()
        emu:stop()
    end)

    it("broadcast reaches every client", function()
        assert.is_true(hub:broadcast("newMessage", { "b1", { n = 1 } }))
        sync(ALL)
        for _, n in ipairs(ALL) do assert.equal(1, count(n, "b1")) end
    end)

    it("broadcast with exclude skips those connections", function()
        assert.is_true(hub:broadcast("newMessage", { "b2" }, { exclude = { ids.bob, ids.alice2 } }))
        sync(ALL)
        assert.same({ 1, 0, 0, 1 }, { count("alice1", "b2"), count("alice2", "b2"),
                                      count("bob", "b2"), count("carol", "b2") })
    end)

    it("to_user reaches every connection of that user and nobody else", function()
        assert.is_true(hub:to_user("alice", "newMessage", { "u1" }))
        sync(ALL)
        assert.same({ 1, 1, 0, 0 }, { count("alice1", "u1"), count("alice2", "u1"),
                                      count("bob", "u1"), count("carol", "u1") })
    end)

    it("to_connection reaches one connection", function()
        assert.is_true(hub:to_connection(ids.alice2, "newMessage", { "c1" }))
        sync(ALL)
        assert.same({ 0, 1, 0, 0 }, { count("alice1", "c1"), count("alice2", "c1"),
                                      count("bob", "c1"), count("carol", "c1") })
    end)

    it("group membership decides who gets to_group", function()
        assert.is_false(hub:group_exists("team"))
        assert.is_true(hub:add_connection_to_group(ids.bob, "team"))
        assert.is_true(hub:add_user_to_group("carol", "team"))
        assert.is_true(hub:group_exists("team"))
        assert.is_true(hub:user_in_group("carol", "team"))
        assert.is_false(hub:user_in_group("alice", "team"))
        assert.is_true(hub:to_group("team", "newMessage", { "g1" }))
        sync(ALL)
        assert.same({ 0, 0, 1, 1 }, { count("alice1", "g1"), count("alice2", "g1"),
                                      count("bob", "g1"), count("carol", "g1") })
        -- exclude within the group
        assert.is_true(hub:to_group("team", "newMessage", { "g2" }, { exclude = { ids.carol } }))
        -- remove bob's connection, carol as a user; add alice via the binding shape
        assert.is_true(hub:remove_connection_from_group(ids.bob, "team"))
        assert.is_true(hub:remove_user_from_group("carol", "team"))
        assert.is_true(hub:send { action = "add", userId = "alice", groupName = "team" })
        assert.is_true(hub:send { target = "newMessage", arguments = { "g3" }, groupName = "team" })
        sync(ALL)
        assert.same({ 0, 0, 1, 0 }, { count("alice1", "g2"), count("alice2", "g2"),
                                      count("bob", "g2"), count("carol", "g2") })
        assert.same({ 1, 1, 0, 0 }, { count("alice1", "g3"), count("alice2", "g3"),
                                      count("bob", "g3"), count("carol", "g3") })
        assert.is_true(hub:remove_user_from_all_groups("alice"))
        assert.is_true(hub:add_connection_to_group(ids.carol, "x"))
        assert.is_true(hub:add_connection_to_group(ids.carol, "y"))
        assert.is_true(hub:remove_connection_from_all_groups(ids.carol))
        assert.is_false(hub:group_exists("team"))
        assert.is_false(hub:group_exists("x"))
    end)

    it("a user membership with a ttl expires", function()
        assert.is_true(hub:add_user_to_group("bob", "short", { ttl = 1 }))
        assert.is_true(hub:to_group("short", "newMessage", { "t1" }))
        env.sleep(2.2)
        assert.is_false(hub:user_in_group("bob", "short"))
        assert.is_true(hub:to_group("short", "newMessage", { "t2" }))
        sync({ "bob" })
        assert.same({ 1, 0 }, { count("bob", "t1"), count("bob", "t2") })
    end)

    it("hub names match whatever their case", function()
        local shout = assert(assert(signalr.new(emu.cs)):hub("CHAT"))
        assert.is_true(shout:to_user("bob", "newMessage", { "case" }))
        sync({ "bob" })
        assert.equal(1, count("bob", "case"))
    end)

    it("the v1 route family delivers too", function()
        local v1 = assert(assert(signalr.new { connection_string = emu.cs, api_version = "v1" }):hub("chat"))
        assert.is_true(v1:to_user("carol", "newMessage", { "v1" }))
        assert.is_true(v1:user_exists("carol"))
        sync({ "carol" })
        assert.equal(1, count("carol", "v1"))
    end)

    it("payloads arrive byte-identical: unicode, many arguments, about 1 MB", function()
        local uni = { "héllo wörld ✓ 🚀 ∑ 日本語 \"quoted\" back\\slash /slash", { nested = { "ü", 1.5, true } } }
        local many = { "many" }
        for i = 2, 200 do many[i] = i % 2 == 0 and i or ("s" .. i) end
        local big = { "big", string.rep("0123456789abcdef", 65000) }  -- 1,040,000 chars
        assert.is_true(hub:to_user("bob", "newMessage", { "uni", uni }))
        assert.is_true(hub:to_user("bob", "newMessage", many))
        assert.is_true(hub:to_user("bob", "newMessage", big))
        sync({ "bob" })
        local seen = {}
        for _, a in ipairs(got("bob")) do seen[a[1]] = a end
        assert.same({ "uni", uni }, seen.uni)
        assert.same(many, seen.many)
        assert.equal(#big[2], #seen.big[2])
        assert.equal(big[2], seen.big[2])
    end)

    it("existence checks follow clients connecting and leaving", function()
        assert.is_false(hub:user_exists("dave"))
        local id = assert(pool:connect("dave", assert(hub:negotiate { user_id = "dave" })))
        assert.is_true(hub:user_exists("dave"))
        assert.is_true(hub:connection_exists(id))
        pool:send { cmd = "stop", name = "dave" }
        env.wait(function() return #pool:filter("closed", "dave") > 0 end, 10, "dave to stop")
        env.wait(function() return hub:user_exists("dave") == false end, 5, "dave to be gone")
        assert.is_false(hub:connection_exists(id))
    end)

    it("close_connection closes the client with the reason", function()
        local id = assert(pool:connect("erin", assert(hub:negotiate { user_id = "erin" })))
        assert.is_true(hub:close_connection(id, "kicked by the game"))
        local ev = env.wait(function() return pool:filter("closed", "erin")[1] end, 10, "erin closed")
        assert.equal("Server returned an error on close: kicked by the game", ev.error)
        assert.is_false(hub:connection_exists(id))
    end)

    it("a client that sends is disconnected, saying why", function()
        assert(pool:connect("frank", assert(hub:negotiate { user_id = "frank" })))
        pool:send { cmd = "invoke", name = "frank", target = "echo", args = { 1 } }
        local ev = env.wait(function() return pool:filter("closed", "frank")[1] end, 10, "frank closed")
        assert.truthy(ev.error:find("listen-only", 1, true), ev.error)
        env.wait(function() return hub:user_exists("frank") == false end, 5, "frank gone")
    end)

    it("a bad key gets 401 and nothing is delivered", function()
        local bad = assert(signalr.new("Endpoint=http://localhost;Port=" .. emu.port
            .. ";AccessKey=WRONGKEYWRONGKEYWRONGKEYWRONGKEYWRONGKEY0000"))
        local ok, msg, details = bad:hub("chat"):broadcast("newMessage", { "evil" })
        assert.is_nil(ok)
        assert.equal(401, details.status)
        assert.truthy(msg:find("signature", 1, true))
        -- a client token signed with the wrong key is refused at negotiate
        local _, err = pool:connect("mallory", assert(bad:hub("chat"):negotiate { user_id = "m" }))
        assert.truthy(err and err:find("401", 1, true), err)
        sync(ALL)
        for _, n in ipairs(ALL) do assert.equal(0, count(n, "evil")) end
    end)

    it("pings keep clients alive past their server timeout", function()
        -- clients were started with a 4 s server timeout; pings come every 1 s
        env.sleep(5)
        for _, n in ipairs(ALL) do assert.equal(0, #pool:filter("closed", n)) end
        sync(ALL)
    end)
end)
