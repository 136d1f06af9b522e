-- Every operation in async mode, with real @microsoft/signalr clients: the
-- operations that answer with data (invoke, group_connections over
-- several pages, generate_client_token) return a request object whose
-- `result` is exactly what the blocking call returns, and whose error is
-- the blocking call's; on one endpoint and on several.
local signalr = require "signalr"
local env = require "helpers.env"

describe("every operation in async mode", function()
    local emu, other, pool, blocking, id, ids
    setup(function()
        emu, other = env.emulator(), env.emulator()
        pool = env.clients(emu)
        blocking = assert(assert(signalr.new { connection_string = emu.cs,
            api_version = "2024-12-01" }):hub("chat"))
        local err
        id, err = pool:connect("a", assert(blocking:negotiate { user_id = "a" }), nil, nil,
            { results = { getScore = { score = 42, tags = { "x" } } },
              failures = { explode = "no can do" } })
        assert(id, err)
        ids = { id }
        for i = 2, 4 do
            ids[i], err = pool:connect("p" .. i, assert(blocking:negotiate { user_id = "p" .. i }))
            assert(ids[i], err)
        end
        for i = 1, 4 do assert.is_true(blocking:add_connection_to_group(ids[i], "team")) end
    end)
    teardown(function()
        pool:quit()
        emu:stop()
        other:stop()
    end)

    local function async_hub(extra)
        local seen = {}
        local o = { connection_string = emu.cs, api_version = "2024-12-01", async = true,
                    on_done = function(r) seen[#seen + 1] = r end }
        for k, v in pairs(extra or {}) do o[k] = v end
        local c = assert(signalr.new(o))
        return c, assert(c:hub("chat")), seen
    end

    -- members as a set of "connection=user"
    local function set(list)
        local s = {}
        for _, m in ipairs(list) do s[m.connection_id .. "=" .. tostring(m.user_id)] = true end
        return s
    end

    it("invoke: the request's result is the blocking call's", function()
        local c, hub, seen = async_hub()
        local r = assert(hub:invoke(id, "getScore", { "level-1" }))
        assert.equal("invoke", r.op)
        assert.is_false(r.done)
        assert.is_true(c:flush(10))
        assert.is_true(r.done, r.error)
        assert.same(blocking:invoke(id, "getScore", { "level-1" }), r.result)
        assert.same({ score = 42, tags = { "x" } }, r.result.result)
        assert.same({ r }, seen)
        -- the client's error and a missing connection: as blocking mode
        local bad = assert(hub:invoke(id, "explode"))
        local gone = assert(hub:invoke("nope", "getScore"))
        assert.is_true(c:flush(10))
        local _, msg, d = blocking:invoke(id, "explode")
        assert.is_nil(bad.result)
        assert.equal(msg, bad.error)
        assert.equal(d.service_code, bad.details.service_code)
        assert.equal("ESTATUS", bad.details.code)
        assert.equal(404, gone.details.status)
        assert.equal(3, #seen)
        c:close()
    end)

    it("group_connections: every page, one request object, reported once", function()
        local c, hub, seen = async_hub()
        emu:clear()
        local r = assert(hub:group_connections("team", { max_page_size = 1 }))
        assert.equal(1, c:pending())
        assert.is_true(c:flush(10))
        assert.is_true(r.done, r.error)
        assert.equal(4, #r.result)
        assert.same(set(assert(blocking:group_connections("team"))), set(r.result))
        -- four pages were four requests, and one outcome was reported
        local pages = 0
        for _, q in ipairs(emu:requests()) do
            if q.path:find("/groups/team/connections", 1, true) then pages = pages + 1 end
        end
        assert.is_true(pages >= 4, pages)
        assert.same({ r }, seen)
        assert.equal(0, c:pending())
        -- top caps the total; an empty group is an empty list
        local top = assert(hub:group_connections("team", { top = 2, max_page_size = 1 }))
        local none = assert(hub:group_connections("nobody-here"))
        assert.is_true(c:flush(10))
        assert.equal(2, #top.result)
        assert.same({}, none.result)
        assert.equal(3, #seen)
        c:close()
    end)

    it("group_connections: a failing later page fails the whole list", function()
        local c, hub = async_hub { retries = 0 }
        local r = assert(hub:group_connections("team", { max_page_size = 2 }))
        -- the first page goes now; the second meets the fault
        env.wait(function() c:poll(0.05) return #emu:requests() > 0 end, 5, "the first page")
        emu:fault { mode = "status", status = 400, count = 1 }
        assert.is_true(c:flush(10))
        assert.is_nil(r.result)
        assert.equal("ESTATUS", r.details.code)
        assert.equal(2, r.details.fetched)
        assert.matches("^signalr%.group_connections: HTTP 400", r.error)
        c:close()
    end)

    it("generate_client_token: a token a real client connects with", function()
        local c, hub = async_hub()
        local r = assert(hub:generate_client_token { user_id = "async-user", lifetime = 120 })
        assert.is_true(c:flush(10))
        assert.is_string(r.result, r.error)
        local url = assert(blocking:negotiate()).url
        local cid, err = pool:connect("gen", { url = url, accessToken = r.result })
        assert(cid, err)
        assert.is_true(blocking:user_exists("async-user"))
        c:close()
    end)

    it("bad input is refused at once, as in blocking mode: nothing queued", function()
        local c, hub = async_hub()
        emu:clear()
        for _, call in ipairs {
            function() return hub:invoke("", "t") end,
            function() return hub:group_connections("g", { max_page_size = 1.5 }) end,
            function() return hub:generate_client_token { lifetime = 0 } end,
        } do
            local r, msg, d = call()
            assert.is_nil(r)
            assert.equal("EINVAL", d.code, msg)
        end
        assert.equal(0, c:pending())
        assert.equal(0, #emu:requests())
        c:close()
    end)

    it("several endpoints: the same results, one request object each", function()
        local seen = {}
        local c = assert(signalr.new { endpoints = {
            { connection_string = emu.cs, name = "eu" },
            { connection_string = other.cs, name = "us" } },
            api_version = "2024-12-01", async = true, retries = 0, health_interval = 60,
            on_done = function(r) seen[#seen + 1] = r end })
        local hub = c:hub("chat")
        local inv = assert(hub:invoke(id, "getScore"))
        local list = assert(hub:group_connections("team", { max_page_size = 3 }))
        local tok = assert(hub:generate_client_token { user_id = "x" })
        assert.is_true(c:flush(10))
        assert.same({ score = 42, tags = { "x" } }, inv.result and inv.result.result, inv.error)
        assert.equal(4, #list.result, list.error)
        assert.is_string(tok.result, tok.error)
        assert.equal(3, #seen)
        assert.equal(0, c:pending())
        c:close()
    end)
end)
