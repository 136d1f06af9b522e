-- A Lua hub server under faults (issue: "kill a server connection (and,
-- separately, the emulator) while 200 clients invoke").  The hub app
-- (spec/e2e/apps/hub_app.lua: two server connections, Add, a line per
-- on_connected and on_disconnected; its plain loop, then luv) runs in a
-- process of its own behind the emulator in Default mode; real
-- @microsoft/signalr clients (one Node process, spec/e2e/clients.js:
-- WebSockets, JSON and MessagePack) each keep two calls of Add in flight
-- while the fault strikes:
--   * one server connection dropped (its TCP socket aborted from outside
--     with `ss -K`: the emulator's admin API can only drop them all),
--   * every server connection dropped by the service (DELETE
--     /_emulator/servers),
--   * the emulator killed with SIGKILL, then started again.
-- Each case then counts, per client, every call: answered once with the
-- right sum, or failed on a client whose connection closed; none answered
-- twice (completions are counted on the wire), none left without an
-- outcome; the clients of a dropped connection closed, the others kept
-- working; the hub's on_connected ran once per client and its
-- on_disconnected once per client that is gone, never for one that is not;
-- and the hub app serves new clients afterwards.
local signalr = require "signalr"
local env = require "helpers.env"
local cjson = require "cjson"

-- how many clients invoke at once (HUB_FAULT_CLIENTS to change)
local N = tonumber(os.getenv("HUB_FAULT_CLIENTS")) or 200

local function start_app(emu, loop)
    local log = emu.dir .. "/hub_fault.log"
    os.remove(log)
    local cmd = string.format("%s AzureSignalRConnectionString='%s' LUA_PATH='%s' LUA_CPATH='%s' lua5.4"
        .. " %s/spec/e2e/apps/hub_app.lua %s %s > %s.out 2>&1 & echo $!",
        env.CLEAN, emu.cs, os.getenv("LUA_PATH"), os.getenv("LUA_CPATH"), env.root, log, loop, log)
    local p = io.popen(cmd)
    local pid = p:read("*l")
    p:close()
    return { pid = pid, log = log }
end

local function stop_app(app)
    if app then
        os.execute("kill " .. app.pid .. " 2>/dev/null")
        env.keep_log(app.log .. ".out", "hub_fault_app.out")
    end
end

-- The server connections that carry clients: { id = clients }.
local function servers(emu)
    local _, body = emu:http("GET", "/_emulator/servers")
    local ok, list = pcall(cjson.decode, body or "[]")
    local out, n = {}, 0
    for _, s in ipairs(ok and list or {}) do
        if s.carries_clients and s.handshaken then
            out[s.id] = s.clients
            n = n + 1
        end
    end
    return out, n
end

local function wait_servers(emu, app, secs)
    env.wait(function()
        local _, n = servers(emu)
        return n >= 2
    end, secs or 15, "the hub app's two server connections (" .. (env.read(app.log .. ".out") or "") .. ")")
end

-- The hub app's log: per connection id, how many connected and
-- disconnected lines (and the last disconnected kind).
local function app_log(app)
    local L = { connected = {}, disconnected = {}, kind = {}, nc = 0, nd = 0 }
    for l in (env.read(app.log) or ""):gmatch("[^\n]+") do
        local word, id, rest = l:match("^(%S+) (%S+) ?(.*)$")
        if word == "connected" then
            L.connected[id] = (L.connected[id] or 0) + 1
            L.nc = L.nc + 1
        elseif word == "disconnected" then
            L.disconnected[id] = (L.disconnected[id] or 0) + 1
            L.kind[id] = rest
            L.nd = L.nd + 1
        end
    end
    return L
end

-- Every event of the pool, by client name.
local function by_name(pool)
    local out = {}
    local function of(name)
        local t = out[name]
        if not t then
            t = { closed = 0, done = {}, calls = {} }
            out[name] = t
        end
        return t
    end
    local reports = {}
    for _, e in ipairs(pool:events()) do
        if e.ev == "loops" then
            reports[#reports + 1] = e.loops
        elseif e.name then
            local t = of(e.name)
            if e.ev == "connected" then t.id = e.connectionId
            elseif e.ev == "failed" then t.failed = e.error
            elseif e.ev == "closed" then t.closed = t.closed + 1 t.close_error = e.error
            elseif e.ev == "loop_done" then t.done[#t.done + 1] = e
            elseif e.ev == "result" or e.ev == "call_failed" then t.calls[e.id] = e
            end
        end
    end
    return out, reports
end

-- A snapshot of every loop (a "loops" event from the pool).
local function report(pool)
    local _, before = by_name(pool)
    pool:send { cmd = "loop_report" }
    return env.wait(function()
        local _, r = by_name(pool)
        return #r > #before and r[#r]
    end, 10, "the loop report")
end

for _, loop in ipairs { "run", "luv" } do
describe("a Lua hub server (" .. loop .. ") under faults, " .. N .. " clients invoking", function()
    local emu, pool, app, rest

    before_each(function()
        emu = env.emulator("--service-mode default")
        pool = env.clients(emu)
        app = start_app(emu, loop)
        wait_servers(emu, app)
        rest = assert(assert(signalr.new(emu.cs)):hub("chat"))
    end)
    after_each(function()
        if pool then pool:quit() end
        stop_app(app)
        if emu then emu:stop() end
        emu, pool, app = nil, nil, nil
    end)

    -- Connect clients prefix1..prefixN at once (every second one speaks
    -- MessagePack), counting completions on the wire; returns the names.
    local function connect_all(prefix, n)
        local names = {}
        for i = 1, n do
            local name = prefix .. i
            names[i] = name
            local nego = assert(rest:negotiate { user_id = "u" .. i })
            pool:send { cmd = "connect", name = name, url = nego.url, accessToken = nego.accessToken,
                        targets = { "newMessage" }, tally = true,
                        protocol = i % 2 == 0 and "messagepack" or nil }
        end
        local ev = env.wait(function()
            local ev = by_name(pool)
            for _, name in ipairs(names) do
                local t = ev[name]
                if not (t and (t.id or t.failed)) then return false end
            end
            return ev
        end, 60, #names .. " clients to connect")
        for _, name in ipairs(names) do
            assert(ev[name].id, name .. " did not connect: " .. tostring(ev[name].failed))
        end
        return names
    end

    -- Every client calls Add(k, 1000) in a loop (k: the call's number),
    -- two calls in flight (the hub runs a client's calls one at a time: the
    -- second waits in its session).
    local PARALLEL = 2
    local function start_loops(names)
        for _, name in ipairs(names) do
            pool:send { cmd = "loop", name = name, id = "L", target = "Add", args = { 1000 }, check = "sum",
                        parallel = PARALLEL }
        end
        -- every loop has had answers before the fault
        env.wait(function()
            local r = report(pool)
            for _, name in ipairs(names) do
                if not (r[name] and r[name].results >= 2) then return false end
            end
            return true
        end, 20, "every client's first answers")
    end

    -- Stop the loops; every loop's end reported, none with a call in flight.
    local function settle(names)
        for _, name in ipairs(names) do pool:send { cmd = "unloop", name = name } end
        local ok = pcall(env.wait, function()
            local ev = by_name(pool)
            for _, name in ipairs(names) do
                if #ev[name].done == 0 then return false end
            end
            return true
        end, 20)
        if not ok then
            local r, hung = report(pool), {}
            for _, name in ipairs(names) do
                if r[name] and r[name].pending > 0 then
                    hung[#hung + 1] = name .. " (" .. r[name].pending .. " of " .. r[name].sent .. ", "
                        .. r[name].state .. ")"
                end
            end
            error("calls without an outcome after 20 s: " .. table.concat(hung, ", "))
        end
        return by_name(pool)
    end

    -- The accounting: `gone` names the clients whose connection must have
    -- closed; every other one must still be connected.  Returns totals.
    local function account(names, ev, gone)
        local T = { sent = 0, results = 0, failed = 0, closed = 0 }
        local errors = {}
        for _, name in ipairs(names) do
            local t = ev[name]
            assert.equal(1, #t.done, name .. ": one loop end")
            local d = t.done[1]
            T.sent, T.results, T.failed = T.sent + d.sent, T.results + d.results, T.failed + d.failed
            -- every call answered or failed, none in flight, none answered twice or wrongly
            assert.equal(d.sent, d.results + d.failed, name .. ": calls without an outcome")
            assert.equal(0, d.pending, name)
            assert.equal(0, d.dups, name .. ": a call answered twice")
            -- every completion on the wire answered one of its calls
            assert.equal(d.results, d.completions, name .. ": completions read against calls answered")
            assert.equal(0, d.wrong, name .. ": a wrong answer")
            assert.is_true(d.results >= 2, name .. ": answers before the fault")
            if gone[name] then
                assert.equal(1, t.closed, name .. ": its connection closed once")
                assert.is_true(d.closed, name)
                assert.is_true(d.failed <= PARALLEL, name .. ": at most the calls in flight failed")
                T.closed = T.closed + 1
            else
                assert.equal(0, t.closed, name .. ": closed, but its server connection was not dropped")
                assert.equal("Connected", d.state, name)
            end
            -- a failed call: only on a client whose connection closed
            if d.failed > 0 then
                assert.equal(1, t.closed, name .. ": a call failed on a connection that did not close")
            end
            for text, k in pairs(d.errors) do errors[text] = (errors[text] or 0) + k end
        end
        T.errors = errors
        return T
    end

    -- The hub app's lines: on_connected once per client; on_disconnected
    -- once per client that is gone (with an error: its server connection
    -- was lost) and never for one that is not.
    local function check_app(names, ev, gone)
        local want = 0
        for _, name in ipairs(names) do if gone[name] then want = want + 1 end end
        local ok = pcall(env.wait, function()
            local L = app_log(app)
            local k = 0
            for _, name in ipairs(names) do
                if gone[name] and L.disconnected[ev[name].id] then k = k + 1 end
            end
            return k == want
        end, 15)
        env.sleep(0.3) -- time for a second report, if one were coming
        local L = app_log(app)
        for _, name in ipairs(names) do
            local id = ev[name].id
            assert.equal(1, L.connected[id], name .. " (" .. id .. "): on_connected once")
            if gone[name] then
                assert.equal(1, L.disconnected[id], name .. " (" .. id .. "): on_disconnected once"
                    .. (ok and "" or " (timed out waiting)"))
                assert.equal("error", L.kind[id], name)
            else
                assert.is_nil(L.disconnected[id], name .. " (" .. id .. "): on_disconnected for a live client")
            end
        end
        assert.equal(#names, L.nc)
        assert.equal(want, L.nd)
    end

    -- After the fault the hub app serves again: new clients connect, call,
    -- and get their answers.
    local function serves_new(prefix, n)
        wait_servers(emu, app, 20)
        local fresh = connect_all(prefix, n)
        for i, name in ipairs(fresh) do
            pool:send { cmd = "call", name = name, id = "new" .. i, target = "Add", args = { i, 1 } }
        end
        env.wait(function()
            local ev = by_name(pool)
            for i, name in ipairs(fresh) do
                if not ev[name].calls["new" .. i] then return false end
            end
            return true
        end, 15, "the new clients' answers")
        local ev = by_name(pool)
        for i, name in ipairs(fresh) do
            local e = ev[name].calls["new" .. i]
            assert.equal("result", e.ev, name .. ": " .. tostring(e.error))
            assert.equal(i + 1, e.result)
        end
        return fresh, ev
    end

    -- The live clients leave: on_disconnected once each, clean.
    local function leave(names, ev)
        for _, name in ipairs(names) do pool:send { cmd = "stop", name = name } end
        env.wait(function()
            local L = app_log(app)
            for _, name in ipairs(names) do
                if not L.disconnected[ev[name].id] then return false end
            end
            return true
        end, 20, "on_disconnected for the clients that left")
        env.sleep(0.3)
        local L = app_log(app)
        for _, name in ipairs(names) do
            assert.equal(1, L.disconnected[ev[name].id], name)
            assert.equal("clean", L.kind[ev[name].id], name)
        end
    end

    -- which server connection carries each client (the emulator's view)
    local function routes()
        local _, body = emu:http("GET", "/_emulator/clients")
        local where = {}
        for _, c in ipairs(cjson.decode(body or "[]")) do where[c.id] = c.server end
        return where
    end

    local function clients_of(server_id, where, names, ev)
        local out, n = {}, 0
        for _, name in ipairs(names) do
            if where[ev[name].id] == server_id then
                out[name] = true
                n = n + 1
            end
        end
        return out, n
    end

    -- the hub app is still up, and logged no error of its own
    local function app_healthy()
        assert.is_true(os.execute("kill -0 " .. app.pid .. " 2>/dev/null") == true, "the hub app is gone: "
            .. (env.read(app.log .. ".out") or ""))
        local out = env.read(app.log .. ".out") or ""
        assert.is_nil(out:find("[error]", 1, true), out)
        assert.is_nil(out:find("traceback", 1, true), out)
    end

    local function summary(what, T, t0)
        app_healthy()
        local texts = {}
        for text, k in pairs(T.errors) do texts[#texts + 1] = string.format("%d x %s", k, text) end
        print(string.format("\n  %s: %d calls, %d answered, %d failed, %d clients closed, %.1f s%s", what,
            T.sent, T.results, T.failed, T.closed, os.time() - t0,
            #texts > 0 and ("; errors: " .. table.concat(texts, "; ")) or ""))
    end

    -- the app's TCP connections to the emulator: their local ports
    local function app_ports()
        local p = io.popen(string.format("ss -tnpH state established '( dport = :%d )' 2>/dev/null", emu.port))
        local out = {}
        for line in p:lines() do
            if line:find("pid=" .. app.pid .. ",", 1, true) then
                out[#out + 1] = line:match("127%.0%.0%.1:(%d+)%s+127%.0%.0%.1:" .. emu.port)
            end
        end
        p:close()
        return out
    end

    it("one server connection dropped mid-run: its clients close, the others go on", function()
        local t0 = os.time()
        local names = connect_all("d", N)
        local ev = by_name(pool)
        local before, nserv = servers(emu)
        assert.equal(2, nserv)
        for _, k in pairs(before) do assert.is_true(k > 0, "both server connections carry clients") end
        local where = routes()
        start_loops(names)
        -- abort one of the app's two TCP connections (a RST to the service)
        local ports = app_ports()
        assert.equal(2, #ports, "the hub app's two connections (ss -tnp)")
        local out = io.popen(string.format("ss -K -tnH state established '( dport = :%d and sport = :%s )' 2>&1",
            emu.port, ports[1])):read("*a")
        -- (ss -K needs root and a kernel with CONFIG_INET_DIAG_DESTROY)
        local dropped = env.wait(function()
            local now = servers(emu)
            for id in pairs(before) do if not now[id] then return id end end
        end, 10, "the service to see the connection dropped (ss -K could not abort the socket? " .. out .. ")")
        local gone, ngone = clients_of(dropped, where, names, ev)
        assert.equal(before[dropped], ngone)
        assert.is_true(ngone > 0 and ngone < N)
        env.wait(function()
            local e = by_name(pool)
            for name in pairs(gone) do if e[name].closed == 0 then return false end end
            return true
        end, 15, "the dropped connection's clients to see their close")
        -- the others keep getting answers
        local r1 = report(pool)
        env.sleep(1)
        local r2 = report(pool)
        for _, name in ipairs(names) do
            if not gone[name] then
                assert.is_true(r2[name].results > r1[name].results, name .. " got no answer after the drop")
            end
        end
        ev = settle(names)
        local T = account(names, ev, gone)
        check_app(names, ev, gone)
        serves_new("dn", 10)
        -- the clients still connected leave cleanly: on_disconnected once each
        local live = {}
        for _, name in ipairs(names) do if not gone[name] then live[#live + 1] = name end end
        leave(live, ev)
        summary("one of two server connections dropped", T, t0)
    end)

    it("every server connection dropped by the service mid-run: every client closes", function()
        local t0 = os.time()
        local names = connect_all("a", N)
        start_loops(names)
        assert.equal(200, (emu:http("DELETE", "/_emulator/servers")))
        local gone = {}
        for _, name in ipairs(names) do gone[name] = true end
        env.wait(function()
            local e = by_name(pool)
            for _, name in ipairs(names) do if e[name].closed == 0 then return false end end
            return true
        end, 15, "every client to see its close")
        local ev = settle(names)
        local T = account(names, ev, gone)
        check_app(names, ev, gone)
        serves_new("an", 10)
        summary("every server connection dropped", T, t0)
    end)

    it("the emulator killed (SIGKILL) mid-run, then started again", function()
        local t0 = os.time()
        local names = connect_all("k", N)
        start_loops(names)
        emu:kill()
        local gone = {}
        for _, name in ipairs(names) do gone[name] = true end
        env.wait(function()
            local e = by_name(pool)
            for _, name in ipairs(names) do if e[name].closed == 0 then return false end end
            return true
        end, 15, "every client to see its close")
        local ev = settle(names)
        local T = account(names, ev, gone)
        -- the app saw its connections go: on_disconnected for every client
        check_app(names, ev, gone)
        emu:restart()
        -- it comes back by itself and serves new clients
        local fresh, ev2 = serves_new("kn", 10)
        local L = app_log(app)
        for _, name in ipairs(fresh) do assert.equal(1, L.connected[ev2[name].id], name) end
        summary("the emulator killed and started again", T, t0)
    end)
end)
end
