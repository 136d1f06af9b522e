-- signalr.auth without the identity platform: the token requests each
-- credential makes, how their answers are read, the token cache, the
-- asynchronous token and key flows over a stand-in queue, and what a
-- refusal says.  No network; no secret in any message.
local core = require "signalr.core"
local auth = require "signalr.auth"

local SECRET = "auth-spec-secret-Vq93kZp"

-- a credential for a connection string (every test its own client id:
-- tokens are cached per identity in the process)
local n = 0
local function credential(extra, opts)
    n = n + 1
    local cs = "Endpoint=https://x.service.signalr.net;AuthType=azure.app;ClientId=app" .. n
        .. ";TenantId=tenant" .. n .. ";ClientSecret=" .. SECRET .. ";Version=1.0;" .. (extra or "")
    opts = opts or {}
    opts.connection_string = cs
    local handle = assert(core.client(cs, { api_version = "2022-06-01" }))
    return auth.credential(handle, handle:info(), opts), handle
end

-- A queue that keeps the identity requests it is given until answered.
local function stand_in_queue()
    local q = { specs = {}, cbs = {} }
    function q.submit(spec, cb)
        q.specs[#q.specs + 1] = spec
        q.cbs[#q.cbs + 1] = cb
        return true
    end
    function q.answer(i, status, body) q.cbs[i](status, body) end
    return q
end

local TOKEN_REPLY = '{"access_token":"tok-1","expires_in":3600}'

describe("signalr.auth", function()
    describe("credential()", function()
        it("an application with a secret: a client-credentials request for the service's scope", function()
            local cred = credential(nil, { authority_host = "http://127.0.0.1:9/" })
            local spec = assert(cred:request(os.time()))
            assert.equal("POST", spec.method)
            assert.equal("http://127.0.0.1:9/tenant" .. n .. "/oauth2/v2.0/token", spec.url)
            assert.equal("application/x-www-form-urlencoded", spec.content_type)
            assert.truthy(spec.body:find("client_id=app" .. n, 1, true))
            assert.truthy(spec.body:find("scope=https%3A%2F%2Fsignalr.azure.com%2F.default", 1, true))
            assert.truthy(spec.body:find("grant_type=client_credentials", 1, true))
            assert.falsy(tostring(cred):find(SECRET, 1, true))
        end)

        it("a managed identity: the IMDS request with the resource and Metadata header", function()
            local cs = "Endpoint=https://x.service.signalr.net;AuthType=azure.msi;ClientId=mi-1;Version=1.0;"
            local handle = assert(core.client(cs, {}))
            local cred = auth.credential(handle, handle:info(), { managed_identity_endpoint = "http://127.0.0.1:9/t" })
            local spec = cred:request(0)
            assert.equal("GET", spec.method)
            assert.equal("http://127.0.0.1:9/t?api-version=2018-02-01&resource=https%3A%2F%2Fsignalr.azure.com"
                .. "&client_id=mi-1", spec.url)
            assert.same({ Metadata = "true" }, spec.headers)
        end)

        it("a managed identity chosen by client id, object id or resource id: IMDS names", function()
            local RID = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity"
                .. "/userAssignedIdentities/mi"
            for _, c in ipairs {
                { { managed_identity_client_id = "cid" }, "&client_id=cid" },
                { { managed_identity_object_id = "oid" }, "&object_id=oid" },
                { { managed_identity_resource_id = RID }, "&msi_res_id=" .. core.url_encode(RID) },
                { {}, "" },
            } do
                local cs = "Endpoint=https://x.service.signalr.net;AuthType=azure.msi;Version=1.0;"
                local handle = assert(core.client(cs, {}))
                c[1].managed_identity_endpoint = "http://127.0.0.1:9/t"
                local cred = auth.credential(handle, handle:info(), c[1])
                assert.equal("http://127.0.0.1:9/t?api-version=2018-02-01&resource=https%3A%2F%2F"
                    .. "signalr.azure.com" .. c[2], cred:request(0).url)
            end
            -- the resource id is shown in messages (a path, not a secret)
            local handle = assert(core.client("Endpoint=https://x;AuthType=azure.msi;Version=1.0;", {}))
            local cred = auth.credential(handle, handle:info(), { managed_identity_resource_id = RID })
            local _, msg = cred:parse(0, 400, '{"error":"invalid_request"}')
            assert.matches("with that resource id", msg, nil, true)
            assert.matches("resource id " .. RID, msg, nil, true)
        end)

        it("App Service names them client_id, principal_id, mi_res_id", function()
            local getenv = os.getenv
            local saved = package.loaded["signalr.auth.credential"]
            local ok, err = pcall(function()
                rawset(os, "getenv", function(k)
                    if k == "IDENTITY_ENDPOINT" then return "http://127.0.0.1:9/msi/token" end
                    if k == "IDENTITY_HEADER" then return "h" end
                    return getenv(k)
                end)
                package.loaded["signalr.auth.credential"] = nil
                local fresh = require "signalr.auth.credential"
                local handle = assert(core.client("Endpoint=https://x;AuthType=azure.msi;Version=1.0;", {}))
                for _, c in ipairs {
                    { "managed_identity_client_id", "&client_id=c1" },
                    { "managed_identity_object_id", "&principal_id=c1" },
                    { "managed_identity_resource_id", "&mi_res_id=c1" },
                } do
                    local cred = fresh.new(handle, handle:info(), { [c[1]] = "c1" })
                    assert.equal("http://127.0.0.1:9/msi/token?api-version=2019-08-01&resource=https%3A%2F%2F"
                        .. "signalr.azure.com" .. c[2], cred:request(0).url)
                    assert.same({ ["X-IDENTITY-HEADER"] = "h" }, cred:request(0).headers)
                end
            end)
            rawset(os, "getenv", getenv)
            package.loaded["signalr.auth.credential"] = saved
            assert(ok, err)
        end)

        it("one selector at a time; none with an AccessKey or an application", function()
            local msi = "Endpoint=https://x;AuthType=azure.msi;Version=1.0;"
            for i, c in ipairs {
                { msi, { managed_identity_client_id = "a", managed_identity_resource_id = "/r" },
                  "signalr.new: a managed identity is chosen by one id: got managed_identity_client_id and"
                  .. " managed_identity_resource_id" },
                { msi, { managed_identity_object_id = "o", managed_identity_resource_id = "/r" },
                  "got managed_identity_object_id and managed_identity_resource_id" },
                { "Endpoint=https://x;AuthType=azure.msi;ClientId=c;Version=1.0;",
                  { managed_identity_object_id = "o" }, "got ClientId and managed_identity_object_id" },
                { "Endpoint=https://x;AuthType=azure.msi;ClientId=c;Version=1.0;",
                  { managed_identity_client_id = "c" }, "got ClientId and managed_identity_client_id" },
                { msi, { managed_identity_object_id = "" }, "option 'managed_identity_object_id' is empty" },
                { "Endpoint=https://x;AccessKey=k;Version=1.0;", { managed_identity_client_id = "c" },
                  "option 'managed_identity_client_id' chooses a managed identity; this connection string"
                  .. " has an AccessKey" },
                { "Endpoint=https://x;AuthType=azure.app;ClientId=a;TenantId=t;ClientSecret=s;Version=1.0;",
                  { managed_identity_resource_id = "/r" }, "names an application" },
            } do
                local handle = assert(core.client(c[1], {}))
                local ok, err = pcall(auth.credential, handle, handle:info(), c[2])
                assert.is_false(ok, "case " .. i)
                assert.matches(c[3], err, nil, true)
            end
            -- and through signalr.new, which raises the same
            assert.has_error(function()
                require("signalr").new { connection_string = msi, managed_identity_client_id = "a",
                                         managed_identity_object_id = "b" }
            end)
        end)

        it("a PKCS#12 (PFX) certificate signs the assertion; a wrong password is named, not shown", function()
            local dir = os.tmpname()
            os.remove(dir)
            assert(os.execute("mkdir -p " .. dir .. " && cd " .. dir .. " && openssl req -x509 -newkey"
                .. " rsa:2048 -nodes -days 1 -subj /CN=pfx -keyout k.pem -out c.pem 2>/dev/null && openssl"
                .. " pkcs12 -export -in c.pem -inkey k.pem -out a.pfx -passout pass:unit-pfx-Pw3 2>/dev/null"))
            local cs_cert = ";ClientCert=" .. dir .. "/a.pfx"
            local function cert_cred(password)
                n = n + 1
                local cs = "Endpoint=https://x.service.signalr.net;AuthType=azure.app;ClientId=app" .. n
                    .. ";TenantId=t;Version=1.0" .. cs_cert .. ";"
                local handle = assert(core.client(cs, {}))
                return auth.credential(handle, handle:info(), { connection_string = cs,
                    authority_host = "http://127.0.0.1:9/", client_certificate_password = password })
            end
            local spec = assert(cert_cred("unit-pfx-Pw3"):request(os.time()))
            assert.truthy(spec.body:find("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion"
                .. "-type%3Ajwt-bearer", 1, true))
            local a = spec.body:match("client_assertion=([^&]+)")
            assert.equal(3, select(2, a:gsub("%.", "")) + 1)
            local _, msg, d = cert_cred("wrong-Pw"):request(os.time())
            assert.equal("EAUTH", d.code)
            assert.matches("the PKCS#12 (PFX) certificate file named by ClientCert: the password is wrong",
                msg, nil, true)
            assert.falsy(msg:find("wrong-Pw", 1, true))
            assert.falsy(msg:find(dir, 1, true))
            _, msg = cert_cred():request(os.time())
            assert.matches("it has a password and none was given", msg, nil, true)
            os.execute("rm -rf " .. dir)
        end)

        it("AccessKey clients have none", function()
            local handle = assert(core.client("Endpoint=https://x;AccessKey=k;Version=1.0;", {}))
            assert.is_nil(auth.credential(handle, handle:info(), {}))
        end)

        it("an authority that is not a URL raises, naming the option", function()
            assert.has_error(function() credential(nil, { authority_host = "login" }) end,
                "signalr.new: option 'authority_host' must be an http(s) URL, got 'login'")
        end)
    end)

    describe("reading the platform's answers", function()
        it("a token and when it expires", function()
            local cred = credential()
            local tok, exp = cred:parse(1000, 200, TOKEN_REPLY)
            assert.equal("tok-1", tok)
            assert.equal(4600, exp)
        end)
        it("a refusal: EAUTH with the AADSTS code, the status, a hint, never the secret", function()
            local cred = credential()
            local tok, msg, d = cred:parse(0, 401, '{"error":"invalid_client","error_description":'
                .. '"AADSTS7000215: Invalid client secret provided."}')
            assert.is_nil(tok)
            assert.equal("EAUTH", d.code)
            assert.equal(401, d.status)
            assert.equal("AADSTS7000215", d.service_code)
            assert.truthy(msg:find("check ClientSecret", 1, true), msg)
            assert.falsy(msg:find(SECRET, 1, true))
        end)
        it("a reply without a token or an expiry is EAUTH", function()
            local cred = credential()
            assert.equal("EAUTH", select(3, cred:parse(0, 200, '{"expires_in":5}')).code)
            assert.equal("EAUTH", select(3, cred:parse(0, 200, '{"access_token":"t"}')).code)
        end)
    end)

    describe("the token cache", function()
        it("a synchronous caller fetches once; the token is then cached", function()
            local a = auth.new(credential(), {})
            local fetches = 0
            local function fetch() fetches = fetches + 1 return 200, TOKEN_REPLY end
            assert.equal("tok-1", a:token(fetch))
            assert.equal("tok-1", a:token(fetch))
            assert.equal(1, fetches)
            a:invalidate("tok-1")
            assert.equal("tok-1", a:token(fetch))
            assert.equal(2, fetches)
        end)

        it("a failed fetch is the call's error (sent = false)", function()
            local a = auth.new(credential(), {})
            local tok, msg, d = a:token(function() return nil, "could not connect", { code = "ECONNECT" } end)
            assert.is_nil(tok)
            assert.equal("ECONNECT", d.code)
            assert.is_false(d.sent)
            assert.matches("^Microsoft Entra ID token request %(authority .*%): could not connect$", msg)
        end)

        it("a token provider is asked each time, unless it says when its token expires", function()
            local calls = 0
            local a = auth.new(function() calls = calls + 1 return "p" .. calls, os.time() + 3600 end, {})
            assert.equal("p1", a:token())
            assert.equal("p1", a:token())
            assert.equal(1, calls)
            local bad = auth.new(function() return nil, "nope" end, {})
            local tok, msg, d = bad:token()
            assert.is_nil(tok)
            assert.equal("EINVAL", d.code)
            assert.equal("the token provider gave no token: nope", msg)
        end)
    end)

    describe("with_token() (a transport that cannot wait)", function()
        it("callers wait for one fetch through the queue, then go on together", function()
            local a, q = auth.new(credential(), {}), stand_in_queue()
            local got = {}
            a:with_token(function(t) got[#got + 1] = t end, q.submit)
            a:with_token(function(t) got[#got + 1] = t end, q.submit)
            assert.equal(1, #q.specs)
            assert.equal(0, #got)
            q.answer(1, 200, TOKEN_REPLY)
            assert.same({ "tok-1", "tok-1" }, got)
            a:with_token(function(t) got[#got + 1] = t end, q.submit)
            assert.equal(3, #got)
            assert.equal(1, #q.specs)
        end)

        it("a refused fetch reaches every waiter as its error", function()
            local a, q = auth.new(credential(), {}), stand_in_queue()
            local errs = {}
            for _ = 1, 2 do
                a:with_token(function(t, msg, d) errs[#errs + 1] = { t, msg, d } end, q.submit)
            end
            q.answer(1, 400, '{"error":"invalid_request","error_description":"AADSTS90002: no tenant"}')
            assert.equal(2, #errs)
            assert.is_nil(errs[1][1])
            assert.equal("AADSTS90002", errs[2][3].service_code)
        end)
    end)

    describe("negotiate's temporary key", function()
        local function handle_stand_in()
            local h = { set = {} }
            function h.set_access_key(_, kid, key) h.set[#h.set + 1] = { kid, key } return true end
            return h
        end
        local KEY_REPLY = '{"KeyId":"kid-1","AccessKey":"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"}'

        it("ensure_key() fetches it once through the transport and gives it to the core", function()
            local a, h = auth.new(credential(), {}), handle_stand_in()
            local info = { server_endpoint = "https://k" .. n .. ".example" }
            local fetches = 0
            local function fetch_key() fetches = fetches + 1 return KEY_REPLY end
            assert.is_true(a:ensure_key(h, info, fetch_key))
            assert.is_true(a:ensure_key(h, info, fetch_key))
            assert.equal(1, fetches)
            assert.same({ { "kid-1", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH" } }, h.set)
        end)

        it("ensure_key(): a reply without a key is EREPLY, named for negotiate", function()
            local a = auth.new(credential(), {})
            local ok, msg, d = a:ensure_key(handle_stand_in(), { server_endpoint = "https://e" .. n },
                function() return '{"KeyId":"k"}' end)
            assert.is_nil(ok)
            assert.equal("EREPLY", d.code)
            assert.equal("signalr.negotiate: the temporary access key reply misses its AccessKey", msg)
        end)

        it("when_key() runs its waiters once the token and then the key came through the queue", function()
            local a, q, h = auth.new(credential(), {}), stand_in_queue(), handle_stand_in()
            local info = { server_endpoint = "https://w" .. n .. ".example" }
            local ran = {}
            for i = 1, 2 do
                a:when_key(info, q.submit, function() ran[#ran + 1] = { i, a:use_key(h, info) } end)
            end
            q.answer(1, 200, TOKEN_REPLY) -- the token first
            assert.equal(2, #q.specs)
            assert.equal("GET", q.specs[2].method)
            assert.equal(info.server_endpoint .. "/api/v1/auth/accessKey", q.specs[2].url)
            assert.equal("Bearer tok-1", q.specs[2].headers.Authorization)
            q.answer(2, 200, KEY_REPLY)
            assert.same({ { 1, true }, { 2, true } }, ran)
            assert.equal(1, #h.set)
        end)

        it("when_key(): a refused key request is each waiter's error, explained", function()
            local a, q, h = auth.new(credential(), {}), stand_in_queue(), handle_stand_in()
            local info = { server_endpoint = "https://r" .. n .. ".example" }
            local out
            a:when_key(info, q.submit, function() out = { a:use_key(h, info) } end)
            q.answer(1, 200, TOKEN_REPLY)
            q.answer(2, 403, "")
            assert.is_nil(out[1])
            assert.equal(403, out[3].status)
            assert.truthy(out[2]:find("'SignalR App Server'", 1, true), out[2])
        end)
    end)

    describe("explain()", function()
        it("names the identity and the role a refused call needs", function()
            local a = auth.new(credential(), {})
            local msg = auth.explain(a, "user_exists", "HTTP 403 Forbidden (denied)", { status = 403 })
            assert.truthy(msg:find("'SignalR REST API Reader'", 1, true), msg)
            assert.truthy(msg:find("application app" .. n, 1, true), msg)
            assert.equal("HTTP 500 x", auth.explain(a, "broadcast", "HTTP 500 x", { status = 500 }))
            assert.equal("as is", auth.explain(nil, "broadcast", "as is", { status = 401 }))
        end)
    end)
end)
