-- lua-signalr inside a real nginx (lua-nginx-module): the shared API and
-- faults tables over cosockets, real SignalR clients negotiating through
-- nginx, handlers and timers, the log-phase guard, non-blocking under a
-- stalled service, keep-alive pool reuse, and TLS with a private CA.
local cjson = require "cjson"
local env = require "helpers.env"
local rows = require "helpers.rows"

local nginx = require "helpers.nginx"
local sh, free_port = nginx.sh, nginx.free_port

-- Start examples/openresty with a private prefix; returns { port, prefix }.
local function start_nginx(cs, ca)
    return nginx.start(function(prefix, port)
        return sh(string.format("AzureSignalRConnectionString='%s' %s/examples/openresty/run.sh %s %d %s %s 2>&1",
            cs, env.root, prefix, port, ca, env.root .. "/spec/nginx/locations.conf"))
    end, function(n) return sh("curl -s " .. n.base .. "/ping") == "pong\n" end)
end

local stop_nginx = nginx.stop

local function post(n, path, body)
    local f = os.tmpname()
    local fh = io.open(f, "wb")
    fh:write(body)
    fh:close()
    local out = sh("curl -s --data-binary @" .. f .. " " .. n.base .. path)
    os.remove(f)
    return out
end

describe("inside nginx", function()
    local emu, ngx1, dir
    setup(function()
        math.randomseed(os.time())
        emu = env.emulator("--ping-interval 1")
        dir = emu.dir
        -- a private CA and a certificate for localhost
        sh(string.format([[cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
            -keyout ca.key -out ca.pem 2>/dev/null && openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
            -keyout srv.key -out srv.csr 2>/dev/null && printf 'subjectAltName=DNS:localhost\n' > ext && \
            openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext \
            -out srv.pem 2>/dev/null]], dir))
        ngx1 = start_nginx(emu.cs, dir .. "/ca.pem")
    end)
    teardown(function()
        stop_nginx(ngx1)
        emu:stop()
    end)

    local function call(n, method, args, options)
        local out = post(n, "/test/call", cjson.encode { method = method, args = args, options = options })
        local okj, r = pcall(cjson.decode, out)
        assert(okj, "not JSON from nginx: " .. out:sub(1, 300))
        if r.result == cjson.null then r.result = nil end
        return r.result, r.error, r.details
    end

    describe("the shared API table over cosockets", function()
        for _, version in ipairs { "2022-06-01", "v1" } do
            for _, row in ipairs(rows.ROWS) do
                local want = row[4]
                if version == "v1" then want = row[5] end
                if want then
                    it(version .. " " .. row[1], function()
                        emu:clear()
                        local created = os.time() - 1
                        rows.check(emu, want, created, call(ngx1, row[2], row[3],
                            { connection_string = emu.cs, api_version = version, retries = 0 }))
                    end)
                end
            end
        end
        -- with an application: every request still conforms to the swagger
        -- files (the application goes into the query, or the v1 hub path)
        local swagger = require "helpers.swagger"
        local contract
        for _, version in ipairs { "2022-06-01", "v1" } do
            for _, row in ipairs(rows.ROWS) do
                if (version == "v1" and row[5]) or (version ~= "v1" and row[4]) then
                    it(version .. " + application " .. row[1] .. " conforms", function()
                        contract = contract or swagger.load(swagger.dir(env.root),
                            env.root .. "/spec/conformance/sheets")
                        emu:clear()
                        call(ngx1, row[2], row[3], { connection_string = emu.cs,
                            api_version = version, application = "MyApp", retries = 0 })
                        local req = emu:last_request()
                        assert(req, "nothing was sent")
                        local op, why = swagger.check(contract, req)
                        assert(op, req.path .. ": " .. table.concat(why or {}, "; "))
                        if version == "v1" then
                            assert.truthy(req.path:find("^/api/v1/hubs/myapp_chat"), req.path)
                        else
                            assert.truthy(req.path:find("application=myapp", 1, true), req.path)
                        end
                    end)
                end
            end
        end
        it("newer routes over cosockets: generate_client_token, group_connections", function()
            local o = { connection_string = emu.cs, api_version = "2024-12-01", retries = 0 }
            local tok, err = call(ngx1, "generate_client_token", { { user_id = "u" } }, o)
            assert.is_string(tok, err)
            assert.equal(3, #tok:gsub("[^.]", "") + 1)
            local list
            list, err = call(ngx1, "group_connections", { "nobody-here" }, o)
            assert.is_table(list, err)
            assert.equal(0, #list)
        end)
        it("a send reset after delivery on a pooled connection is not resent", function()
            local o = { connection_string = emu.cs, retries = 3, retry_delay = 0.01 }
            assert.is_true(call(ngx1, "broadcast", { "warm" }, o)) -- pooled now
            local before = emu:stats().rest_connections
            emu:clear()
            emu:fault { mode = "reset_after" }
            local ok, msg, details = call(ngx1, "broadcast", { "once" }, o)
            assert.is_nil(ok)
            assert.equal("EHTTP", details.code, msg)
            assert.is_true(details.sent)
            assert.truthy(msg:find("may have been delivered", 1, true), msg)
            assert.equal(1, #emu:requests())
            assert.equal(before, emu:stats().rest_connections) -- it was the pooled one
            -- an idempotent call on a stale pooled connection is retried
            emu:clear()
            emu:fault { mode = "reset_after" }
            assert.is_false(call(ngx1, "user_exists", { "nobody" }, o))
            assert.equal(2, #emu:requests())
        end)
        it("the bad-input table over cosockets: each row's outcome, nothing sent", function()
            local bad = require("helpers.bad_input").ROWS
            emu:clear()
            local out = cjson.decode(post(ngx1, "/test/bad_input",
                cjson.encode { root = env.root, cs = emu.cs }))
            assert.equal(#bad, #out)
            for i, row in ipairs(bad) do
                local o = out[i]
                if row[3] == "raise" then
                    assert(o.raised and o.raised:find(row[4], 1, true), row[1] .. ": " .. cjson.encode(o))
                else
                    assert(o.result == false and o.code == row[3] and o.msg:find(row[4], 1, true),
                        row[1] .. ": " .. cjson.encode(o))
                end
            end
            assert.equal(0, #emu:requests(), "something reached the network")
        end)
        it("ca_file is refused inside nginx, naming the directive to use", function()
            local ok, err, details = call(ngx1, "broadcast", { "t" },
                { connection_string = emu.cs, ca_file = "/etc/ssl/certs/ca-certificates.crt" })
            assert.is_nil(ok)
            assert.equal("ERAISED", details.code)
            assert.truthy(err:find("lua_ssl_trusted_certificate", 1, true), err)
        end)
        it("a proxy is EUNSUPPORTED over cosockets, clearly", function()
            local ok, err, details = call(ngx1, "broadcast", { "t" },
                { connection_string = emu.cs, proxy = "http://127.0.0.1:3128" })
            assert.is_nil(ok)
            assert.equal("EUNSUPPORTED", details.code)
            assert.matches("^signalr%.new: option 'proxy' is not supported over nginx cosockets", err)
        end)
        for _, f in ipairs(rows.FAULTS) do
            it(f[1], function()
                rows.fault_case(emu, f, function(opts, method, args)
                    return call(ngx1, method, args, opts)
                end)
            end)
        end
        it("unreachable endpoint: ECONNECT", function()
            local _, msg, d = call(ngx1, "broadcast", { "t" },
                { connection_string = "Endpoint=http://127.0.0.1;Port=1;AccessKey=k", retries = 0 })
            assert.equal("ECONNECT", d.code)
            assert.truthy(msg:find("could not connect", 1, true), msg)
        end)
    end)

    -- "." and ".." as ids refused in the worker too (cosockets send the
    -- path the C core built); dotted ids reach the service as they are
    describe("ids as path segments over cosockets", function()
        local seg = require "helpers.path_segments"
        local o
        setup(function() o = { connection_string = emu.cs, api_version = "2024-12-01", retries = 0 } end)
        for _, c in ipairs(seg.CALLS) do
            it(c[1] .. " with a dot segment as the " .. c[2], function()
                for _, v in ipairs(seg.DOTS) do
                    emu:clear()
                    local ok, msg, details = call(ngx1, c[1], seg.args(c, v), o)
                    assert.is_nil(ok)
                    assert.equal(seg.message(c, v), msg:match("^[%w_.]+: (.*)$") or msg)
                    assert.equal("EINVAL", details.code)
                    assert.equal(0, #emu:requests(), "a request reached the service")
                end
                for _, v in ipairs(seg.DOTTED) do
                    emu:clear()
                    call(ngx1, c[1], seg.args(c, v), o)
                    assert.is_nil(seg.check_received(emu:requests(), v))
                end
            end)
        end
    end)

    describe("handlers, timers and real clients", function()
        local pool
        setup(function()
            pool = env.clients(emu)
            for _, u in ipairs { "alice", "bob" } do
                -- the client negotiates with nginx, which redirects it
                local id, err = pool:connect(u, { url = ngx1.base .. "/chat?user=" .. u })
                assert(id, err)
            end
        end)
        teardown(function() pool:quit() end)

        local function wait_msg(name, tag)
            return env.wait(function()
                for _, m in ipairs(pool:messages(name)) do
                    if m.args[1] == tag then return m end
                end
            end, 10, name .. " to get " .. tag)
        end

        it("broadcast from a content handler reaches everyone", function()
            assert.equal("{}\n", post(ngx1, "/chat/broadcast", '{"target":"newMessage","arguments":["h1"]}'))
            wait_msg("alice", "h1")
            wait_msg("bob", "h1")
        end)

        it("binding actions: user message, group membership", function()
            post(ngx1, "/chat/send", '{"target":"newMessage","arguments":["u1"],"userId":"bob"}')
            post(ngx1, "/chat/send", '{"action":"add","userId":"alice","groupName":"g"}')
            post(ngx1, "/chat/send", '{"target":"newMessage","arguments":["g1"],"groupName":"g"}')
            post(ngx1, "/chat/broadcast", '{"arguments":["sync1"]}')
            wait_msg("bob", "sync1")
            wait_msg("alice", "sync1")
            assert.truthy(wait_msg("bob", "u1"))
            assert.truthy(wait_msg("alice", "g1"))
            for _, m in ipairs(pool:messages("bob")) do assert.not_equal("g1", m.args[1]) end
            for _, m in ipairs(pool:messages("alice")) do assert.not_equal("u1", m.args[1]) end
        end)

        it("a timer broadcasts after the handler returned", function()
            assert.equal("{}\n", post(ngx1, "/chat/later", '{"arguments":["timer1"]}'))
            wait_msg("alice", "timer1")
        end)

        it("a call from the log phase fails clearly, naming ngx.timer.at", function()
            sh("curl -s " .. ngx1.base .. "/chat/logged")
            local log = env.wait(function()
                local l = env.read(ngx1.prefix .. "/logs/error.log") or ""
                return l:find("'log' phase", 1, true) and l
            end, 5, "the log line")
            assert.truthy(log:find("run it from ngx.timer.at(0, fn) instead", 1, true))
            -- named once: "signalr.broadcast: cosockets are not available ..."
            assert.truthy(log:find("signalr.broadcast: cosockets are not available in nginx's 'log' phase",
                1, true), log)
            assert.falsy(log:find("signalr.broadcast: signalr.broadcast:", 1, true), log)
        end)
    end)

    it("started from a shell whose LUA_PATH/LUA_CPATH are Lua 5.4's, the example still loads LuaJIT's", function()
        -- as after `eval "$(luarocks --lua-version=5.4 path)"`: nginx puts
        -- these where its configuration says ";;"; run.sh clears them
        local p = io.popen("lua5.4 -e 'io.write(package.path, \"\\n\", package.cpath)'")
        local path54, cpath54 = p:read("*l"), p:read("*l")
        p:close()
        assert.truthy(cpath54 and cpath54:find("5.4", 1, true), cpath54)
        local n = nginx.start(function(prefix, port)
            return sh(string.format("LUA_PATH='%s' LUA_CPATH='%s' AzureSignalRConnectionString='%s'"
                .. " %s/examples/openresty/run.sh %s %d 2>&1", path54, cpath54, emu.cs, env.root, prefix, port))
        end, function(x) return sh("curl -s " .. x.base .. "/ping") == "pong\n" end)
        local ok, err = pcall(function()
            assert.equal("{}\n", post(n, "/chat/broadcast", '{"target":"newMessage","arguments":["from 5.4 env"]}'))
        end)
        nginx.stop_clean(n)
        assert(ok, err)
    end)

    it("keeps answering other requests while the service stalls", function()
        emu:http("DELETE", "/_emulator/faults")
        emu:fault { mode = "stall", ms = 500, count = 4 }
        local d = emu.dir
        for i = 1, 4 do
            os.execute(string.format(env.CLEAN .. "curl -s -o /dev/null -w '%%{time_total}' --data-binary "
                .. "'{\"arguments\":[\"slow\"]}' %s/chat/broadcast > %s/slow%d &", ngx1.base, d, i))
        end
        env.sleep(0.1)
        local lat = {}
        for i = 1, 20 do
            lat[i] = tonumber(sh("curl -s -o /dev/null -w '%{time_total}' " .. ngx1.base .. "/ping"))
        end
        env.wait(function()
            for i = 1, 4 do if (env.read(d .. "/slow" .. i) or "") == "" then return false end end
            return true
        end, 10, "the slow broadcasts")
        local slow = {}
        for i = 1, 4 do slow[i] = tonumber(env.read(d .. "/slow" .. i)) end
        table.sort(lat)
        print(string.format("\n  /ping while 4 broadcasts stall 500 ms: min %.1f ms, median %.1f ms, max %.1f ms;"
            .. " the broadcasts took %.0f-%.0f ms",
            lat[1] * 1000, lat[10] * 1000, lat[20] * 1000, math.min(table.unpack(slow)) * 1000,
            math.max(table.unpack(slow)) * 1000))
        assert.is_true(math.min(table.unpack(slow)) >= 0.45)
        assert.is_true(lat[20] < 0.25, "a /ping waited " .. lat[20] .. " s")
    end)

    it("reuses one pooled connection per endpoint", function()
        local before = emu:stats().rest_connections
        for i = 1, 10 do post(ngx1, "/chat/broadcast", '{"arguments":["k' .. i .. '"]}') end
        assert.is_true(emu:stats().rest_connections - before <= 1)
        local n = #emu:requests()
        assert.is_true(n >= 10)
    end)

    describe("TLS", function()
        local tls_port, proxy_prefix
        setup(function()
            -- a TLS front for the emulator, with the private CA's certificate
            tls_port = free_port()
            proxy_prefix = dir .. "/tls"
            os.execute("mkdir -p " .. proxy_prefix .. "/logs")
            local f = io.open(proxy_prefix .. "/nginx.conf", "w")
            f:write(string.format([[
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events {}
http { access_log off; client_body_temp_path %s/b; proxy_temp_path %s/p;
  server { listen 127.0.0.1:%d ssl; ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;
    location / { proxy_pass http://127.0.0.1:%d; proxy_set_header Host localhost;
                 proxy_http_version 1.1; proxy_set_header Connection ""; } } }
]], proxy_prefix, proxy_prefix, tls_port, dir, dir, emu.port))
            f:close()
            assert(sh("nginx -p " .. proxy_prefix .. " -c " .. proxy_prefix .. "/nginx.conf 2>&1") == "")
            env.sleep(0.3)
        end)
        teardown(function()
            sh("nginx -p " .. proxy_prefix .. " -c " .. proxy_prefix .. "/nginx.conf -s stop 2>&1")
        end)
        local function tls_cs() return "Endpoint=https://localhost;Port=" .. tls_port .. ";AccessKey=" .. env.KEY end

        it("verifies the service certificate with lua_ssl_trusted_certificate", function()
            emu:clear()
            local ok, msg = call(ngx1, "broadcast", { "newMessage", { "tls" } },
                { connection_string = tls_cs(), retries = 0 })
            assert.is_true(ok, msg)
            assert.equal(1, #emu:requests())
        end)

        it("fails clearly when the CA is not trusted", function()
            local other = start_nginx(emu.cs, "/etc/ssl/certs/ca-certificates.crt")
            finally(function() stop_nginx(other) end)
            emu:clear()
            local ok, msg, d = call(other, "broadcast", { "newMessage", { "tls" } },
                { connection_string = tls_cs(), retries = 0 })
            assert.is_nil(ok)
            assert.equal("ECONNECT", d.code, msg)
            -- "TLS handshake failed: ..." or, depending on timing in this
            -- nginx, "send failed: closed (TLS: ...)": both name the fix
            assert.truthy(msg:find("TLS", 1, true), msg)
            assert.truthy(msg:find("lua_ssl_trusted_certificate", 1, true), msg)
            assert.equal(0, #emu:requests())
        end)
    end)
end)
