-- End to end, persistent mode: a libcurl server connection speaking the
-- service protocol to the emulator, and real @microsoft/signalr clients
-- (JSON and MessagePack) receiving what Lua sends; acknowledged group
-- operations and checks; a 5 MB message byte for byte; Entra ID.
local signalr = require "signalr"
local env = require "helpers.env"
local digest = require "openssl.digest"

local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

describe("persistent mode (server connections) with real clients", function()
    local emu, pool, client, hub, ids = nil, nil, nil, nil, {}

    local function got(name) return pool:got(name) end
    local function count(name, tag)
        local n = 0
        for _, a in ipairs(got(name)) do if a[1] == tag then n = n + 1 end end
        return n
    end
    -- A marker to everyone, then wait until each has it: all sent before
    -- it has arrived (one server connection, one client connection: ordered).
    local function sync(names)
        pool:sync(function(marker)
            assert.is_true(hub:broadcast("newMessage", { "sync", marker }))
            assert(client:flush(5))
        end, names)
    end

    local ALL = { "alice_json", "alice_mp", "bob_mp", "carol_json" }

    setup(function()
        emu = env.emulator("--ping-interval 1")
        pool = env.clients(emu)
        client = assert(signalr.new { connection_string = emu.cs, mode = "persistent" })
        hub = assert(client:hub("Chat"))
        for _, c in ipairs { { "alice_json", "alice", "json" }, { "alice_mp", "alice", "messagepack" },
                             { "bob_mp", "bob", "messagepack" }, { "carol_json", "carol", "json" } } do
            local err
            ids[c[1]], err = pool:connect(c[1], assert(hub:negotiate { user_id = c[2] }), nil, 4000,
                { protocol = c[3], digest = true })
            assert(ids[c[1]], err)
        end
        -- the first send opens the connection: it waits in the queue
        local first = hub:broadcast("newMessage", { "sync", 0 })
        assert(first)
        assert(client:flush(10))
        assert.is_true(first == true or (first.done and first.result == true))
        emu:clear()
    end)
    teardown(function()
        if client then client:close() end
        pool:quit()
        emu:stop()
    end)

    it("broadcast reaches JSON and MessagePack clients, arguments intact", function()
        local args = { "b1", { n = 1, list = { 1, 2.5, "x" }, yes = true }, signalr.null, -7 }
        assert.is_true(hub:broadcast("newMessage", args))
        sync(ALL)
        for _, n in ipairs(ALL) do
            local a = got(n)[1]
            assert.equal("b1", a[1])
            assert.same({ n = 1, list = { 1, 2.5, "x" }, yes = true }, a[2])
            assert.equal(-7, a[4])
        end
        -- no REST request: the message went as one frame
        assert.equal(0, #emu:requests())
    end)

    it("to_user, to_connection, exclude", function()
        assert.is_true(hub:to_user("alice", "newMessage", { "u1" }))
        assert.is_true(hub:to_connection(ids.bob_mp, "newMessage", { "c1" }))
        assert.is_true(hub:broadcast("newMessage", { "ex" }, { exclude = { ids.carol_json } }))
        sync(ALL)
        assert.equal(1, count("alice_json", "u1"))
        assert.equal(1, count("alice_mp", "u1"))
        assert.equal(0, count("bob_mp", "u1"))
        assert.equal(1, count("bob_mp", "c1"))
        assert.equal(0, count("carol_json", "c1"))
        assert.equal(0, count("carol_json", "ex"))
        assert.equal(1, count("bob_mp", "ex"))
    end)

    it("acknowledged joins, then group sends; checks answer the service's answer", function()
        assert.is_true(hub:add_connection_to_group(ids.alice_mp, "red"))
        assert.is_true(hub:add_user_to_group("bob", "blue"))
        assert.is_true(hub:add_connection_to_group(ids.carol_json, "blue"))
        local r, msg, d = hub:add_connection_to_group("no-such-connection", "red")
        assert.is_nil(r)
        assert.equal("ESTATUS", d.code)
        assert.equal(404, d.status)
        assert.matches("not found", msg)
        assert.is_true(hub:group_exists("red"))
        assert.is_false(hub:group_exists("green"))
        assert.is_true(hub:user_in_group("bob", "blue"))
        assert.is_false(hub:user_in_group("carol", "red"))
        assert.is_true(hub:user_exists("alice"))
        assert.is_false(hub:user_exists("nobody"))
        assert.is_true(hub:connection_exists(ids.bob_mp))
        assert.is_false(hub:connection_exists("no-such-connection"))

        assert.is_true(hub:to_group("red", "newMessage", { "g-red" }))
        assert.is_true(hub:to_group("blue", "newMessage", { "g-blue" }, { exclude = { ids.carol_json } }))
        sync(ALL)
        assert.equal(1, count("alice_mp", "g-red"))
        assert.equal(0, count("alice_json", "g-red"))
        assert.equal(1, count("bob_mp", "g-blue"))
        assert.equal(0, count("carol_json", "g-blue"))

        assert.is_true(hub:remove_connection_from_group(ids.alice_mp, "red"))
        assert.is_false(hub:group_exists("red"))
        assert.is_true(hub:remove_user_from_all_groups("bob"))
        assert.is_false(hub:user_in_group("bob", "blue"))
        assert.is_true(hub:remove_connection_from_all_groups(ids.carol_json))
        assert.is_false(hub:group_exists("blue"))
    end)

    it("multi-user, multi-group and multi-connection sends: one message, each client once", function()
        assert.is_true(hub:add_connection_to_group(ids.alice_json, "g1"))
        assert.is_true(hub:add_connection_to_group(ids.alice_json, "g2"))
        assert.is_true(hub:add_connection_to_group(ids.bob_mp, "g2"))
        local before = emu:stats().server_types or {}
        assert.is_true(hub:to_users({ "alice", "carol" }, "newMessage", { "mu" }))
        assert.is_true(hub:to_groups({ "g1", "g2" }, "newMessage", { "mg" }))
        assert.is_true(hub:to_connections({ ids.alice_mp, ids.bob_mp }, "newMessage", { "mc" }))
        sync(ALL)
        assert.equal(1, count("alice_json", "mu"))
        assert.equal(1, count("alice_mp", "mu"))
        assert.equal(1, count("carol_json", "mu"))
        assert.equal(0, count("bob_mp", "mu"))
        assert.equal(1, count("alice_json", "mg")) -- in both groups: once
        assert.equal(1, count("bob_mp", "mg"))
        assert.equal(0, count("carol_json", "mg"))
        assert.equal(1, count("alice_mp", "mc"))
        assert.equal(1, count("bob_mp", "mc"))
        assert.equal(0, count("alice_json", "mc"))
        local after = emu:stats().server_types
        assert.equal(1, (after["9"] or 0) - (before["9"] or 0))
        assert.equal(1, (after["14"] or 0) - (before["14"] or 0))
    end)

    it("a 5 MB message arrives byte for byte, in both protocols", function()
        local parts = {}
        for i = 1, 5 * 1024 do parts[i] = string.format("%04d", i % 10000) .. string.rep("é", 510) end
        local big = table.concat(parts) -- 5 MiB + of UTF-8, two bytes a character
        assert.is_true(#big >= 5 * 1024 * 1024)
        local want = hex(digest.new("sha256"):final(big))
        assert.is_true(hub:to_user("alice", "newMessage", { big }))
        assert(client:flush(30))
        for _, n in ipairs { "alice_json", "alice_mp" } do
            env.wait(function()
                for _, m in ipairs(pool:messages(n)) do
                    if type(m.args[1]) == "table" and m.args[1].sha256 then return true end
                end
            end, 30, n .. " to get the 5 MB message")
            local m
            for _, x in ipairs(pool:messages(n)) do
                if type(x.args[1]) == "table" and x.args[1].sha256 then m = x.args[1] end
            end
            assert.equal(#big, m.length)
            assert.equal(want, m.sha256)
        end
    end)

    it("a message past max_message_size fails at once, nothing sent", function()
        local small = assert(signalr.new { connection_string = emu.cs, mode = "persistent",
                                           max_message_size = 64 * 1024 })
        local h = assert(small:hub("Chat"))
        local r, msg, d = h:broadcast("newMessage", { string.rep("x", 70 * 1024) })
        assert.is_nil(r)
        assert.equal("ETOOBIG", d.code)
        assert.matches("max_message_size", msg)
        small:close()
    end)

    it("bad input: EINVAL before anything is sent; wrong types raise", function()
        local r, _, d = hub:to_user("", "newMessage", {})
        assert.is_nil(r)
        assert.equal("EINVAL", d.code)
        r, _, d = hub:to_groups({ "ok", "" }, "newMessage", {})
        assert.is_nil(r)
        assert.equal("EINVAL", d.code)
        assert.has_error(function() hub:to_users("alice", "t", {}) end)
        assert.has_error(function() hub:to_users({}, "t", {}) end)
        assert.has_error(function() hub:to_connections({ 1 }, "t", {}) end)
        assert.has_error(function() signalr.new { connection_string = emu.cs, mode = "fast" } end)
        assert.has_error(function() signalr.new { connection_string = emu.cs, connection_count = 2 } end)
        assert.has_error(function()
            signalr.new { connection_string = emu.cs, mode = "persistent", async = true }
        end)
    end)

    it("close_connection closes the client; the operations REST keeps still work", function()
        assert.is_true(hub:close_connection(ids.carol_json, "bye"))
        assert(client:flush(5))
        env.wait(function() return #pool:filter("closed", "carol_json") > 0 end, 10, "carol to close")
        -- closing a user's connections has no acknowledged message in the
        -- service protocol the SDK uses: it stays REST
        assert.is_true(hub:close_user_connections("nobody"))
        local reqs = emu:requests()
        assert.equal(1, #reqs)
        assert.matches("/users/nobody/:closeConnections", reqs[1].path, 1, true)
    end)

    it("connection_count opens that many server connections, used in turn", function()
        local two = assert(signalr.new { connection_string = emu.cs, mode = "persistent",
                                         connection_count = 3 })
        local h = assert(two:hub("Chat"))
        assert(h:broadcast("newMessage", { "sync", -1 }))
        assert(two:flush(10))
        env.wait(function()
            two:poll(0.05) -- outside nginx, connections progress in poll
            local n = 0
            for _, c in ipairs(two:status().hubs.chat.connections) do
                if c.state == "open" then n = n + 1 end
            end
            return n == 3
        end, 10, "three open connections")
        for i = 1, 6 do assert.is_true(h:to_user("bob", "newMessage", { "rr", i })) end
        assert(two:flush(5))
        env.wait(function() return count("bob_mp", "rr") == 6 end, 10, "bob to get 6")
        two:close()
    end)
end)

describe("persistent mode with Microsoft Entra ID (no AccessKey)", function()
    local SECRET = "entra-persistent-secret-W4pZ"
    it("the identity's token opens the server connection; clients negotiate with a temporary key", function()
        local emu = env.emulator("--ping-interval 1 --disable-local-auth --entra-app p1:" .. SECRET)
        local pool = env.clients(emu)
        local c = assert(signalr.new {
            connection_string = "Endpoint=http://localhost;Port=" .. emu.port
                .. ";AuthType=azure.app;ClientId=p1;ClientSecret=" .. SECRET .. ";TenantId=t;Version=1.0;",
            authority_host = emu.base .. "/", mode = "persistent" })
        local h = assert(c:hub("Chat"))
        assert(pool:connect("e1", assert(h:negotiate { user_id = "eve" }), nil, 4000,
            { protocol = "messagepack" }))
        assert(h:to_user("eve", "newMessage", { "entra", 1 }))
        assert(c:flush(10))
        env.wait(function() return pool:count("e1", "entra") == 1 end, 10, "eve's message")
        assert.is_true(h:user_exists("eve"))
        assert.equal(1, emu:stats().server_handshakes)
        c:close()
        -- the server connection ends with a WebSocket close (1000)
        env.wait(function() return emu:stats().server_clean_closes == 1 end, 10, "a clean close")
        pool:quit()
        emu:stop()
    end)

    it("a refused token is the connection's error, and sends say so", function()
        local emu = env.emulator("--disable-local-auth")
        local c = assert(signalr.new { connection_string = emu.cs, mode = "persistent", timeout = 1 })
        local h = assert(c:hub("Chat"))
        local first, _, d0 = h:broadcast("newMessage", { 1 })
        if type(first) == "table" then
            -- queued while the first attempt ran: it expires with an error
            assert(c:flush(5))
            assert.truthy(first.done and first.error)
        else
            assert.equal("ECONNECT", d0.code)
        end
        -- while the refusal's backoff runs, a send is refused at once
        local r, msg, d
        env.wait(function()
            c:poll(0.05)
            r, msg, d = h:broadcast("newMessage", { 2 })
            return r == nil
        end, 10, "a send refused at once")
        assert.equal("ECONNECT", d.code)
        assert.equal(403, d.status)
        assert.matches("403", msg)
        c:close()
        emu:stop()
    end)
end)

describe("persistent mode with several endpoints", function()
    it("every endpoint gets the message over its own server connection; a dead one is named", function()
        local eu, us = env.emulator("--ping-interval 1"), env.emulator("--ping-interval 1")
        local pool_eu, pool_us = env.clients(eu), env.clients(us)
        local c = assert(signalr.new { mode = "persistent", server_timeout = 2, keepalive_interval = 0.5,
            endpoints = { { connection_string = eu.cs, name = "eu" },
                          { connection_string = us.cs, name = "us", type = "secondary" } } })
        local h = assert(c:hub("Chat"))
        local one = assert(assert(signalr.new(eu.cs)):hub("Chat"))
        local two = assert(assert(signalr.new(us.cs)):hub("Chat"))
        assert(pool_eu:connect("a", assert(one:negotiate { user_id = "ann" }), nil, 4000))
        assert(pool_us:connect("b", assert(two:negotiate { user_id = "ben" }), nil, 4000,
            { protocol = "messagepack" }))
        assert(h:broadcast("newMessage", { "both", 1 }))
        assert(c:flush(10))
        assert.is_true(h:broadcast("newMessage", { "both", 2 }))
        assert(c:flush(5))
        env.wait(function() return pool_eu:count("a", "both") == 2 and pool_us:count("b", "both") == 2 end,
            10, "both endpoints' clients")
        assert.is_true(h:user_exists("ben"))            -- true if any endpoint says so
        assert.equal(1, eu:stats().server_handshakes)
        assert.equal(1, us:stats().server_handshakes)
        assert.equal(0, eu:stats().rest_requests)
        us:kill()
        env.wait(function()
            c:poll(0.05)
            local r, _, d = h:broadcast("newMessage", { "after", 1 })
            return r == nil and d.code == "EPARTIAL" and d.endpoints.eu == true
                and type(d.endpoints.us) == "table"
        end, 10, "the dead endpoint to be named")
        c:close()
        pool_eu:quit()
        pool_us:quit()
        eu:stop()
    end)
end)

describe("multi-target sends in transient mode (one REST send each)", function()
    it("to_users, to_groups and to_connections loop over the REST routes", function()
        local emu = env.emulator("--ping-interval 1")
        local pool = env.clients(emu)
        local h = assert(assert(signalr.new(emu.cs)):hub("Chat"))
        local a = assert(pool:connect("a", assert(h:negotiate { user_id = "ann" }), nil, 4000))
        local b = assert(pool:connect("b", assert(h:negotiate { user_id = "ben" }), nil, 4000,
            { protocol = "messagepack" }))
        assert.is_true(h:add_connection_to_group(a, "g1"))
        assert.is_true(h:add_connection_to_group(b, "g2"))
        emu:clear()
        assert.is_true(h:to_users({ "ann", "ben" }, "newMessage", { "mu" }))
        assert.is_true(h:to_groups({ "g1", "g2" }, "newMessage", { "mg" }))
        assert.is_true(h:to_connections({ a }, "newMessage", { "mc" }))
        env.wait(function()
            return pool:count("a", "mu") == 1 and pool:count("b", "mu") == 1 and pool:count("a", "mg") == 1
                and pool:count("b", "mg") == 1 and pool:count("a", "mc") == 1
        end, 10, "the multi-target messages")
        assert.equal(5, #emu:requests()) -- 2 + 2 + 1 REST sends
        -- one of them failing: the error says which went
        emu:fault { mode = "status", status = 400, count = 1, path = "/users/ben/" }
        local r, msg, d = h:to_users({ "ann", "ben" }, "newMessage", { "part" })
        assert.is_nil(r)
        assert.equal("EPARTIAL", d.code)
        assert.equal(1, d.delivered)
        assert.equal("ben", d.failed[1].id)
        assert.matches("1 of 2", msg)
        pool:quit()
        emu:stop()
    end)
end)
