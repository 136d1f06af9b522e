-- A hub server inside a real nginx with 2 workers (examples/nginx/: the
-- configuration and hub_app.lua as shipped): each worker opens its own
-- server connections from init_worker_by_lua, real @microsoft/signalr
-- clients (JSON and MessagePack) are spread over both by the emulator
-- (Default mode), handlers run in light threads (cosockets, sleeps, sends
-- through the server), a slow handler holds no other client, and a reload
-- swaps the workers with nothing unhandled in the log.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local signalr = require "signalr"
local cjson = require "cjson"
local hub_clients = require "helpers.hub_clients"
local sh = nginx.sh

local function carrying(emu)
    local _, body = emu:http("GET", "/_emulator/servers")
    local n = 0
    for _, s in ipairs(cjson.decode(body or "[]")) do
        if s.carries_clients then n = n + 1 end
    end
    return n
end

local function worker_pids(n)
    local out = sh("pgrep -P $(cat " .. n.prefix .. "/logs/nginx.pid) | sort")
    local pids = {}
    for p in out:gmatch("%d+") do pids[#pids + 1] = tonumber(p) end
    return pids
end

describe("a hub server inside nginx (examples/nginx)", function()
    local n, emu, pool, rest, hc
    setup(function()
        emu = env.emulator("--service-mode default")
        n = nginx.start(function(prefix, port)
            return sh(string.format("AzureSignalRConnectionString='%s' %s/examples/nginx/run.sh %s %d 2>&1",
                emu.cs, env.root, prefix, port))
        end, function(x)
            return sh("curl -s -o /dev/null -w '%{http_code}' " .. x.base .. "/ready") == "200"
        end)
        -- 2 workers x 2 connections
        env.wait(function() return carrying(emu) == 4 end, 15, "4 server connections")
        pool = env.clients(emu)
        rest = assert(assert(signalr.new(emu.cs)):hub("game"))
        hc = hub_clients.new(pool, rest)
    end)
    teardown(function()
        if pool then pool:quit() end
        if n then nginx.stop(n) end
        if emu then emu:stop() end
    end)

    local function connect(user, extra) return hc.connect(user, extra) end
    local function start_call(...) return hc.start_call(...) end
    local function answer(...) return hc.answer(...) end
    local function call(...) return hc.call(...) end

    it("each worker serves clients; results for JSON and MessagePack", function()
        local pids, names = {}, {}
        for i = 1, 8 do
            local name = connect("p", { protocol = i % 2 == 0 and "messagepack" or "json" })
            names[i] = name
            local r = call(name, "Worker")
            assert.equal("result", r.ev)
            local k = ("%d"):format(r.result)
            pids[k] = (pids[k] or 0) + 1
            assert.equal(i + 1, call(name, "Add", i, 1).result)
        end
        local workers = worker_pids(n)
        assert.equal(2, #workers)
        -- the service spread the 8 clients over both workers' connections
        for _, w in ipairs(workers) do assert.equal(4, pids[("%d"):format(w)], cjson.encode(pids)) end
        -- on_connected ran in each worker and pushed a welcome with its pid
        for _, name in ipairs(names) do
            env.wait(function() return pool:count(name, "welcome") == 1 end, 10, "the welcome")
        end
    end)

    it("thousands of invocations: every one answered right (handlers' timers hand over)", function()
        local a = connect("loop")
        local b = connect("loop", { protocol = "messagepack" })
        for _, x in ipairs { a, b } do
            pool:send { cmd = "loop", name = x, id = "L" .. x, target = "Add", args = { 100 },
                        parallel = 4, check = "sum" }
        end
        env.sleep(3)
        for _, x in ipairs { a, b } do pool:send { cmd = "unloop", name = x } end
        local done = env.wait(function()
            local d = pool:filter("loop_done")
            if #d == 2 then return d end
        end, 15, "the loops' end")
        local total = 0
        for _, d in ipairs(done) do
            assert.equal(0, d.failed, cjson.encode(d))
            assert.equal(0, d.wrong, cjson.encode(d))
            assert.equal(d.sent, d.results, cjson.encode(d))
            total = total + d.results
        end
        -- more than one dispatcher's worth of handler threads per worker
        assert.is_true(total > 2 * 2 * 512, "only " .. total .. " invocations")
    end)

    it("a handler uses cosockets; a 2 s handler holds no other client of its worker", function()
        local a = connect("slow")
        local pa = call(a, "Worker").result
        -- a client on the same worker as a
        local b
        for _ = 1, 6 do
            local x = connect("quick")
            if call(x, "Worker").result == pa then b = x break end
        end
        assert.truthy(b, "no second client on the slow client's worker")
        local slow = start_call(a, "Slow", 2)
        local t0 = os.time()
        for i = 1, 5 do assert.equal(i * 2, call(b, "Add", i, i).result) end
        assert.equal(42, call(b, "Score").result) -- an HTTP GET over a cosocket
        assert.is_true(os.time() - t0 <= 1, "the quick client waited for the slow one")
        assert.equal("slept 2", answer(a, slow, 10, "the slow handler").result)
        -- a's own next invocation ran after its slow one (one at a time)
        assert.equal(3, call(a, "Add", 1, 2).result)
    end)

    it("sends through the server's connections, groups, client results, streams", function()
        local a = connect("ann")
        local b = connect("bob", { protocol = "messagepack", results = { GetInput = 7 } })
        pool:send { cmd = "invoke", name = a, target = "Shout", args = { "hi" } }
        env.wait(function() return pool:count(a, "shout") == 1 and pool:count(b, "shout") == 1 end, 10,
            "the shout on both workers")
        assert.is_true(call(a, "JoinRoom", "red").result)
        env.wait(function() return pool:count(a, "joined") == 1 end, 10, "the group send")
        assert.equal(0, pool:count(b, "joined"))
        assert.same({ value = 7 }, call(b, "AskInput", 1).result)
        local sid = hc.fresh("s")
        pool:send { cmd = "stream", name = a, id = sid, target = "Count", args = { 5 } }
        assert.equal(cjson.null, hc.stream_done(a, sid).error)
        assert.same({ 1, 2, 3, 4, 5 }, hc.items(a, sid))
        -- an endless stream, cancelled by the client: on_cancel runs (in
        -- whichever worker serves b)
        local tid = hc.fresh("t")
        pool:send { cmd = "stream", name = b, id = tid, target = "Ticks", args = {} }
        env.wait(function() return #hc.items(b, tid) >= 3 end, 10, "ticks")
        pool:send { cmd = "cancel", name = b, id = tid }
        env.wait(function()
            return cjson.decode(sh("curl -s " .. n.base .. "/status")).cancelled == 1
        end, 10, "on_cancel")
        -- a stream in (a Subject), both protocols
        for _, x in ipairs { a, b } do
            local uid = hc.fresh("u")
            pool:send { cmd = "upload", name = x, id = uid, target = "Sum", args = { "batch" }, items = { 1, 2, 3.5 } }
            assert.same({ label = "batch", total = 6.5, n = 3 }, answer(x, uid, 10, "the upload's result").result)
        end
    end)

    it("a reload: the old workers close their connections, the new ones serve", function()
        local a = connect("old")
        local before = worker_pids(n)
        local gone = cjson.decode(sh("curl -s " .. n.base .. "/status")).disconnected
        sh("nginx -p " .. n.prefix .. " -c " .. n.prefix .. "/nginx.conf -s reload")
        env.wait(function()
            local now = worker_pids(n)
            if #now ~= 2 then return false end
            for _, p in ipairs(now) do
                for _, q in ipairs(before) do if p == q then return false end end
            end
            return true
        end, 20, "the old workers to exit")
        env.wait(function() return carrying(emu) == 4 end, 15, "the new workers' 4 connections")
        -- the client of an old worker was closed with it
        env.wait(function() return #pool:filter("closed", a) == 1 end, 10, "the old worker's client closed")
        -- the old worker's on_disconnected ran for its clients as it exited
        assert.is_true(cjson.decode(sh("curl -s " .. n.base .. "/status")).disconnected > gone)
        local b = connect("new")
        local pid = call(b, "Worker").result
        local now = worker_pids(n)
        assert.truthy(pid == now[1] or pid == now[2])
        assert.equal(5, call(b, "Add", 2, 3).result)
        local log = sh("cat " .. n.prefix .. "/logs/error.log")
        assert.falsy(log:find("[error]", 1, true), log)
        assert.falsy(log:find("[alert]", 1, true), log)
        assert.falsy(log:find("unhandled", 1, true), log)
    end)
end)

describe("a hub server inside nginx with few timers", function()
    local n, emu, pool, hc
    setup(function()
        emu = env.emulator("--service-mode default")
        n = nginx.start_conf("hub_timers.conf", { AzureSignalRConnectionString = emu.cs }, function(x)
            return sh("curl -s -o /dev/null -w '%{http_code}' " .. x.base .. "/ready") == "200"
        end)
        env.wait(function() return carrying(emu) == 2 end, 15, "2 server connections")
        pool = env.clients(emu)
        hc = hub_clients.new(pool, assert(assert(signalr.new(emu.cs)):hub("game")))
    end)
    teardown(function()
        if pool then pool:quit() end
        if n then nginx.stop(n) end
        if emu then emu:stop() end
    end)

    it("long handlers pinning every timer: the handlers come back when they end", function()
        local names, ids = {}, {}
        for i = 1, 24 do
            names[i] = hc.connect("busy")
            ids[i] = hc.start_call(names[i], "Slow", 1)
        end
        for i = 1, 24 do assert.equal("slept 1", hc.answer(names[i], ids[i], 20, "a slow handler").result) end
        -- and a quick one after them
        assert.equal(3, hc.call(names[1], "Add", 1, 2).result)
    end)
end)
