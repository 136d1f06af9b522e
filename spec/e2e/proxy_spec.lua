-- Option proxy, through a real forward proxy (tinyproxy) counting what
-- went through it: blocking and async REST calls, persistent mode's
-- WebSocket (a CONNECT tunnel), Microsoft Entra ID token requests; the
-- environment's HTTP_PROXY / NO_PROXY honoured when no option is given;
-- a clear EUNSUPPORTED over nginx cosockets.
local signalr = require "signalr"
local env = require "helpers.env"
local proxy_mod = require "helpers.proxy"

local SECRET = "proxy-client-secret-H3jK8lM2nB5v"

describe("option proxy", function()
    local emu, proxy
    setup(function()
        emu = env.emulator("--entra-app papp:" .. SECRET)
        proxy = proxy_mod.start()
    end)
    teardown(function()
        proxy:stop()
        emu:stop()
    end)
    before_each(function()
        emu:http("DELETE", "/_emulator/faults")
        emu:clear()
        proxy:clear()
    end)

    local function at_emu(method)
        return "^" .. method .. " http://localhost:" .. emu.port .. "/api/"
    end

    it("is checked: a proxy URL, a string", function()
        assert.has_error(function() signalr.new { connection_string = emu.cs, proxy = "127.0.0.1:3128" } end,
            "signalr.new: option 'proxy' must be a proxy URL such as \"http://host:port\"")
        assert.has_error(function() signalr.new { connection_string = emu.cs, proxy = 3128 } end,
            "signalr.new: option 'proxy' must be a string, got number")
    end)

    it("blocking calls go through it; without it they do not", function()
        local h = assert(signalr.new { connection_string = emu.cs, proxy = proxy.url }):hub("chat")
        assert.is_true(h:broadcast("t", { 1 }))
        assert.is_false(h:user_exists("nobody"))
        assert.equal(1, #proxy:matching(at_emu("POST")))
        assert.equal(1, #proxy:matching(at_emu("HEAD")))
        assert.equal(2, #emu:requests())
        local direct = assert(signalr.new(emu.cs)):hub("chat")
        assert.is_true(direct:broadcast("t", { 2 }))
        assert.equal(2, #proxy:requests())
        assert.equal(3, #emu:requests())
    end)

    it("async calls go through it", function()
        local c = assert(signalr.new { connection_string = emu.cs, proxy = proxy.url, async = true })
        local h = c:hub("chat")
        local reqs = {}
        for i = 1, 5 do reqs[i] = assert(h:broadcast("t", { i })) end
        assert.is_true(c:flush(10))
        for i = 1, 5 do assert.is_true(reqs[i].result, reqs[i].error) end
        assert.equal(5, #proxy:matching(at_emu("POST")))
        c:close()
    end)

    it("a proxy that is down: ECONNECT, nothing sent", function()
        local h = assert(signalr.new { connection_string = emu.cs, proxy = "http://127.0.0.1:1",
                                       retries = 0 }):hub("chat")
        local ok, msg, d = h:broadcast("t")
        assert.is_nil(ok)
        assert.equal("ECONNECT", d.code, msg)
        assert.is_false(d.sent)
        assert.equal(0, #emu:requests())
    end)

    it("persistent mode: the server connection is a CONNECT tunnel through it", function()
        local c = assert(signalr.new { connection_string = emu.cs, proxy = proxy.url, mode = "persistent" })
        local h = assert(c:hub("chat"))
        assert(h:broadcast("t", { 1 }))
        assert(c:flush(10))
        env.wait(function() c:poll(0.05) return emu:stats().server_handshakes >= 1 end, 10, "the handshake")
        assert.equal(1, #proxy:matching("^CONNECT localhost:" .. emu.port .. " "))
        c:close()
    end)

    it("a hub server's connections are CONNECT tunnels through it; its on_log sees them", function()
        local e2 = env.emulator("--service-mode default")
        local logged = {}
        local srv = assert(signalr.server { connection_string = e2.cs, hub = "chat", proxy = proxy.url,
            connection_count = 1, retry_mode = "fixed",
            on_log = function(level, msg) logged[#logged + 1] = level .. " " .. msg end })
        srv:start()
        env.wait(function()
            srv:poll(0.05)
            return #proxy:matching("^CONNECT localhost:" .. e2.port .. " ") >= 1
                and e2:stats().server_handshakes >= 1
        end, 10, "the server connection through the proxy")
        env.wait(function() srv:poll(0.05) return #logged > 0 end, 5, "a log line")
        assert.matches("^info server connection for hub chat open$", logged[1])
        srv:close()
        e2:stop()
    end)

    it("Microsoft Entra ID token requests go through it too", function()
        local c = assert(signalr.new {
            connection_string = "Endpoint=http://127.0.0.1;Port=" .. emu.port
                .. ";AuthType=azure.app;ClientId=papp;ClientSecret=" .. SECRET .. ";TenantId=t1;Version=1.0;",
            authority_host = emu.base .. "/", proxy = proxy.url })
        -- (a check: tinyproxy closes kept-alive connections without saying
        -- so, and a send on one that died is never sent again)
        assert.is_false(c:hub("chat"):user_exists("nobody"))
        assert.equal(1, #proxy:matching("^POST http://127%.0%.0%.1:" .. emu.port .. "/t1/oauth2/v2%.0/token "))
        assert.equal(1, #proxy:matching("^HEAD http://127%.0%.0%.1:" .. emu.port .. "/api/"))
        c:close()
    end)

    -- a child process with a proxy environment (the library reads it as libcurl does)
    local function child(vars, mode, proxy_url)
        local script = os.tmpname()
        local f = assert(io.open(script, "wb"))
        f:write(string.format([[
local signalr = require "signalr"
local c = assert(signalr.new { connection_string = %q, mode = %q, proxy = %s })
local h = assert(c:hub("chat"))
assert(h:broadcast("t", { "env" }))
if %q == "persistent" then
    assert(c:flush(10))
    local deadline = os.time() + 10
    while c:status().hubs.chat.connections[1].state ~= "open" and os.time() < deadline do c:poll(0.05) end
end
c:close()
]], emu.cs, mode, proxy_url and string.format("%q", proxy_url) or "nil", mode))
        f:close()
        local lua = (jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
        local ok = os.execute(vars .. " " .. lua .. " " .. script)
        os.remove(script)
        return ok
    end

    it("the environment's proxy is used when no option is given, as curl reads it", function()
        assert.truthy(child("http_proxy=" .. proxy.url, "transient"))
        assert.equal(1, #proxy:matching(at_emu("POST")))
        assert.truthy(child("http_proxy=" .. proxy.url .. " NO_PROXY=localhost", "transient"))
        assert.equal(1, #proxy:requests(), "NO_PROXY: straight to the service")
        -- curl reads http:// URLs' proxy from lowercase http_proxy only
        assert.truthy(child("HTTP_PROXY=" .. proxy.url, "transient"))
        assert.equal(1, #proxy:requests(), "HTTP_PROXY: ignored, as curl ignores it")
        assert.equal(3, #emu:requests())
        -- NO_PROXY applies to the option's proxy as well
        assert.truthy(child("no_proxy=localhost", "transient", proxy.url))
        assert.equal(1, #proxy:requests(), "exempt")
        assert.truthy(child("", "transient", proxy.url))
        assert.equal(2, #proxy:requests(), "through it")
        assert.equal(5, #emu:requests())
        -- persistent mode's WebSocket too (a tunnel), and NO_PROXY there
        proxy:clear()
        assert.truthy(child("http_proxy=" .. proxy.url, "persistent"))
        assert.equal(1, #proxy:matching("^CONNECT localhost:" .. emu.port .. " "))
        proxy:clear()
        assert.truthy(child("http_proxy=" .. proxy.url .. " no_proxy=localhost", "persistent"))
        assert.equal(0, #proxy:requests())
    end)

    describe("https", function()
        local front, dir, cs
        setup(function()
            -- a TLS front for the emulator (nginx), with a private CA
            local nginx = require "helpers.nginx"
            dir = emu.dir .. "/tls"
            nginx.sh(string.format([[mkdir -p %s/logs && cd %s && openssl req -x509 -newkey rsa:2048 \
                -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null && \
                openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr \
                2>/dev/null && printf 'subjectAltName=DNS:localhost\n' > ext && openssl x509 -req \
                -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.pem \
                2>/dev/null]], dir, dir))
            front = nginx.start(function(prefix, port)
                nginx.sh("mkdir -p " .. prefix .. "/logs")
                local f = assert(io.open(prefix .. "/nginx.conf", "w"))
                f:write(string.format([[
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events {}
http { access_log off; client_body_temp_path %s/b; proxy_temp_path %s/p;
  server { listen 127.0.0.1:%d ssl; ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;
    location / { proxy_pass http://127.0.0.1:%d; proxy_set_header Host localhost;
                 proxy_http_version 1.1; proxy_set_header Connection ""; } } }
]], prefix, prefix, port, dir, dir, emu.port))
                f:close()
                return nginx.sh("nginx -p " .. prefix .. " -c " .. prefix .. "/nginx.conf 2>&1")
            end, function(n)
                return nginx.sh(env.CLEAN .. "curl -s -o /dev/null -w '%{http_code}' --cacert " .. dir
                    .. "/ca.pem https://localhost:" .. n.port .. "/api/health") ~= "000"
            end)
            cs = "Endpoint=https://localhost;Port=" .. front.port .. ";AccessKey=" .. env.KEY .. ";Version=1.0;"
        end)
        teardown(function()
            if front then require("helpers.nginx").stop(front) end
        end)

        it("a CONNECT tunnel through it, the service's certificate checked through the tunnel", function()
            local h = assert(signalr.new { connection_string = cs, proxy = proxy.url,
                                           ca_file = dir .. "/ca.pem" }):hub("chat")
            assert.is_true(h:broadcast("t"))
            assert.equal(1, #proxy:matching("^CONNECT localhost:" .. front.port .. " "))
            assert.equal(1, #emu:requests())
            -- without the CA: refused, through the tunnel too
            local bad = assert(signalr.new { connection_string = cs, proxy = proxy.url,
                                             retries = 0 }):hub("chat")
            local ok, msg = bad:broadcast("t")
            assert.is_nil(ok)
            assert.truthy(msg:find("TLS", 1, true), msg)
            assert.equal(1, #emu:requests())
        end)

        it("HTTPS_PROXY of the environment (curl reads it in capitals too)", function()
            local script = os.tmpname()
            local f = assert(io.open(script, "wb"))
            f:write(string.format([[
local signalr = require "signalr"
local h = assert(signalr.new { connection_string = %q, ca_file = %q }):hub("chat")
assert(h:broadcast("t", { "https env" }))
]], cs, dir .. "/ca.pem"))
            f:close()
            local lua = (jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
            assert.truthy(os.execute("HTTPS_PROXY=" .. proxy.url .. " " .. lua .. " " .. script))
            assert.equal(1, #proxy:matching("^CONNECT localhost:" .. front.port .. " "))
            assert.truthy(os.execute("HTTPS_PROXY=" .. proxy.url .. " NO_PROXY=localhost " .. lua .. " " .. script))
            assert.equal(1, #proxy:requests(), "NO_PROXY: straight to the service")
            os.remove(script)
            assert.equal(2, #emu:requests())
        end)
    end)

    it("over nginx cosockets: EUNSUPPORTED, clearly", function()
        local c, msg, d = signalr.new { connection_string = emu.cs, proxy = proxy.url, transport = "cosocket" }
        assert.is_nil(c)
        assert.equal("EUNSUPPORTED", d.code)
        assert.matches("^signalr%.new: option 'proxy' is not supported over nginx cosockets", msg)
    end)
end)
