-- Microsoft Entra ID inside a real nginx: token and temporary-key requests
-- over cosockets, a real client negotiating through nginx and receiving a
-- broadcast, and the token cache under 50 concurrent requests at start-up:
-- one token request per worker, or one in all with a shared dict.
local env = require "helpers.env"

local SECRET = "entra-client-secret-Q7vX2mP9kL4t"

local function sh(cmd)
    local p = io.popen("unset LD_PRELOAD ASAN_OPTIONS LSAN_OPTIONS SIGNALR_BUILD; " .. cmd)
    local out = p:read("*a")
    p:close()
    return out
end

local function start_nginx(emu)
    for _ = 1, 5 do
        local port, prefix = 20000 + math.random(0, 20000), os.tmpname()
        os.remove(prefix)
        sh("mkdir -p " .. prefix .. "/logs " .. prefix .. "/temp")
        sh(string.format("sed -e 's|@ROOT@|%s|g' -e 's|@PORT@|%d|g' %s/spec/nginx/entra.conf > %s/nginx.conf",
            env.root, port, env.root, prefix))
        local cs = "Endpoint=http://localhost;Port=" .. emu.port
            .. ";AuthType=azure.app;ClientId=@ID@;ClientSecret=" .. SECRET .. ";TenantId=t1;Version=1.0;"
        local out = sh(string.format("ENTRA_CS='%s' ENTRA_AUTHORITY='%s/' nginx -p %s -c %s/nginx.conf 2>&1",
            cs, emu.base, prefix, prefix))
        if not out:find("Address already in use", 1, true) then
            assert(not out:find("emerg"), out)
            local n = { port = port, prefix = prefix, base = "http://127.0.0.1:" .. port }
            env.wait(function() return io.open(prefix .. "/logs/nginx.pid") end, 10, "nginx")
            env.sleep(0.3)
            return n
        end
    end
    error("no free port for nginx")
end

local function stop_nginx(n)
    sh("nginx -p " .. n.prefix .. " -c " .. n.prefix .. "/nginx.conf -s stop 2>&1")
    env.keep_log(n.prefix .. "/logs/error.log", "nginx")
end

-- 50 requests at once; returns the workers that answered and the bodies
local function burst(n, query)
    local out = sh(string.format("seq 1 50 | xargs -P 50 -I{} curl -s '%s/send?tag=burst&%s'", n.base, query))
    local pids, lines = {}, 0
    for pid, rest in out:gmatch("(%d+) ([^\n]*)") do
        assert.equal("ok", rest)
        pids[pid] = true
        lines = lines + 1
    end
    local workers = 0
    for _ in pairs(pids) do workers = workers + 1 end
    return workers, lines
end

describe("Microsoft Entra ID inside nginx", function()
    local emu, pool, n
    setup(function()
        math.randomseed(os.time() + 7)
        emu = env.emulator("--disable-local-auth --entra-app ngx-a:" .. SECRET .. " --entra-app ngx-b:"
            .. SECRET .. " --entra-app ngx-c:" .. SECRET)
        pool = env.clients(emu)
        n = start_nginx(emu)
    end)
    teardown(function()
        stop_nginx(n)
        pool:quit()
        emu:stop()
    end)

    it("50 concurrent requests at start-up: one token request per worker", function()
        local before = emu:stats().entra.token
        local workers, lines = burst(n, "app=ngx-a")
        assert.equal(50, lines)
        assert.truthy(workers >= 1)
        assert.equal(workers, emu:stats().entra.token - before)
        local sent = 0
        for _, r in ipairs(emu:requests()) do if r.status == 202 then sent = sent + 1 end end
        assert.equal(50, sent)
    end)

    it("with shared_dict: one token request in all", function()
        local before = emu:stats().entra.token
        local _, lines = burst(n, "app=ngx-b&dict=1")
        assert.equal(50, lines)
        assert.equal(1, emu:stats().entra.token - before)
        -- and later requests, in any worker, still make none
        assert.equal(50, select(2, burst(n, "app=ngx-b&dict=1")))
        assert.equal(1, emu:stats().entra.token - before)
    end)

    it("a real client negotiates through nginx (temporary key) and receives", function()
        local id, err = pool:connect("n1", { url = n.base .. "/chat?user=nadia&app=ngx-c" })
        assert(id, err)
        local out = sh("curl -s '" .. n.base .. "/send?app=ngx-c&tag=hello%20nadia'")
        assert.truthy(out:find(" ok\n$"), out)
        env.wait(function() return pool:count("n1", "hello nadia") == 1 end, 10, "the broadcast")
        assert.truthy(emu:stats().temp_keys >= 1)
    end)
end)
