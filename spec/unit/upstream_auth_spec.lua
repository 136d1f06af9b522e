-- signalr.upstream's bearer tokens (the service's upstream auth
-- ManagedIdentity): RS256 with PEM keys, certificates or a JWKS (by kid),
-- issuer, audience, exp/nbf with clock skew; dispatch and handle refusing
-- with 401 from the headers alone; settings that cannot work raise.
-- Tokens are signed by the openssl command.
local upstream = require "signalr.upstream"
local core = require "signalr.core"
local rs = require "helpers.rs256"

local ISS = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
local AUD = "api://signalr-upstream"
local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"

describe("signalr.upstream bearer tokens", function()
    local k1, k2, k1024
    lazy_setup(function()
        k1, k2, k1024 = rs.key(), rs.key(), rs.key(1024)
    end)
    lazy_teardown(function()
        for _, k in ipairs { k1, k2, k1024 } do rs.cleanup(k) end
    end)

    local function claims(over)
        local now = os.time()
        local c = { iss = ISS, aud = AUD, exp = now + 600, nbf = now - 10, iat = now - 10,
                    oid = "svc-identity", sub = "svc-identity" }
        for k, v in pairs(over or {}) do
            if v == false then c[k] = nil else c[k] = v end
        end
        return c
    end
    local function hdrs(token, name)
        return { [name or "Authorization"] = token and ("Bearer " .. token) or nil,
                 ["X-ASRS-Connection-Id"] = "c1", ["X-ASRS-Hub"] = "chat",
                 ["X-ASRS-Category"] = "messages", ["X-ASRS-Event"] = "send",
                 ["Content-Type"] = "application/json" }
    end

    describe("verify_bearer()", function()
        it("accepts a token signed with a PEM public key, a certificate, or a JWKS key by kid", function()
            local tok = rs.sign(k1, claims())
            local c = assert(upstream.verify_bearer(hdrs(tok), { issuer = ISS, audience = AUD,
                public_keys = k1.pem }))
            assert.equal("svc-identity", c.oid)
            -- the key of a certificate, among others
            assert.truthy(upstream.verify_bearer(hdrs(tok), { issuer = { "x", ISS }, audience = AUD,
                public_keys = { k2.pem, k1.cert } }))
            -- a JWKS: the token's kid picks the key
            local jwks = rs.jwks { { k2, "two" }, { k1, "one" } }
            local auth = { issuer = ISS, audience = { "other", AUD }, jwks = jwks }
            assert.truthy(upstream.verify_bearer(hdrs(rs.sign(k1, claims(), { alg = "RS256", kid = "one" })),
                auth))
            assert.truthy(upstream.verify_bearer(hdrs(rs.sign(k2, claims(), { alg = "RS256", kid = "two" })),
                auth))
            -- the header the service's documentation names, and an aud list
            assert.truthy(upstream.verify_bearer(hdrs(rs.sign(k1, claims { aud = { "x", AUD } }),
                "Authentication"), { issuer = ISS, audience = AUD, public_keys = k1.pem }))
        end)

        it("refuses each bad token with 401 ETOKEN and a reason that never shows it", function()
            local now = os.time()
            local pem = { issuer = ISS, audience = AUD, public_keys = k1.pem }
            local jwks = { issuer = ISS, audience = AUD, jwks = rs.jwks { { k1, "one" }, { k2, "two" } } }
            local good = rs.sign(k1, claims())
            local h, p = good:match("^([^.]+)%.([^.]+)%.")
            local none = rs.b64url('{"alg":"none"}') .. "." .. p .. "."
            local hs = core.jwt_sign(require("cjson").encode(claims()), "secret")
            for i, c in ipairs {
                { nil, pem, "no Authorization header" },
                { "Basic " .. good, pem, "is not 'Bearer <JWT>'", raw = true },
                { rs.sign(k2, claims()), pem, "signature does not verify" },
                { h .. "." .. rs.b64url('{"iss":"' .. ISS .. '","aud":"' .. AUD .. '","exp":9e9}')
                    .. "." .. good:match("[^.]+$"), pem, "signature does not verify" },
                { none, pem, "not three base64url segments" },
                { hs, pem, "algorithm is not RS256" },
                { rs.sign(k1, claims { exp = now - 301 }), pem, "expired at" },
                { rs.sign(k1, claims { exp = false }), pem, "no numeric exp" },
                { rs.sign(k1, claims { nbf = now + 400 }), pem, "not valid before" },
                { rs.sign(k1, claims { iss = "https://sts.windows.net/evil/" }), pem,
                  "issuer 'https://sts.windows.net/evil/' is not one of auth.issuer" },
                { rs.sign(k1, claims { aud = "api://else" }), pem, "audience 'api://else' is not one" },
                { rs.sign(k1, claims { aud = { "a", "b" } }), pem, "audience %(not a string%) is not" },
                { rs.sign(k1, claims(), { alg = "RS256", kid = "three" }), jwks, "no key has the token's kid" },
                -- the kid names the other key: only that one is tried
                { rs.sign(k1, claims(), { alg = "RS256", kid = "two" }), jwks, "does not verify with the key" },
            } do
                local hh = hdrs(c.raw and nil or c[1])
                if c.raw then hh.Authorization = c[1] end
                local ok, msg, d = upstream.verify_bearer(hh, c[2])
                assert.is_nil(ok, "case " .. i)
                assert.matches(c[3], msg, nil, nil, "case " .. i)
                assert.equal("ETOKEN", d.code)
                assert.equal(401, d.status)
                assert.matches("^signalr%.upstream: ", msg)
                if c[1] then
                    local sig = c[1]:match("[^.]+$")
                    assert.is_nil(msg:find(c[1], 1, true), "case " .. i .. " shows the token")
                    if sig and #sig > 20 then assert.is_nil(msg:find(sig, 1, true)) end
                end
            end
        end)

        it("allows the clock skew on exp and nbf (default 300 s, clock_skew to change)", function()
            local now = os.time()
            local auth = { issuer = ISS, audience = AUD, public_keys = k1.pem }
            assert.truthy(upstream.verify_bearer(hdrs(rs.sign(k1, claims { exp = now - 200 })), auth))
            assert.truthy(upstream.verify_bearer(hdrs(rs.sign(k1, claims { nbf = now + 200 })), auth))
            local strict = { issuer = ISS, audience = AUD, public_keys = k1.pem, clock_skew = 0 }
            assert.is_nil(upstream.verify_bearer(hdrs(rs.sign(k1, claims { exp = now - 5 })), strict))
            assert.is_nil(upstream.verify_bearer(hdrs(rs.sign(k1, claims { nbf = now + 5 })), strict))
        end)

        it("raises on settings that cannot work, naming the setting", function()
            for i, c in ipairs {
                { { audience = AUD, public_keys = k1.pem }, "auth needs issuer" },
                { { issuer = ISS, public_keys = k1.pem }, "auth needs issuer .* and audience" },
                { { issuer = ISS, audience = AUD }, "auth has no RSA key" },
                { { issuer = ISS, audience = AUD, public_keys = "not pem" },
                  "auth.public_keys%[1%]: not a PEM public key" },
                { { issuer = ISS, audience = AUD, public_keys = k1024.pem },
                  "auth.public_keys%[1%]: the RSA key has fewer than 2048 bits" },
                { { issuer = ISS, audience = AUD, jwks = "{" }, "auth.jwks is not a JWKS document" },
                { { issuer = ISS, audience = AUD, jwks = '{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}' },
                  "auth.jwks: key 1: the JWK's n or e is not" },
                { { issuer = ISS, audience = AUD, jwks = '{"keys":[{"kty":"EC","crv":"P-256"}]}' },
                  "auth has no RSA key" },
                { { issuer = ISS, audience = AUD, public_keys = k1.pem, clock_skew = -1 },
                  "auth.clock_skew must be" },
                { { issuer = ISS, audience = AUD, public_keys = k1.pem, audiance = AUD },
                  "unknown auth option 'audiance'" },
                { { issuer = { 1 }, audience = AUD, public_keys = k1.pem }, "auth.issuer%[1%] must be" },
            } do
                local ok, err = pcall(upstream.verify_bearer, hdrs(nil), c[1])
                assert.is_false(ok, "case " .. i)
                assert.matches(c[2], err, nil, nil, "case " .. i)
            end
            assert.has_error(function() upstream.verify_bearer(hdrs(nil), "x") end,
                "signalr.upstream.verify_bearer: auth must be a table")
        end)
    end)

    describe("dispatch() with auth", function()
        local body = '{"type":1,"invocationId":"1","target":"send","arguments":["x"]}'
        local seen
        local function spec(over)
            local s = { auth = { issuer = ISS, audience = AUD, public_keys = k1.pem },
                        hubs = { chat = { messages = { send = function(ev, x)
                            seen = ev.auth
                            return "got " .. x
                        end } } } }
            for k, v in pairs(over or {}) do s[k] = v end
            return s
        end

        it("runs the handler with the token's claims as ev.auth; no access keys needed", function()
            seen = nil
            local status, b = upstream.dispatch(spec(), hdrs(rs.sign(k1, claims())), body)
            assert.equal(200, status)
            assert.equal("\30", b:sub(-1))
            assert.same({ type = 3, invocationId = "1", result = "got x" },
                require("cjson").decode(b:sub(1, -2)))
            assert.equal("svc-identity", seen.oid)
        end)

        it("answers 401 before reading anything else; with keys too, both must hold", function()
            seen = nil
            local _
            local status, b, ct, why = upstream.dispatch(spec(), hdrs(nil), "not even JSON")
            assert.equal(401, status)
            assert.equal("", b)
            assert.is_nil(ct)
            assert.matches("no Authorization header", why)
            status = upstream.dispatch(spec(), hdrs(rs.sign(k2, claims())), body)
            assert.equal(401, status)
            -- keys and auth: a signed request without a token, and a token without a signature
            local both = spec { keys = KEY }
            local signed = hdrs(nil)
            signed["X-ASRS-Signature"] = core.upstream_sign(KEY, "c1")
            status, _, _, why = upstream.dispatch(both, signed, body)
            assert.equal(401, status)
            assert.matches("no Authorization header", why)
            status, _, _, why = upstream.dispatch(both, hdrs(rs.sign(k1, claims())), body)
            assert.equal(401, status)
            assert.matches("no X%-ASRS%-Signature", why)
            signed.Authorization = "Bearer " .. rs.sign(k1, claims())
            assert.equal(200, (upstream.dispatch(both, signed, body)))
            assert.equal("svc-identity", seen.oid)
        end)

        it("still needs keys or auth", function()
            assert.has_error(function() upstream.dispatch({ hubs = {} }, hdrs(nil), body) end)
            assert.has_error(function() upstream.dispatch({ hubs = {}, auth = "x" }, hdrs(nil), body) end,
                "signalr.upstream.dispatch: auth must be a table { issuer, audience, public_keys | jwks }")
        end)
    end)

    describe("handle() with auth", function()
        local saved
        before_each(function() saved = rawget(_G, "ngx") end)
        after_each(function() _G.ngx = saved end)

        it("401 with WWW-Authenticate for a bad token, the body never read", function()
            local read, printed = 0, nil
            local h = hdrs(rs.sign(k2, claims()))
            local lowered = {}
            for k, v in pairs(h) do lowered[k:lower()] = v end
            _G.ngx = {
                WARN = 4, ERR = 3, log = function() end, var = { http_content_length = "10" },
                header = {},
                req = { get_method = function() return "POST" end,
                        get_headers = function() return lowered end,
                        read_body = function() read = read + 1 end,
                        get_body_data = function() return "" end,
                        get_body_file = function() end },
                print = function(b) printed = b end, exit = function() end,
            }
            upstream.handle { auth = { issuer = ISS, audience = AUD, public_keys = k1.pem }, hubs = {} }
            assert.equal(401, ngx.status)
            assert.equal(0, read)
            assert.is_nil(printed)
            assert.equal('Bearer error="invalid_token"', ngx.header["WWW-Authenticate"])
        end)
    end)
end)
