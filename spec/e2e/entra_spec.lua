-- Microsoft Entra ID end to end: an emulator with local auth disabled and
-- its Entra ID stand-in, apps configured only with AuthType=azure.app,
-- azure.msi (IMDS and App Service) and azure (environment, workload
-- identity), real @microsoft/signalr clients negotiating through the
-- library and receiving what it sends; token caching counted at the
-- stand-in; faults of the token endpoint, each with its own error; and no
-- secret in any message.
local signalr = require "signalr"
local env = require "helpers.env"
local cjson = require "cjson"

local SECRET = "entra-client-secret-Q7vX2mP9kL4t"
local ASSERTION = "federated-assertion-Z8nW3qR6yH1c"
local IDHEADER = "identity-header-K5bT9sV2xJ7d"

-- no secret, assertion or issued token in anything the library says
local function clean(...)
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        local s = type(v) == "table" and cjson.encode(v) or tostring(v)
        assert.falsy(s:find(SECRET:sub(1, 16), 1, true), "the client secret leaked: " .. s)
        assert.falsy(s:find(ASSERTION:sub(1, 16), 1, true), "the assertion leaked: " .. s)
        assert.falsy(s:find(IDHEADER:sub(1, 16), 1, true), "the identity header leaked: " .. s)
        assert.falsy(s:find("eyJ[%w_-]+%.eyJ"), "a token leaked: " .. s)
        assert.falsy(s:find("PRIVATE KEY", 1, true), "a private key leaked: " .. s)
    end
    return ...
end

local function write(path, s)
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
end

describe("Microsoft Entra ID", function()
    local emu, pool, dir
    local function app_cs(id, secret)
        return "Endpoint=http://localhost;Port=" .. emu.port .. ";AuthType=azure.app;ClientId=" .. id
            .. ";ClientSecret=" .. (secret or SECRET) .. ";TenantId=tenant1;Version=1.0;"
    end
    local function app(id, extra)
        local o = { connection_string = app_cs(id), authority_host = emu.base .. "/",
                    retry_delay = 0.05 }
        for k, v in pairs(extra or {}) do o[k] = v end
        return assert(signalr.new(o))
    end
    local function tokens() return emu:stats().entra.token end
    local function rest_statuses()
        local out = {}
        for _, r in ipairs(emu:requests()) do out[#out + 1] = r.status end
        return out
    end

    setup(function()
        dir = os.tmpname()
        os.remove(dir)
        os.execute("mkdir -p " .. dir)
        write(dir .. "/assertion", ASSERTION .. "\n")
        -- certificates: the app's (key + certificate in one PEM file, the
        -- stand-in knows the certificate) and one it does not know
        for _, name in ipairs { "app", "other" } do
            assert(os.execute(string.format("cd %s && openssl req -x509 -newkey rsa:2048 -nodes"
                .. " -days 2 -subj /CN=%s -keyout %s.key -out %s.crt 2>/dev/null && cat %s.key"
                .. " %s.crt > %s.pem", dir, name, name, name, name, name, name)))
        end
        local args = { "--disable-local-auth", "--identity-header", IDHEADER,
                       "--entra-identity system", "--entra-identity mi-reader:rest-reader",
                       "--entra-identity mi-nokey:rest-owner", "--entra-identity mi-sel:rest-owner",
                       "--entra-federated wl1:" .. dir .. "/assertion",
                       "--entra-cert-app cert1:" .. dir .. "/app.crt",
                       "--entra-cert-app cert2:" .. dir .. "/app.crt" }
        for _, id in ipairs { "app1", "app2", "app3", "app4", "app5", "app6", "app7", "app8", "app9",
                              "env1" } do
            args[#args + 1] = "--entra-app " .. id .. ":" .. SECRET
        end
        emu = env.emulator(table.concat(args, " "))
        pool = env.clients(emu)
    end)
    teardown(function()
        pool:quit()
        emu:stop()
        os.execute("rm -rf " .. dir)
    end)

    it("azure.app: negotiates real clients and sends to them, with one token request", function()
        local before = tokens()
        local hub = assert(app("app1"):hub("Chat"))
        local nego = assert(hub:negotiate { user_id = "alice" })
        assert.equal("http://localhost:" .. emu.port .. "/client/?hub=chat", nego.url)
        assert(pool:connect("a1", nego))
        assert(pool:connect("a2", assert(hub:negotiate { user_id = "bob" })))
        for i = 1, 20 do assert.is_true(clean(hub:broadcast("newMessage", { "all", i }))) end
        assert.is_true(hub:to_user("bob", "newMessage", { "for bob" }))
        env.wait(function() return #pool:messages("a2") == 21 end, 10, "bob's messages")
        assert.equal(20, pool:count("a1", "all"))
        assert.equal(1, pool:count("a2", "for bob"))
        assert.equal(0, pool:count("a1", "for bob"))
        -- 22 REST calls and a temporary key: one token request in all
        assert.equal(1, tokens() - before)
        assert.equal(1, emu:stats().temp_keys >= 1 and 1 or 0)
    end)

    it("azure.msi (IMDS): negotiates and sends", function()
        local before = emu:stats().entra.imds
        local c = assert(signalr.new { connection_string = "Endpoint=http://localhost;Port="
            .. emu.port .. ";AuthType=azure.msi;Version=1.0;",
            managed_identity_endpoint = emu.base .. "/metadata/identity/oauth2/token" })
        local hub = assert(c:hub("Chat"))
        assert(pool:connect("m1", assert(hub:negotiate { user_id = "mia" })))
        for i = 1, 5 do assert.is_true(hub:to_user("mia", "newMessage", { "msi", i })) end
        env.wait(function() return pool:count("m1", "msi") == 5 end, 10, "mia's messages")
        assert.equal(1, emu:stats().entra.imds - before)
    end)

    -- a child Lua process with its own environment (the default chain
    -- and App Service read environment variables)
    local function child(vars, cs, body, options)
        local parts = { env.CLEAN, "env" }
        for k, v in pairs(vars) do parts[#parts + 1] = k .. "='" .. v .. "'" end
        write(dir .. "/child.lua", "local signalr = require 'signalr'\n"
            .. "local c = assert(signalr.new { connection_string = [[" .. cs .. "]], retry_delay = 0.05"
            .. (options or "") .. " })\n"
            .. "local h = assert(c:hub('Chat'))\n" .. body)
        parts[#parts + 1] = "LUA_PATH='" .. os.getenv("LUA_PATH") .. "' LUA_CPATH='"
            .. os.getenv("LUA_CPATH") .. "' lua5.4 " .. dir .. "/child.lua 2>&1"
        local p = io.popen(table.concat(parts, " "))
        local out = p:read("*a")
        p:close()
        write(dir .. "/child.out", out)
        env.keep_log(dir .. "/child.out", "entra-child") -- for the secrets scan
        return clean(out)
    end

    it("azure.msi on App Service (IDENTITY_ENDPOINT, IDENTITY_HEADER)", function()
        local before = emu:stats().entra.appservice
        local cs = "Endpoint=http://localhost;Port=" .. emu.port .. ";AuthType=azure.msi;Version=1.0;"
        local out = child({ IDENTITY_ENDPOINT = emu.base .. "/msi/token", IDENTITY_HEADER = IDHEADER }, cs,
            "print(h:broadcast('newMessage', {'appservice'}))\nprint(h:broadcast('newMessage', {'appservice'}))")
        assert.equal("true\ntrue\n", out)
        assert.equal(1, emu:stats().entra.appservice - before)
        env.wait(function() return pool:count("a1", "appservice") == 2 end, 10, "App Service sends")
        -- a wrong header: the endpoint's refusal, explained
        out = child({ IDENTITY_ENDPOINT = emu.base .. "/msi/token", IDENTITY_HEADER = "nope" }, cs,
            "print(h:broadcast('newMessage', {'x'}))")
        assert.truthy(out:find("managed identity token request (App Service endpoint", 1, true), out)
        assert.truthy(out:find("HTTP 401", 1, true), out)
    end)

    -- the stand-in's ids of an identity named by its client id (README:
    -- the emulator); its module needs luaossl, which this Lua may lack
    local STAND_IN_IDS = {
        object_id = function(id) return "oid-" .. id end,
        resource_id = function(id)
            return "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator"
                .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" .. id
        end,
    }

    it("a user-assigned identity by object id or resource id (IMDS); a wrong one refused", function()
        local entra = STAND_IN_IDS
        local function msi(opt, value)
            return assert(signalr.new { connection_string = "Endpoint=http://localhost;Port="
                .. emu.port .. ";AuthType=azure.msi;Version=1.0;", retries = 0,
                managed_identity_endpoint = emu.base .. "/metadata/identity/oauth2/token", [opt] = value })
        end
        local by_oid = assert(msi("managed_identity_object_id", entra.object_id("mi-sel")):hub("Chat"))
        assert.is_true(by_oid:broadcast("newMessage", { "by object id" }))
        local by_rid = assert(msi("managed_identity_resource_id", entra.resource_id("mi-sel")):hub("Chat"))
        assert.is_true(by_rid:broadcast("newMessage", { "by resource id" }))
        env.wait(function() return pool:count("a1", "by resource id") == 1 end, 10, "the sends")
        assert.equal(1, pool:count("a1", "by object id"))
        local ok, msg, d = assert(msi("managed_identity_object_id", "oid-nobody"):hub("Chat"))
            :broadcast("newMessage", { "x" })
        assert.is_nil(ok)
        assert.equal("EAUTH", d.code)
        assert.matches("HTTP 400 (no managed identity is assigned to this host with that object id)",
            msg, nil, true)
    end)

    it("a user-assigned identity by principal id or resource id on App Service", function()
        local entra = STAND_IN_IDS
        local cs = "Endpoint=http://localhost;Port=" .. emu.port .. ";AuthType=azure.msi;Version=1.0;"
        local vars = { IDENTITY_ENDPOINT = emu.base .. "/msi/token", IDENTITY_HEADER = IDHEADER }
        local before = emu:stats().entra.appservice
        assert.equal("true\n", child(vars, cs, "print(h:broadcast('newMessage', {'as oid'}))",
            ", managed_identity_object_id = '" .. entra.object_id("mi-sel") .. "'"))
        assert.equal("true\n", child(vars, cs, "print(h:broadcast('newMessage', {'as rid'}))",
            ", managed_identity_resource_id = '" .. entra.resource_id("mi-sel") .. "'"))
        assert.equal(2, emu:stats().entra.appservice - before)
        env.wait(function() return pool:count("a1", "as rid") == 1 end, 10, "the sends")
        -- two ids at once: refused at signalr.new, nothing sent
        local out = child(vars, cs, "print('unreached')",
            ", managed_identity_object_id = 'a', managed_identity_resource_id = '/b'")
        assert.truthy(out:find("a managed identity is chosen by one id", 1, true), out)
        assert.equal(2, emu:stats().entra.appservice - before)
    end)

    it("AuthType=azure: the environment's client secret, then workload identity", function()
        local cs = "Endpoint=http://localhost;Port=" .. emu.port .. ";AuthType=azure;Version=1.0;"
        local out = child({ AZURE_TENANT_ID = "tenant1", AZURE_CLIENT_ID = "env1",
                            AZURE_CLIENT_SECRET = SECRET, AZURE_AUTHORITY_HOST = emu.base },
            cs, "print(h:broadcast('newMessage', {'from env'}))")
        assert.equal("true\n", out)
        out = child({ AZURE_TENANT_ID = "tenant1", AZURE_CLIENT_ID = "wl1",
                      AZURE_FEDERATED_TOKEN_FILE = dir .. "/assertion", AZURE_AUTHORITY_HOST = emu.base },
            cs, "print(h:broadcast('newMessage', {'from workload'}))")
        assert.equal("true\n", out)
        env.wait(function() return pool:count("a1", "from workload") == 1 end, 10, "workload send")
        assert.equal(1, pool:count("a1", "from env"))
        -- a federated assertion the stand-in does not know
        write(dir .. "/other", "another-assertion")
        out = child({ AZURE_TENANT_ID = "tenant1", AZURE_CLIENT_ID = "wl1",
                      AZURE_FEDERATED_TOKEN_FILE = dir .. "/other", AZURE_AUTHORITY_HOST = emu.base },
            cs, "print(h:broadcast('newMessage', {'x'}))")
        assert.truthy(out:find("AADSTS70021", 1, true), out)
    end)

    it("azure.app with a certificate (ClientCertPath): RS256 assertions; a wrong one refused", function()
        local before = tokens()
        local function cert_client(id, file)
            return assert(signalr.new { connection_string = "Endpoint=http://localhost;Port=" .. emu.port
                .. ";AuthType=azure.app;ClientId=" .. id .. ";TenantId=tenant1;ClientCertPath=" .. dir
                .. "/" .. file .. ";Version=1.0;", authority_host = emu.base .. "/" })
        end
        local hub = assert(cert_client("cert1", "app.pem"):hub("Chat"))
        assert(pool:connect("c1", assert(hub:negotiate { user_id = "cara" })))
        for i = 1, 3 do assert.is_true(clean(hub:to_user("cara", "newMessage", { "cert", i }))) end
        env.wait(function() return pool:count("c1", "cert") == 3 end, 10, "cara's messages")
        assert.equal(1, tokens() - before)
        emu:clear()
        local ok, msg, d = clean(cert_client("cert1", "other.pem"):hub("Chat"):broadcast("newMessage", { "x" }))
        assert.is_nil(ok)
        assert.equal("EAUTH", d.code)
        assert.equal("AADSTS700027", d.service_code)
        assert.truthy(msg:find("(check ClientCert: the application has no such certificate registered)",
            1, true), msg)
        -- the certificate alone, without its key
        ok, msg, d = clean(cert_client("cert1", "app.crt"):hub("Chat"):broadcast("newMessage", { "x" }))
        assert.is_nil(ok)
        assert.equal("EAUTH", d.code)
        assert.truthy(msg:find("needs a private key and the certificate", 1, true), msg)
        assert.same({}, rest_statuses())
        -- and through the default chain (AZURE_CLIENT_CERTIFICATE_PATH)
        local out = child({ AZURE_TENANT_ID = "tenant1", AZURE_CLIENT_ID = "cert2",
                            AZURE_CLIENT_CERTIFICATE_PATH = dir .. "/app.pem",
                            AZURE_AUTHORITY_HOST = emu.base },
            "Endpoint=http://localhost;Port=" .. emu.port .. ";AuthType=azure;Version=1.0;",
            "print(h:to_user('cara', 'newMessage', {'chain cert'}))")
        assert.equal("true\n", out)
        env.wait(function() return pool:count("c1", "chain cert") == 1 end, 10, "the chain's send")
    end)

    it("azure.app with a PKCS#12 (PFX) certificate, with and without a password", function()
        local PFX_PASSWORD = "pfx-password-Tq4Lm8Zc2Wn6"
        assert(os.execute(string.format("cd %s && openssl pkcs12 -export -in app.crt -inkey app.key"
            .. " -out app.pfx -passout pass:%s 2>/dev/null && openssl pkcs12 -export -in app.crt"
            .. " -inkey app.key -out open.pfx -passout pass: 2>/dev/null", dir, PFX_PASSWORD)))
        local function pfx_client(file, password)
            return assert(signalr.new { connection_string = "Endpoint=http://localhost;Port=" .. emu.port
                .. ";AuthType=azure.app;ClientId=cert1;TenantId=tenant1;ClientCert=" .. dir
                .. "/" .. file .. ";Version=1.0;", authority_host = emu.base .. "/",
                client_certificate_password = password, retries = 0 })
        end
        local before = tokens()
        assert.is_true(clean(pfx_client("app.pfx", PFX_PASSWORD):hub("Chat")
            :to_user("cara", "newMessage", { "pfx" })))
        assert.is_true(clean(pfx_client("open.pfx"):hub("Chat"):to_user("cara", "newMessage", { "open pfx" })))
        env.wait(function() return pool:count("c1", "open pfx") == 1 end, 10, "the PFX sends")
        assert.equal(1, pool:count("c1", "pfx"))
        assert.equal(2, tokens() - before)
        -- a wrong password, or none: EAUTH saying which, nothing sent, neither shown
        emu:clear()
        for _, c in ipairs {
            { "not-the-pfx-password", "the password is wrong" },
            { nil, "it has a password and none was given" },
        } do
            local ok, msg, d = clean(pfx_client("app.pfx", c[1]):hub("Chat"):broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal("EAUTH", d.code)
            assert.truthy(msg:find("PKCS#12 (PFX) certificate file named by ClientCert: " .. c[2], 1, true),
                msg)
            assert.falsy(msg:find(dir, 1, true), msg)
            assert.falsy(msg:find("not-the-pfx", 1, true), msg)
        end
        assert.same({}, rest_statuses())
        -- through the default chain: AZURE_CLIENT_CERTIFICATE_PASSWORD
        local out = child({ AZURE_TENANT_ID = "tenant1", AZURE_CLIENT_ID = "cert2",
                            AZURE_CLIENT_CERTIFICATE_PATH = dir .. "/app.pfx",
                            AZURE_CLIENT_CERTIFICATE_PASSWORD = PFX_PASSWORD,
                            AZURE_AUTHORITY_HOST = emu.base },
            "Endpoint=http://localhost;Port=" .. emu.port .. ";AuthType=azure;Version=1.0;",
            "print(h:to_user('cara', 'newMessage', {'chain pfx'}))")
        assert.equal("true\n", out)
        env.wait(function() return pool:count("c1", "chain pfx") == 1 end, 10, "the chain's PFX send")
    end)

    it("a federated token file that cannot be read is named by its variable, not its value", function()
        -- the assertion itself given where its file's name belongs
        local cs = "Endpoint=http://localhost;Port=" .. emu.port .. ";AuthType=azure;Version=1.0;"
        local out = child({ AZURE_TENANT_ID = "tenant1", AZURE_CLIENT_ID = "wl1",
                            AZURE_FEDERATED_TOKEN_FILE = ASSERTION, AZURE_AUTHORITY_HOST = emu.base },
            cs, "print(h:broadcast('newMessage', {'x'}))")
        assert.truthy(out:find("cannot read the federated token file named by AZURE_FEDERATED_TOKEN_FILE",
            1, true), out)
    end)

    -- the signalr command in a child process: exit status, stdout, stderr
    -- (kept for the secrets scan)
    local function command(vars, ...)
        local parts = { env.CLEAN, "env" }
        for k, v in pairs(vars) do parts[#parts + 1] = k .. "='" .. v:gsub("'", "'\\''") .. "'" end
        parts[#parts + 1] = "SIGNALR_BUILD='" .. (os.getenv("SIGNALR_BUILD") or (env.root .. "/build")) .. "'"
        parts[#parts + 1] = env.root .. "/bin/signalr"
        for _, a in ipairs { ... } do parts[#parts + 1] = "'" .. a .. "'" end
        parts[#parts + 1] = "> " .. dir .. "/cli.out 2> " .. dir .. "/cli.err"
        local ok, _, code = os.execute(table.concat(parts, " "))
        if type(ok) == "number" then code = ok / 256 end -- Lua 5.1
        env.keep_log(dir .. "/cli.out", "entra-cli")
        env.keep_log(dir .. "/cli.err", "entra-cli")
        return code, env.read(dir .. "/cli.out") or "", env.read(dir .. "/cli.err") or ""
    end

    it("the signalr command: a refusal exits 3 (a service error), an unreadable certificate 2", function()
        local vars = { AZURE_AUTHORITY_HOST = emu.base, AzureSignalRConnectionString = app_cs("app1") }
        assert.equal(0, (command(vars, "broadcast", "Chat", "newMessage", '["from the command"]')))
        -- a wrong secret: Microsoft Entra ID refuses (EAUTH, 401)
        vars.AzureSignalRConnectionString = app_cs("app1", "wrong-secret-value")
        local code, out, err = command(vars, "broadcast", "Chat", "newMessage")
        clean(out, err)
        assert.equal(3, code, err)
        assert.truthy(err:find("AADSTS7000215", 1, true), err)
        assert.falsy(err:find("wrong-secret-value", 1, true), err)
        code, out = command(vars, "--json", "broadcast", "Chat", "newMessage")
        assert.equal(3, code)
        local r = cjson.decode(out)
        assert.equal("EAUTH", r.code)
        assert.equal(401, r.status)
        assert.equal("AADSTS7000215", r.service_code)
        -- the certificate's PEM pasted where its file's name belongs: a
        -- local error, nothing sent, none of it shown
        vars.AzureSignalRConnectionString = "Endpoint=http://localhost;Port=" .. emu.port
            .. ";AuthType=azure.app;ClientId=cert1;TenantId=tenant1;ClientCert="
            .. assert(env.read(dir .. "/app.pem")) .. ";Version=1.0;"
        code, out, err = command(vars, "broadcast", "Chat", "newMessage")
        clean(out, err)
        assert.equal(2, code, err)
        assert.truthy(err:find("the certificate file named by ClientCert (the value is PEM text", 1, true), err)
    end)

    it("async mode: sends wait in the queue for the token; negotiate is a request", function()
        local before = tokens()
        local c = app("app2", { async = true })
        local hub = assert(c:hub("Chat"))
        -- bad input fails at once, also before any token is at hand
        local bad, msg, d = hub:to_group("", "newMessage", {})
        assert.is_nil(bad)
        assert.equal("EINVAL", d.code)
        assert.truthy(msg:find("^signalr.to_group: group name"), msg)
        assert.equal(0, c:pending())
        assert.equal(0, tokens() - before)
        local reqs = {}
        for i = 1, 10 do reqs[i] = assert(hub:broadcast("newMessage", { "async", i })) end
        assert.equal(10, c:pending())
        local nego = assert(hub:negotiate { user_id = "ann" })
        assert.is_false(nego.done)
        assert(c:flush(10))
        for i = 1, 10 do assert.is_true(reqs[i].done); assert.is_true(reqs[i].result, reqs[i].error) end
        assert.is_true(nego.done)
        assert(pool:connect("as1", assert(nego.result, nego.error)))
        assert.equal(1, tokens() - before)
        env.wait(function() return pool:count("a1", "async") == 10 end, 10, "the async sends")
        assert.is_true(assert(hub:to_user("ann", "newMessage", { "to ann" })) ~= nil)
        assert(c:flush(10))
        env.wait(function() return pool:count("as1", "to ann") == 1 end, 10, "ann's message")
        -- and once a token is cached
        bad, msg, d = hub:to_group("", "newMessage", {})
        assert.is_nil(bad)
        assert.equal("EINVAL", d.code)
        assert.truthy(msg:find("^signalr.to_group: group name"), msg)
        assert.equal(0, c:pending())
        -- a token is cached now: a second negotiate is ready at the next poll
        local again = assert(hub:negotiate())
        assert(c:flush(5))
        assert.truthy(again.result.accessToken)
        c:close()
    end)

    it("async mode with several endpoints: negotiate's request is the client's (on_done, poll)", function()
        local done = {}
        local c = assert(signalr.new { authority_host = emu.base .. "/", async = true, retry_delay = 0.05,
            endpoints = { { connection_string = app_cs("app3"), name = "one" },
                          { connection_string = app_cs("app3"), name = "two" } },
            on_done = function(r) done[#done + 1] = r end })
        local hub = assert(c:hub("Chat"))
        local nego = assert(hub:negotiate { user_id = "ann" })
        assert.is_false(nego.done)
        assert.equal(1, c:pending())
        assert(c:flush(10))
        assert.is_true(nego.done)
        assert.truthy(assert(nego.result, nego.error).accessToken)
        assert.equal(1, #done)
        assert.equal(nego, done[1])
        -- canceled before the token came: ECANCELED, reported once
        local c2 = assert(signalr.new { authority_host = emu.base .. "/", async = true,
            endpoints = { { connection_string = app_cs("app4"), name = "one" },
                          { connection_string = app_cs("app4"), name = "two" } },
            on_done = function(r) done[#done + 1] = r end })
        local n2 = assert(assert(c2:hub("Chat")):negotiate())
        assert.is_true(n2:cancel())
        assert(c2:flush(5))
        assert.equal("ECANCELED", n2.details.code)
        assert.equal(2, #done)
        assert.equal(n2, done[2])
        c:close()
        c2:close()
    end)

    it("a token about to expire is refreshed before it is used", function()
        local short = env.emulator("--disable-local-auth --entra-token-lifetime 4 --entra-app r1:" .. SECRET)
        local c = assert(signalr.new { connection_string = "Endpoint=http://localhost;Port=" .. short.port
            .. ";AuthType=azure.app;ClientId=r1;ClientSecret=" .. SECRET .. ";TenantId=t;Version=1.0;",
            authority_host = short.base .. "/" })
        local hub = assert(c:hub("Chat"))
        assert.is_true(hub:broadcast("newMessage", { 1 }))
        assert.is_true(hub:broadcast("newMessage", { 2 }))
        assert.equal(1, short:stats().entra.token)
        env.sleep(2.5) -- past half of the 4 s life: due for a refresh
        assert.is_true(hub:broadcast("newMessage", { 3 }))
        assert.equal(2, short:stats().entra.token)
        env.sleep(2.5) -- the first token has expired; the second is due
        assert.is_true(hub:broadcast("newMessage", { 4 }))
        assert.equal(3, short:stats().entra.token)
        -- every REST request carried a valid token: none was refused
        for _, r in ipairs(short:requests()) do assert.equal(202, r.status) end
        short:stop()
    end)

    describe("faults, each with its own error, nothing sent without a token", function()
        before_each(function() emu:clear() end)
        after_each(function() emu:http("DELETE", "/_emulator/faults") end)

        it("the token endpoint is down", function()
            local c = assert(signalr.new { connection_string = app_cs("app3"),
                authority_host = "http://127.0.0.1:1/", retries = 0 })
            local ok, msg, d = clean(c:hub("Chat"):broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal("ECONNECT", d.code)
            assert.is_false(d.sent)
            assert.truthy(msg:find("Microsoft Entra ID token request (authority http://127.0.0.1:1/,"
                .. " tenant tenant1, client id app3): could not connect", 1, true), msg)
            assert.same({}, rest_statuses())
        end)

        it("the token endpoint is slow (past the timeout)", function()
            emu:fault { mode = "stall", ms = 2500, scope = "entra" }
            local c = app("app4", { timeout = 1, retries = 0 })
            local t0 = os.time()
            local ok, msg, d = clean(c:hub("Chat"):broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal("ETIMEDOUT", d.code)
            assert.is_false(d.sent)
            assert.truthy(msg:find("client id app4): timed out", 1, true), msg)
            assert.truthy(os.time() - t0 <= 2)
            assert.same({}, rest_statuses())
        end)

        it("a wrong secret: 401 with its AADSTS code, and an unknown client id", function()
            local c = assert(signalr.new { connection_string = app_cs("app1", "wrong-secret-value"),
                authority_host = emu.base .. "/" })
            local ok, msg, d = clean(c:hub("Chat"):broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal("EAUTH", d.code)
            assert.equal(401, d.status)
            assert.equal("AADSTS7000215", d.service_code)
            assert.truthy(msg:find("(check ClientSecret: it is wrong or expired): invalid_client:"
                .. " AADSTS7000215", 1, true), msg)
            assert.truthy(msg:find("tenant tenant1, client id app1", 1, true), msg)
            c = assert(signalr.new { connection_string = app_cs("nobody"), authority_host = emu.base .. "/" })
            ok, msg, d = clean(c:hub("Chat"):broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal("AADSTS700016", d.service_code)
            assert.truthy(msg:find("check ClientId and TenantId", 1, true), msg)
            assert.same({}, rest_statuses())
        end)

        it("5xx from the token endpoint is retried with backoff", function()
            local before = tokens()
            emu:fault { mode = "status", status = 503, count = 2, scope = "entra" }
            local c = app("app5", { retries = 2 })
            assert.is_true(clean(c:hub("Chat"):broadcast("newMessage", { "after 503s" })))
            assert.equal(3, tokens() - before)
            assert.same({ 202 }, rest_statuses())
            -- more failures than retries: the status, and nothing sent
            emu:fault { mode = "status", status = 500, count = 3, scope = "entra" }
            c = app("app6", { retries = 2 })
            local ok, msg, d = clean(c:hub("Chat"):broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal("EAUTH", d.code)
            assert.equal(500, d.status)
            assert.truthy(msg:find("client id app6): HTTP 500", 1, true), msg)
            assert.same({ 202 }, rest_statuses())
        end)

        it("a token for the wrong audience: refreshed once, then the 401 explained", function()
            local before = tokens()
            emu:fault { mode = "audience", count = 1, scope = "entra" }
            local c = app("app7")
            assert.is_true(c:hub("Chat"):broadcast("newMessage", { "second token" }))
            assert.equal(2, tokens() - before)
            assert.same({ 401, 202 }, rest_statuses())
            emu:clear()
            emu:fault { mode = "audience", count = 2, scope = "entra" }
            c = app("app8")
            local ok, msg, d = clean(c:hub("Chat"):broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal(401, d.status)
            assert.truthy(msg:find("the service refused the Microsoft Entra ID token (audience"
                .. " https://signalr.azure.com, application app8 in tenant tenant1)", 1, true), msg)
            assert.truthy(msg:find("'SignalR REST API Owner'", 1, true), msg)
            assert.truthy(msg:find("The audience is invalid", 1, true), msg)
            assert.falsy(msg:find("AccessKey", 1, true), msg)
            assert.same({ 401, 401 }, rest_statuses())
        end)

        it("async mode: a 401 gets one more try with a new token, then is explained", function()
            local before = tokens()
            emu:fault { mode = "audience", count = 1, scope = "entra" }
            local c = app("app9", { async = true })
            local hub = assert(c:hub("Chat"))
            local r1 = assert(hub:broadcast("newMessage", { "async retry" }))
            assert(c:flush(10))
            assert.is_true(r1.result, r1.error)
            assert.equal(2, tokens() - before)
            assert.same({ 401, 202 }, rest_statuses())
            -- every token refused: the second 401 is the answer, explained
            emu:clear()
            c:close()
            c = app("app9", { async = true })
            hub = assert(c:hub("Chat"))
            emu:fault { mode = "audience", count = 2, scope = "entra" }
            -- the cached token is good: drop it through a first refusal
            emu:fault { mode = "status", status = 401, count = 1 }
            local r2 = assert(hub:broadcast("newMessage", { "x" }))
            assert(c:flush(10))
            assert.is_nil(r2.result)
            assert.equal(401, r2.details.status)
            assert.truthy(r2.error:find("^signalr.broadcast: HTTP 401 Unauthorized %(the service refused"
                .. " the Microsoft Entra ID token"), r2.error)
            clean(r2.error, r2.details)
            assert.same({ 401, 401 }, rest_statuses())
            c:close()
        end)

        it("a missing role: 403 naming the role; reads still work", function()
            local c = assert(signalr.new { connection_string = "Endpoint=http://localhost;Port="
                .. emu.port .. ";AuthType=azure.msi;ClientId=mi-reader;Version=1.0;",
                managed_identity_endpoint = emu.base .. "/metadata/identity/oauth2/token" })
            local hub = assert(c:hub("Chat"))
            local ok, msg, d = clean(hub:broadcast("newMessage", { "x" }))
            assert.is_nil(ok)
            assert.equal(403, d.status)
            assert.truthy(msg:find("the service denied managed identity mi-reader this operation",
                1, true), msg)
            assert.is_false(hub:user_exists("nobody"))
            -- negotiate's temporary key needs the App Server role
            local c2 = assert(signalr.new { connection_string = "Endpoint=http://localhost;Port="
                .. emu.port .. ";AuthType=azure.msi;ClientId=mi-nokey;Version=1.0;",
                managed_identity_endpoint = emu.base .. "/metadata/identity/oauth2/token" })
            ok, msg = clean(c2:hub("Chat"):negotiate())
            assert.is_nil(ok)
            assert.truthy(msg:find("^signalr.negotiate: HTTP 403"), msg)
            assert.truthy(msg:find("'SignalR App Server'", 1, true), msg)
        end)

        it("local auth disabled: AccessKey tokens are refused, for REST and for clients", function()
            local c = assert(signalr.new(emu.cs))
            local hub = assert(c:hub("Chat"))
            local ok, msg, d = hub:broadcast("newMessage", { "x" })
            assert.is_nil(ok)
            assert.equal(403, d.status)
            assert.truthy(msg:find("local authentication is disabled", 1, true), msg)
            local id, err = pool:connect("ak", assert(hub:negotiate()))
            assert.is_nil(id)
            assert.truthy(tostring(err):find("401", 1, true), err)
        end)
    end)
end)
