-- The emulator's upstream auth settings: templates with
-- auth=ManagedIdentity;resource=..., refused when incomplete; the Entra
-- stand-in they turn on serves the JWKS of its signing key, which
-- --entra-signing-key gives (the key's own modulus, a kid derived from it).
local env = require "helpers.env"
local rs = require "helpers.rs256"
local cjson = require "cjson"

local function run(args)
    local p = io.popen(env.CLEAN .. env.root .. "/bin/signalr-emulator " .. args .. " 2>&1; echo \"rc=$?\"")
    local out = p:read("*a")
    p:close()
    return out
end

describe("signalr-emulator upstream auth", function()
    it("refuses incomplete or unknown auth rules, saying what is missing", function()
        for _, c in ipairs {
            { "'http://127.0.0.1:9/u;auth=ManagedIdentity'", "auth=ManagedIdentity needs resource=" },
            { "'http://127.0.0.1:9/u;resource=api://x'", "resource=... needs auth=ManagedIdentity" },
            { "'http://127.0.0.1:9/u;auth=Basic;resource=x'", "auth must be ManagedIdentity or None" },
        } do
            local out = run("--upstream " .. c[1])
            assert.truthy(out:find("rc=2", 1, true), out)
            assert.truthy(out:find(c[2], 1, true), out)
        end
        local out = run("--entra-signing-key /nonexistent")
        assert.truthy(out:find("rc=2", 1, true), out)
        assert.truthy(out:find("is not a readable PEM RSA private key", 1, true), out)
    end)

    it("an auth template turns the stand-in on; its JWKS holds the given key", function()
        local k = rs.key()
        local emu = env.emulator("--entra-signing-key " .. k.key
            .. " --upstream 'http://127.0.0.1:9/u;auth=ManagedIdentity;resource=api://x'")
        local ok, err = pcall(function()
            local out = env.read(emu.dir .. "/out")
            assert.truthy(out:find("Upstream token issuer: http://localhost:" .. emu.port .. "/managed/v2.0",
                1, true), out)
            local p = io.popen("curl -s " .. emu.base .. "/managed/discovery/v2.0/keys")
            local jwks = cjson.decode(p:read("*a"))
            p:close()
            assert.equal(1, #jwks.keys)
            assert.equal(k.n, jwks.keys[1].n)
            assert.equal("AQAB", jwks.keys[1].e)
            assert.equal(16, #jwks.keys[1].kid)
        end)
        emu:stop()
        rs.cleanup(k)
        assert(ok, err)
    end)
end)
