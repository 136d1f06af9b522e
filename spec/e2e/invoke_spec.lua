-- Client results with real @microsoft/signalr clients: hub:invoke reaches
-- one client's handler and returns what it returned; its error, a missing
-- handler and a gone connection each come back as their own error.
local signalr = require "signalr"
local env = require "helpers.env"

describe("invoke with real clients", function()
    local emu, pool, hub, id, other
    setup(function()
        emu = env.emulator()
        pool = env.clients(emu)
        hub = assert(assert(signalr.new { connection_string = emu.cs, api_version = "2024-12-01",
            timeout = 10 }):hub("chat"))
        local err
        id, err = pool:connect("a", assert(hub:negotiate { user_id = "a" }), nil, nil,
            { results = { getScore = { score = 42, tags = { "x" } }, ping = "pong" },
              failures = { explode = "no can do" } })
        assert(id, err)
        other, err = pool:connect("b", assert(hub:negotiate { user_id = "b" }), nil, nil,
            { results = { getScore = 7 } })
        assert(other, err)
    end)
    teardown(function()
        pool:quit()
        emu:stop()
    end)

    it("returns the client's result, from that client only", function()
        local r = assert(hub:invoke(id, "getScore", { "level-1", 3 }))
        assert.same({ score = 42, tags = { "x" } }, r.result)
        local calls = pool:filter("invoked", "a")
        assert.same({ "level-1", 3 }, calls[#calls].args)
        assert.equal(0, #pool:filter("invoked", "b"))
        assert.equal("pong", assert(hub:invoke(id, "ping")).result)
        assert.equal(7, assert(hub:invoke(other, "getScore")).result)
    end)

    it("a handler that throws: ESTATUS with the client's message", function()
        local ok, msg, details = hub:invoke(id, "explode")
        assert.is_nil(ok)
        assert.equal("ESTATUS", details.code)
        assert.equal("Error.Invocation.Failed", details.service_code)
        assert.truthy(msg:find("no can do", 1, true), msg)
    end)

    it("no handler for the method: the client's own error", function()
        local ok, msg, details = hub:invoke(id, "nothingHere")
        assert.is_nil(ok)
        assert.equal("Error.Invocation.Failed", details.service_code)
        assert.truthy(msg:find("provide a result", 1, true) or msg:find("handler", 1, true), msg)
    end)

    it("a connection that does not exist, or is gone", function()
        local ok, _, details = hub:invoke("nope", "getScore")
        assert.is_nil(ok)
        assert.equal(404, details.status)
        pool:send { cmd = "stop", name = "b" }
        env.wait(function() return not hub:connection_exists(other) end, 10, "b to leave")
        ok, _, details = hub:invoke(other, "getScore")
        assert.is_nil(ok)
        assert.equal("Error.Connection.NotExisted", details.service_code)
    end)

    it("the client stays connected and listen-only otherwise", function()
        assert.is_true(hub:connection_exists(id))
        assert.is_true(hub:to_connection(id, "newMessage", { "still here" }))
        env.wait(function() return #pool:messages("a") >= 1 end, 10, "a to get its message")
    end)
end)
