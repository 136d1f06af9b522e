-- A Lua hub server behind the service (Default mode): spec/e2e/apps/
-- hub_app.lua runs in a process of its own (its own loop: server:run(), or
-- luv), the emulator routes real @microsoft/signalr clients (JSON and
-- MessagePack; WebSockets, Server-Sent Events, Long Polling) to it, and
-- the clients invoke Lua handlers: results, hub errors, the generic error,
-- unknown methods, sends, pushes from the hub, groups, closes.
local signalr = require "signalr"
local env = require "helpers.env"
local hub_clients = require "helpers.hub_clients"
local cjson_null = require("cjson").null

local function start_app(emu, loop, extra_env)
    local log = emu.dir .. "/hub_" .. loop .. ".log"
    os.remove(log)
    local cmd = string.format("%s %s AzureSignalRConnectionString='%s' LUA_PATH='%s' LUA_CPATH='%s'"
        .. " %s %s/spec/e2e/apps/hub_app.lua %s %s > %s.out 2>&1 & echo $!",
        env.CLEAN, extra_env or "", emu.cs, os.getenv("LUA_PATH"), os.getenv("LUA_CPATH"),
        "lua5.4", env.root, log, loop, log)
    local p = io.popen(cmd)
    local pid = p:read("*l")
    p:close()
    -- ready when its server connections are up at the emulator
    env.wait(function()
        local _, body = emu:http("GET", "/_emulator/servers")
        local n = 0
        for _, s in ipairs(require("cjson").decode(body or "[]")) do
            if s.carries_clients then n = n + 1 end
        end
        return n >= 2
    end, 15, "the hub server's connections (" .. (env.read(log .. ".out") or "") .. ")")
    return { pid = pid, log = log }
end

local function stop_app(app)
    os.execute("kill " .. app.pid .. " 2>/dev/null")
    env.keep_log(app.log .. ".out", "hub_app.out")
end

local function lines(app, word)
    local out = {}
    for l in (env.read(app.log) or ""):gmatch("[^\n]+") do
        if l:find("^" .. word .. " ") then out[#out + 1] = l end
    end
    return out
end

for _, loop in ipairs { "run", "luv" } do
    describe("a Lua hub server (" .. loop .. ")", function()
        local emu, pool, app, rest, hc
        setup(function()
            emu = env.emulator("--service-mode default")
            pool = env.clients(emu)
            app = start_app(emu, loop)
            rest = assert(assert(signalr.new(emu.cs)):hub("chat"))
            hc = hub_clients.new(pool, rest)
        end)
        teardown(function()
            pool:quit()
            stop_app(app)
            emu:stop()
        end)

        local function connect(user, extra) return hc.connect(user, extra) end
        local function call(...) return hc.call(...) end

        for _, variant in ipairs {
            { "JSON over WebSockets", {} },
            { "MessagePack over WebSockets", { protocol = "messagepack" } },
            { "JSON over Server-Sent Events", { transport = "ServerSentEvents" } },
            { "MessagePack over Long Polling", { protocol = "messagepack", transport = "LongPolling" } },
        } do
            it(variant[1] .. ": results, hub errors, the generic error, unknown methods", function()
                local name, cid = connect("alice", variant[2])
                -- on_connected ran first and pushed a welcome
                env.wait(function() return pool:count(name, "welcome") == 1 end, 10, "the welcome")
                assert.same({ "welcome", "alice" }, pool:messages(name)[1].args)
                local r = call(name, "Add", 2, 3)
                assert.equal("result", r.ev)
                assert.equal(5, r.result)
                -- names match without regard to case, as in .NET
                assert.equal(41.5, call(name, "add", 40, 1.5).result)
                assert.same({ 1, "two", { three = 3 } }, call(name, "Echo", { 1, "two", { three = 3 } }).result)
                local who = call(name, "Whoami").result
                assert.equal(cid, who.id)
                assert.equal("alice", who.user)
                assert.equal(variant[2].protocol or "json", who.protocol)
                assert.same({ x = 1, y = -1, n = 1 }, call(name, "Move", 1, -1).result)
                r = call(name, "Move", 5, 0)
                assert.equal("call_failed", r.ev)
                assert.equal("An unexpected error occurred invoking 'Move' on the server. HubException: bad move",
                    r.error)
                r = call(name, "Boom")
                assert.equal("An unexpected error occurred invoking 'Boom' on the server.", r.error)
                r = call(name, "NoSuchMethod", 1)
                assert.equal("Unknown hub method 'NoSuchMethod'", r.error)
                r = call(name, "Add", 1)
                assert.equal("Failed to invoke 'Add' due to an error on the server.", r.error)
                r = call(name, "Nothing")
                assert.equal("result", r.ev)
                if variant[2].protocol == "messagepack" then
                    -- NaN, which JSON cannot carry: that call fails as
                    -- arguments not bound, the connection lives on
                    -- (Nothing takes no arguments: not bound, not ignored)
                    r = call(name, "Nothing", "__NaN__")
                    assert.equal("call_failed", r.ev)
                    assert.equal("Failed to invoke 'Nothing' due to an error on the server.", r.error)
                    assert.equal(3, call(name, "Add", 1, 2).result)
                end
                -- per-connection state kept in ctx.items
                assert.equal(1, call(name, "Whoami").result.moves)
                pool:send { cmd = "stop", name = name }
                env.wait(function()
                    for _, l in ipairs(lines(app, "disconnected")) do
                        if l:find(cid, 1, true) then return true end
                    end
                end, 10, "on_disconnected")
            end)
        end

        it("a client's send runs its handler without an answer; the hub's broadcast reaches everyone", function()
            local a = connect("ann")
            local b = connect("bob", { protocol = "messagepack" })
            pool:send { cmd = "invoke", name = a, target = "Shout", args = { "hi all" } }
            env.wait(function() return pool:count(a, "shout") == 1 and pool:count(b, "shout") == 1 end, 10,
                "the shout")
            assert.same({ "shout", "ann", "hi all" }, pool:filter("message", b)[2].args)
        end)

        it("groups: ctx:join waits for the service's answer, then a group send reaches the members", function()
            local a = connect("cat")
            local b = connect("dan")
            assert.is_true(call(a, "JoinRoom", "red").result)
            env.wait(function() return pool:count(a, "joined") == 1 end, 10, "the group send")
            assert.equal(0, pool:count(b, "joined"))
            -- REST still reaches routed clients
            assert.is_true(rest:to_group("red", "newMessage", { "rest" }))
            env.wait(function() return pool:count(a, "rest") == 1 end, 10, "the REST group send")
        end)

        it("a slow handler does not hold other clients' invocations", function()
            local a = connect("eve")
            local b = connect("fay")
            pool:send { cmd = "call", name = a, id = hc.fresh("slow"), target = "Slow", args = { 2 } }
            local t0 = os.time()
            assert.equal(7, call(b, "Add", 3, 4).result)
            assert.is_true(os.time() - t0 <= 1)
        end)

        it("client results: ctx:invoke gets the client's value or its error", function()
            local a = connect("hal", { results = { GetInput = 42 } })
            assert.same({ value = 42 }, call(a, "AskInput", 7).result)
            local invoked = pool:filter("invoked", a)
            assert.equal("GetInput", invoked[1].target)
            assert.same({ 7 }, invoked[1].args)
            local b = connect("ida", { protocol = "messagepack", failures = { GetInput = "no input" } })
            local r = call(b, "AskInput", 1).result
            assert.equal("ECLIENT", r.code)
            assert.truthy(r.error:find("no input", 1, true), r.error)
            -- a client without the handler: the JS client's own answer
            local c = connect("jon")
            r = call(c, "AskInput", 1).result
            assert.equal("ECLIENT", r.code)
            assert.truthy(r.error:find("Client didn't provide a result.", 1, true), r.error)
        end)

        it("streams both ways: items, completion, a cancel; an upload summed", function()
            for _, extra in ipairs { {}, { protocol = "messagepack" } } do
                local a, cid = connect("kim", extra)
                local sid = hc.fresh("s")
                pool:send { cmd = "stream", name = a, id = sid, target = "Count", args = { 5 } }
                local done = hc.stream_done(a, sid)
                assert.is_nil(done.error ~= cjson_null and done.error or nil)
                assert.same({ 1, 2, 3, 4, 5 }, hc.items(a, sid))
                -- an endless stream, cancelled by the client: on_cancel once
                local tid = hc.fresh("t")
                pool:send { cmd = "stream", name = a, id = tid, target = "Ticks", args = {} }
                env.wait(function() return #hc.items(a, tid) >= 3 end, 10, "ticks")
                pool:send { cmd = "cancel", name = a, id = tid }
                env.wait(function()
                    for _, l in ipairs(lines(app, "cancelled")) do
                        if l:find(cid, 1, true) then return true end
                    end
                end, 10, "on_cancel")
                -- the client's own stream in: a Subject
                local uid = hc.fresh("u")
                pool:send { cmd = "upload", name = a, id = uid, target = "Sum", args = { "batch" },
                            items = { 1, 2, 3.5 } }
                local r = hc.answer(a, uid, 10, "the upload's result")
                assert.same({ label = "batch", total = 6.5, n = 3 }, r.result)
                -- an invoke of a streaming method: ASP.NET Core's text
                assert.equal("The client attempted to invoke the streaming 'Count' method with a"
                    .. " non-streaming invocation.", call(a, "Count", 1).error)
            end
        end)

        it("ctx:close ends the client; on_disconnected runs once per client", function()
            local a, cid = connect("gus")
            call(a, "Bye")
            env.wait(function() return #pool:filter("closed", a) == 1 end, 10, "the close")
            env.wait(function()
                local k = 0
                for _, l in ipairs(lines(app, "disconnected")) do
                    if l:find(cid, 1, true) then k = k + 1 end
                end
                return k == 1
            end, 10, "one on_disconnected")
            env.sleep(0.3)
            local k = 0
            for _, l in ipairs(lines(app, "disconnected")) do if l:find(cid, 1, true) then k = k + 1 end end
            assert.equal(1, k)
            -- every connected client got exactly one connected line
            local seen = {}
            for _, l in ipairs(lines(app, "connected")) do
                local id = l:match("^connected (%S+)")
                assert.is_nil(seen[id], "connected twice: " .. id)
                seen[id] = true
            end
        end)
    end)
end
