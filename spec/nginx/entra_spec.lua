-- Microsoft Entra ID inside a real nginx: token and temporary-key requests
-- over cosockets, a real client negotiating through nginx and receiving a
-- broadcast, and the token cache under 50 concurrent requests at start-up:
-- one token request per worker, or one in all with a shared dict.
local env = require "helpers.env"

local SECRET = "entra-client-secret-Q7vX2mP9kL4t"

local nginx = require "helpers.nginx"
local sh = nginx.sh

-- spec/nginx/entra.conf, rendered into a private prefix and started
local function start_nginx(emu)
    local cs = "Endpoint=http://localhost;Port=" .. emu.port
        .. ";AuthType=azure.app;ClientId=@ID@;ClientSecret=" .. SECRET .. ";TenantId=t1;Version=1.0;"
    return nginx.start_conf("entra.conf", { ENTRA_CS = cs, ENTRA_AUTHORITY = emu.base .. "/" }, function(n)
        -- no route of its own answers without a token: a 404 means it serves
        return sh("curl -s -o /dev/null -w '%{http_code}' " .. n.base .. "/") == "404"
    end)
end

local stop_nginx = nginx.stop

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
