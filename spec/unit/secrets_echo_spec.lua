-- No error echoes a value that may hold a secret: a PEM pasted where a
-- certificate file's name belongs (ClientCert), a ';' missing after
-- ClientId or TenantId (the next part, maybe the key or the secret, runs
-- into the value), a connection string given where the `signalr`
-- command's name belongs.  Every message is also written where the
-- secrets scan of `make test` looks (SIGNALR_SCAN_DIR), so the scan
-- catches a leak even if an assertion here were wrong.
local signalr = require "signalr"
local cli = require "signalr.cli"
local core = require "signalr.core"
local cjson = require "cjson"
local env = require "helpers.env"

-- a PEM private key and certificate: the shape a user pastes (not a
-- working key: it is never parsed, only refused as a file name)
local PEM = "-----BEGIN PRIVATE KEY-----\n"
    .. "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    .. "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    .. "-----END PRIVATE KEY-----\n"
    .. "-----BEGIN CERTIFICATE-----\n"
    .. "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n"
    .. "-----END CERTIFICATE-----\n"
local PEM_PROBES = { "PRIVATE KEY", "BEGIN", "MIIEvQIBADAN", "MzEfYyjiWA4R", "MIIDdzCC" }
local KEY = env.KEY -- the suite's access key (the secrets scan looks for it)
local SECRET = "entra-client-secret-Q7vX2mP9kL4t"

-- Keep text for the secrets scan (when the suite runs under make test).
local function keep(name, text)
    if not os.getenv("SIGNALR_SCAN_DIR") then return end
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    env.keep_log(path, name)
    os.remove(path)
end

-- Everything a failed call gave, as one text (kept for the scan).
local function said(name, ...)
    local parts = {}
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        parts[#parts + 1] = type(v) == "table" and cjson.encode(v) or tostring(v)
    end
    local text = table.concat(parts, "\n")
    keep(name, text)
    return text
end

local function no_pem(text)
    for _, p in ipairs(PEM_PROBES) do
        assert.falsy(text:find(p, 1, true), "a byte of the PEM is shown (" .. p .. ")")
    end
end

local function not_shown(text, secret, what)
    assert.falsy(text:find(secret:sub(1, 12), 1, true), what .. " is shown")
end

describe("no value that may hold a secret is echoed", function()
    local CS = "Endpoint=http://127.0.0.1:1;AuthType=azure.app;ClientId=app-1;TenantId=t;ClientCert="

    it("a PEM given as ClientCert: EAUTH names the setting, shows none of the PEM", function()
        local c = assert(signalr.new { connection_string = CS .. PEM, authority_host = "http://127.0.0.1:1/",
                                       retries = 0 })
        local ok, msg, d = c:hub("h"):broadcast("x")
        local text = said("clientcert-pem", msg, d, tostring(c))
        assert.is_nil(ok)
        assert.equal("EAUTH", d.code)
        assert.is_false(d.sent)
        no_pem(text)
        assert.truthy(msg:find("cannot read the certificate file named by ClientCert", 1, true), msg)
        assert.truthy(msg:find("PEM text", 1, true), msg)
    end)

    it("a file name that cannot be read is not shown either (it may be a secret by mistake)", function()
        local c = assert(signalr.new { connection_string = CS:gsub("ClientCert=$", "ClientCertPath=")
            .. "/nonexistent/" .. SECRET, authority_host = "http://127.0.0.1:1/", retries = 0 })
        local ok, msg, d = c:hub("h"):broadcast("x")
        local text = said("clientcert-path", msg, d)
        assert.is_nil(ok)
        assert.equal("EAUTH", d.code)
        not_shown(text, SECRET, "the file name")
        assert.equal("signalr.broadcast: Microsoft Entra ID token request (authority http://127.0.0.1:1/,"
            .. " tenant t, client id app-1): cannot read the certificate file named by ClientCertPath", msg)
    end)

    it("persistent mode: the connection's error (ECONNECT, last_error, status) shows none of the PEM",
        function()
        local c = assert(signalr.new { connection_string = CS .. PEM, authority_host = "http://127.0.0.1:1/",
                                       mode = "persistent", timeout = 0.3, retries = 0 })
        local h = assert(c:hub("chat"))
        local r = h:broadcast("t", { 1 })
        if type(r) == "table" then
            local deadline = core.monotonic() + 5
            while not r.done and core.monotonic() < deadline do c:poll(0.05) end
        end
        local msg, d
        r, msg, d = h:broadcast("t", { 2 })
        local st = c:status()
        local text = said("persistent-pem", msg, d, st)
        assert.is_nil(r)
        assert.equal("ECONNECT", d.code)
        no_pem(text)
        assert.truthy(tostring(d.last_error):find("named by ClientCert", 1, true), tostring(d.last_error))
        c:close()
    end)

    it("a ';' missing after ClientId or TenantId: the id is not shown when it is not plainly an id", function()
        -- a user-assigned managed identity whose ClientId ran into the AccessKey
        local c = assert(signalr.new { connection_string = "Endpoint=http://127.0.0.1:1;AuthType=azure.msi;"
            .. "ClientId=mi-1 AccessKey=" .. KEY .. ";Version=1.0;",
            managed_identity_endpoint = "http://127.0.0.1:1/token", retries = 0 })
        local ok, msg, d = c:hub("h"):broadcast("x")
        local text = said("clientid-key", msg, d, tostring(c))
        assert.is_nil(ok)
        not_shown(text, KEY, "the access key")
        assert.truthy(msg:find("client id (not shown", 1, true), msg)
        -- an application whose TenantId ran into its ClientSecret
        c = assert(signalr.new { connection_string = "Endpoint=http://127.0.0.1:1;AuthType=azure.app;"
            .. "ClientId=app-1;TenantId=t ClientSecret=" .. SECRET .. ";ClientCertPath=/nonexistent.pem",
            authority_host = "http://127.0.0.1:1/", retries = 0 })
        ok, msg, d = c:hub("h"):broadcast("x")
        text = said("tenantid-secret", msg, d)
        assert.is_nil(ok)
        not_shown(text, SECRET, "the client secret")
        assert.truthy(msg:find("tenant (not shown", 1, true), msg)
        -- plain ids are still named
        c = assert(signalr.new { connection_string = "Endpoint=http://127.0.0.1:1;AuthType=azure.msi;"
            .. "ClientId=3f2504e0-4f89-11d3-9a0c-0305e82c3301;Version=1.0;",
            managed_identity_endpoint = "http://127.0.0.1:1/token", retries = 0 })
        ok, msg = c:hub("h"):broadcast("x")
        assert.is_nil(ok)
        assert.truthy(msg:find("client id 3f2504e0-4f89-11d3-9a0c-0305e82c3301", 1, true), msg)
    end)
end)

describe("the signalr command", function()
    local function run(args, vars)
        local o, e = {}, {}
        local code = cli.run(args, {
            stdout = function(s) o[#o + 1] = s end,
            stderr = function(s) e[#e + 1] = s end,
            getenv = function(k) return (vars or {})[k] end,
        })
        return code, table.concat(o), table.concat(e)
    end
    local CS = "Endpoint=http://127.0.0.1;Port=1;AccessKey=" .. KEY .. ";Version=1.0;"

    it("a connection string where the command belongs: refused, not echoed", function()
        for _, args in ipairs {
            { CS, "broadcast", "chat", "t" },
            { "--json", CS, "broadcast", "chat", "t" },
            { "Endpoint=https://x;AuthType=azure.app;ClientId=a;TenantId=t;ClientSecret=" .. SECRET, "health" },
        } do
            local code, out, err = run(args)
            keep("cli-connstr", out .. err)
            assert.equal(2, code)
            not_shown(out .. err, KEY, "the access key")
            not_shown(out .. err, SECRET, "the client secret")
            assert.truthy(err:find("looks like a connection string", 1, true), err)
            assert.truthy(err:find("AzureSignalRConnectionString", 1, true), err)
        end
    end)

    it("an unknown command is echoed only when it is a plain word", function()
        local code, _, err = run({ "launch" })
        assert.equal(2, code)
        assert.truthy(err:find("unknown command 'launch'", 1, true), err)
        code, _, err = run({ "x" .. SECRET .. "/+" })
        assert.equal(2, code)
        not_shown(err, SECRET, "the argument")
        assert.truthy(err:find("unknown command", 1, true), err)
        code, _, err = run({ string.rep("a", 80) })
        assert.equal(2, code)
        assert.falsy(err:find(string.rep("a", 40), 1, true), err)
    end)

    it("an unreadable certificate is a local error (2), nothing sent; none of the PEM shows", function()
        local code, out, err = run({ "broadcast", "chat", "t" }, { AzureSignalRConnectionString =
            "Endpoint=http://127.0.0.1;Port=1;AuthType=azure.app;ClientId=a;TenantId=t;ClientCert=" .. PEM })
        keep("cli-pem", out .. err)
        assert.equal(2, code)
        no_pem(out .. err)
        assert.truthy(err:find("named by ClientCert", 1, true), err)
    end)
end)
