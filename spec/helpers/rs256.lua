-- RS256 tokens for specs, made with the openssl command (a real signer
-- beside the one under test): RSA keys, their PEM public keys and
-- certificates, JWKS documents, and signed JWTs of any header and claims.
local cjson = require("cjson").new()

local _M = {}

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

function _M.b64url(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        for j = 1, 2 + (b and 1 or 0) + (c and 1 or 0) do
            local v = math.floor(n / 2 ^ (18 - 6 * (j - 1))) % 64
            out[#out + 1] = B64:sub(v + 1, v + 1)
        end
    end
    return table.concat(out)
end

local function sh(cmd)
    local ok = os.execute(cmd .. " 2>/dev/null")
    assert(ok == true or ok == 0, "failed: " .. cmd)
end

local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end
_M.slurp = slurp

--- A new RSA key in a temporary directory: { dir, key (file), pem (the
-- public key's PEM text), cert (a self-signed certificate's PEM text),
-- n, e (base64url, for a JWK) }.
function _M.key(bits)
    local dir = os.tmpname()
    os.remove(dir)
    sh("mkdir -p " .. dir)
    local key = dir .. "/key.pem"
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:" .. (bits or 2048) .. " -out " .. key)
    sh("openssl pkey -in " .. key .. " -pubout -out " .. dir .. "/pub.pem")
    sh("openssl req -new -x509 -key " .. key .. " -subj /CN=test -days 1 -out " .. dir .. "/cert.pem")
    local p = io.popen("openssl rsa -in " .. key .. " -noout -modulus 2>/dev/null")
    local hex = p:read("*a"):match("Modulus=(%x+)")
    p:close()
    local bin = hex:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
    return { dir = dir, key = key, pem = slurp(dir .. "/pub.pem"), cert = slurp(dir .. "/cert.pem"),
             n = _M.b64url(bin), e = "AQAB" }
end

--- A JWKS document (JSON text) of keys { k, kid } ...
function _M.jwks(list)
    local keys = {}
    for i, x in ipairs(list) do
        keys[i] = { kty = "RSA", use = "sig", kid = x[2], n = x[1].n, e = x[1].e }
    end
    return cjson.encode { keys = keys }
end

--- A JWT of header (table; default RS256 without kid) and claims, signed
-- with k's private key.
function _M.sign(k, claims, header)
    local input = _M.b64url(cjson.encode(header or { alg = "RS256", typ = "JWT" })) .. "."
        .. _M.b64url(cjson.encode(claims))
    local f = assert(io.open(k.dir .. "/in", "wb"))
    f:write(input)
    f:close()
    sh("openssl dgst -sha256 -sign " .. k.key .. " -binary -out " .. k.dir .. "/sig " .. k.dir .. "/in")
    return input .. "." .. _M.b64url(slurp(k.dir .. "/sig"))
end

function _M.cleanup(k)
    os.execute("rm -rf " .. k.dir)
end

return _M
