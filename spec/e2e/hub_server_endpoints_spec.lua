-- A hub server with several endpoints (option `endpoints`): it opens
-- server connections to every service instance, as the SDK does; clients
-- of each instance are served; the hub's sends reach clients on every
-- instance; an instance that goes down and comes back is reconnected
-- without restarting the program.
local signalr = require "signalr"
local env = require "helpers.env"
local cjson = require "cjson"
local hub_clients = require "helpers.hub_clients"

local function carrying(emu)
    local status, body = emu:http("GET", "/_emulator/servers")
    if status ~= 200 then return 0 end
    local n = 0
    for _, s in ipairs(cjson.decode(body or "[]")) do
        if s.carries_clients then n = n + 1 end
    end
    return n
end

describe("a hub server with several endpoints", function()
    local e1, e2, pool, rest1, rest2, pid, log, hc
    setup(function()
        e1 = env.emulator("--service-mode default")
        e2 = env.emulator("--service-mode default")
        log = e1.dir .. "/hub_multi.log"
        local p = io.popen(string.format("%s HUB_ENDPOINTS='%s|%s' LUA_PATH='%s' LUA_CPATH='%s'"
            .. " lua5.4 %s/spec/e2e/apps/hub_app.lua %s run > %s.out 2>&1 & echo $!",
            env.CLEAN, e1.cs, e2.cs, os.getenv("LUA_PATH"), os.getenv("LUA_CPATH"), env.root, log, log))
        pid = p:read("*l")
        p:close()
        env.wait(function() return carrying(e1) == 2 and carrying(e2) == 2 end, 15,
            "connections to both endpoints (" .. (env.read(log .. ".out") or "") .. ")")
        pool = env.clients(e1)
        rest1 = assert(assert(signalr.new(e1.cs)):hub("chat"))
        rest2 = assert(assert(signalr.new(e2.cs)):hub("chat"))
        hc = hub_clients.new(pool, rest1)
    end)
    teardown(function()
        if pool then pool:quit() end
        if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
        env.keep_log(log .. ".out", "hub_multi.out")
        if e1 then e1:stop() end
        if e2 then e2:stop() end
    end)

    local function connect(via, user, extra) return hc.connect(user, extra, via) end
    local function call(...) return hc.call(...) end

    it("serves the clients of every endpoint; its sends reach all of them", function()
        local a = connect(rest1, "ann")
        local b = connect(rest2, "bob", { protocol = "messagepack" })
        assert.equal(5, call(a, "Add", 2, 3).result)
        assert.equal(9, call(b, "Add", 4, 5).result)
        -- a client's send: the handler broadcasts through the server's hub
        pool:send { cmd = "invoke", name = b, target = "Shout", args = { "hello" } }
        env.wait(function() return pool:count(a, "shout") == 1 and pool:count(b, "shout") == 1 end, 10,
            "the shout on both endpoints")
        -- groups are per instance: a join answers from the client's own
        assert.is_true(call(b, "JoinRoom", "blue").result)
        env.wait(function() return pool:count(b, "joined") == 1 end, 10, "the group send")
    end)

    it("an endpoint that goes down and comes back is reconnected", function()
        e2:kill()
        -- the other endpoint goes on meanwhile
        local a = connect(rest1, "cat")
        assert.equal(3, call(a, "Add", 1, 2).result)
        e2:restart()
        env.wait(function() return carrying(e2) == 2 end, 30, "the reconnection to the second endpoint")
        local b = connect(rest2, "dan")
        assert.equal(11, call(b, "Add", 5, 6).result)
        pool:send { cmd = "invoke", name = b, target = "Shout", args = { "back" } }
        env.wait(function() return pool:count(a, "shout") >= 1 and pool:count(b, "shout") == 1 end, 10,
            "the shout after the return")
    end)
end)
