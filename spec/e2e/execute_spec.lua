-- :execute with real @microsoft/signalr clients: the filter picks the
-- connections, and every command applies to exactly those, in order.
local signalr = require "signalr"
local env = require "helpers.env"

describe("execute with real clients", function()
    local emu, pool, hub, ids = nil, nil, nil, {}
    setup(function()
        emu = env.emulator()
        pool = env.clients(emu)
        hub = assert(assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01" }):hub("chat"))
        for _, u in ipairs { "player-1", "player-2", "spectator" } do
            local id, err = pool:connect(u, assert(hub:negotiate { user_id = u }))
            assert(id, err)
            ids[u] = id
        end
    end)
    teardown(function()
        pool:quit()
        emu:stop()
    end)

    local function got(name, tag) return pool:count(name, tag) end

    it("joins the filtered connections to a group and sends to them", function()
        assert.is_true(hub:execute({
            { type = "JoinGroup", group = "players" },
            { type = "SendMessage", target = "newMessage", arguments = { "welcome", { n = 1 } } },
        }, { filter = "startswith(userId, 'player-')" }))
        env.wait(function() return got("player-1", "welcome") == 1 and got("player-2", "welcome") == 1 end,
            10, "the players to be welcomed")
        assert.same({ "welcome", { n = 1 } }, pool:messages("player-1")[1].args)
        assert.is_true(hub:group_exists("players"))
        assert.is_true(hub:to_group("players", "newMessage", { "team" }))
        env.wait(function() return got("player-2", "team") == 1 end, 10, "the group send")
        -- the spectator got neither
        assert.is_true(hub:to_user("spectator", "newMessage", { "sync" }))
        env.wait(function() return got("spectator", "sync") == 1 end, 10, "the spectator's sync")
        assert.equal(0, got("spectator", "welcome") + got("spectator", "team"))
    end)

    it("filters on groups and connection ids; leaves and closes", function()
        assert.is_true(hub:execute({ { type = "SendMessage", target = "newMessage", arguments = { "g" } } },
            { filter = "'players' in groups and connectionId ne '" .. ids["player-1"] .. "'" }))
        env.wait(function() return got("player-2", "g") == 1 end, 10, "player-2")
        assert.equal(0, got("player-1", "g"))
        assert.is_true(hub:execute({ { type = "LeaveGroup", group = "players" },
            { type = "CloseConnection", reason = "round over" } }, { filter = "userId eq 'player-2'" }))
        env.wait(function() return #pool:filter("closed", "player-2") == 1 end, 10, "player-2 to close")
        assert.truthy(pool:filter("closed", "player-2")[1].error:find("round over", 1, true))
        assert.is_false(hub:connection_exists(ids["player-2"]))
        assert.is_true(hub:connection_exists(ids["player-1"]))
    end)

    it("a filter the service cannot read is a 400 naming it", function()
        local ok, msg, details = hub:execute({ { type = "CloseConnection" } }, { filter = "userId eq" })
        assert.is_nil(ok)
        assert.equal(400, details.status)
        assert.equal("Error.Filter.Invalid", details.service_code)
        assert.truthy(msg:find("invalid filter", 1, true), msg)
        assert.is_true(hub:connection_exists(ids["player-1"]))
    end)

    it("needs api_version 2023-07-01 or later", function()
        local old = assert(assert(signalr.new(emu.cs)):hub("chat"))
        local ok, msg, details = old:execute { { type = "CloseConnection" } }
        assert.is_nil(ok)
        assert.equal("EUNSUPPORTED", details.code)
        assert.truthy(msg:find("2023-07-01", 1, true), msg)
    end)
end)
