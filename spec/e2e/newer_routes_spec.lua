-- End to end for the newer routes with real @microsoft/signalr clients:
-- tokens the service generates (:generateToken) let clients connect and
-- receive, and the paged group listing shows who joined, page by page.
local signalr = require "signalr"
local env = require "helpers.env"

describe("newer routes with real clients", function()
    local emu, pool, client, hub
    setup(function()
        emu = env.emulator()
        pool = env.clients(emu)
        client = assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01" })
        hub = assert(client:hub("Chat"))
    end)
    teardown(function()
        pool:quit()
        emu:stop()
    end)

    local ids = {}
    it("a generated token lets a real client connect, as that user", function()
        local url = assert(hub:negotiate()).url -- the client URL (no token needed)
        for i = 1, 5 do
            local token = assert(hub:generate_client_token { user_id = "player" .. i, lifetime = 120 })
            local id, err = pool:connect("p" .. i, { url = url, accessToken = token })
            assert(id, err)
            ids[i] = id
        end
        assert.is_true(hub:to_user("player3", "newMessage", { "for three" }))
        env.wait(function() return #pool:messages("p3") == 1 end, 10, "p3 to get its message")
        assert.same({ "for three" }, pool:messages("p3")[1].args)
        for _, n in ipairs { "p1", "p2", "p4", "p5" } do assert.equal(0, #pool:messages(n)) end
    end)

    it("a token the service refuses: the client cannot connect", function()
        local url = assert(hub:negotiate()).url
        local token = assert(hub:generate_client_token { user_id = "x" })
        local id = pool:connect("forged", { url = url, accessToken = token:sub(1, -3) .. "xx" })
        assert.is_nil(id)
    end)

    it("group_connections lists who joined, over several pages", function()
        assert.same({}, hub:group_connections("team"))
        for i = 1, 4 do assert.is_true(hub:add_connection_to_group(ids[i], "team")) end
        emu:clear()
        local members = assert(hub:group_connections("team", { max_page_size = 3 }))
        assert.equal(4, #members)
        local want = {}
        for i = 1, 4 do want[ids[i]] = "player" .. i end
        for _, m in ipairs(members) do
            assert.equal(want[m.connection_id], m.user_id)
            want[m.connection_id] = nil
        end
        assert.same({}, want)
        -- two pages, two requests: the second carries the continuation token
        local reqs = emu:requests()
        assert.equal(2, #reqs)
        assert.truthy(reqs[2].path:find("continuationToken=", 1, true), reqs[2].path)
        -- top caps the total
        assert.equal(2, #assert(hub:group_connections("team", { top = 2, max_page_size = 1 })))
        -- members that leave are gone from the listing
        assert.is_true(hub:remove_connection_from_group(ids[1], "team"))
        assert.equal(3, #assert(hub:group_connections("team")))
    end)

    it("an error on a later page is returned, never a truncated list", function()
        local list, msg, details
        -- the first page is answered; a 503 is injected for the second
        local c2 = assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01",
            retries = 0 })
        local h2 = assert(c2:hub("Chat"))
        -- only a later page's request carries a continuationToken
        emu:fault { mode = "status", status = 503, path = "continuationToken=" }
        list, msg, details = h2:group_connections("team", { max_page_size = 2 })
        assert.is_nil(list)
        assert.equal("ESTATUS", details.code)
        assert.equal(503, details.status)
        assert.equal(2, details.fetched)
        assert.truthy(msg:find("^signalr%.group_connections: HTTP 503"), msg)
    end)
end)
