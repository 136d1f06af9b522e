--- Serverless event handlers ("upstream"): the service POSTs each client
-- event (connected, disconnected, hub method invocations) to your URL,
-- signed with `X-ASRS-Signature`.  This module checks the signature,
-- reads the event, and writes the completion an invoking client waits
-- for, in the client's protocol (JSON or MessagePack).
--
--     local upstream = require "signalr.upstream"
--     -- inside content_by_lua_block:
--     upstream.handle { keys = { os.getenv("SIGNALR_KEY") }, hubs = { chat = {
--         connected = function(ev) ... end,
--         messages = { send = function(ev, text) return "got " .. text end },
--     } } }
--
-- `verify`, `parse`, `completion` and `dispatch` work on a plain headers
-- table and body string, outside nginx too; `handle` is the nginx glue.
-- MessagePack bodies need lua-messagepack (Debian: lua-messagepack; it is
-- loaded only for such a body).
-- @module signalr.upstream
local core = require "signalr.core"
local cjson = require("cjson").new()

local type, error, pairs, ipairs, tostring, tonumber, pcall =
    type, error, pairs, ipairs, tostring, tonumber, pcall
local lower, char, find, concat = string.lower, string.char, string.find, table.concat
local floor = math.floor


local _M = {}

--- The largest body `handle` reads (the service's own message limit).
_M.MAX_BODY = 1024 * 1024

local JSON = "application/json"
local MSGPACK = "application/x-msgpack"

-- A header of headers (any case of the name; ngx's table or a plain one).
-- t[name], else the value under any case of name (header names, JSON
-- fields, hub and method names all match case-insensitively)
local function lookup(t, name)
    local v = t[name]
    if v ~= nil then return v end
    local want = lower(name)
    for k, x in pairs(t) do
        if type(k) == "string" and lower(k) == want then return x end
    end
end

local function header(headers, name)
    local v = lookup(headers, name)
    if type(v) == "table" then v = v[1] end -- a repeated header: the first
    return v
end
_M.header = header

local function fail(status, code, msg)
    return nil, "signalr.upstream: " .. msg, { code = code, status = status }
end

local function key_list(keys, what)
    if type(keys) == "string" then keys = { keys } end
    if type(keys) ~= "table" or #keys == 0 then
        error("signalr.upstream." .. what .. ": keys must be an access key or a list of them", 3)
    end
    local out = {}
    for i, k in ipairs(keys) do
        if type(k) ~= "string" or k == "" then
            error("signalr.upstream." .. what .. ": keys[" .. i .. "] must be a non-empty string", 3)
        end
        -- a connection string stands for its AccessKey
        if k:find("Endpoint=", 1, true) then
            local key = k:match("[Aa][Cc][Cc][Ee][Ss][Ss][Kk][Ee][Yy]=([^;]+)")
            if not key then
                error("signalr.upstream." .. what .. ": keys[" .. i .. "] is a connection string"
                    .. " without an AccessKey (upstream signatures need the access keys)", 3)
            end
            k = key
        end
        out[i] = k
    end
    return out
end

--- Check `X-ASRS-Signature` against one or more access keys (primary and
-- secondary): `sha256=<hex>` items, comma-separated, any case, compared
-- in constant time.  `keys`: AccessKey strings, or connection strings
-- (their AccessKey is used).
-- @treturn[1] true
-- @treturn[2] nil, message, details (`code` "ESIGNATURE", `status` 401)
-- verify with keys already checked and resolved (key_list)
local function verify(headers, keys)
    local id = header(headers, "X-ASRS-Connection-Id")
    if type(id) ~= "string" or id == "" then
        return fail(401, "ESIGNATURE", "no X-ASRS-Connection-Id: the signature cannot be checked")
    end
    local sig = header(headers, "X-ASRS-Signature")
    if type(sig) ~= "string" or sig == "" then
        return fail(401, "ESIGNATURE", "no X-ASRS-Signature: the request is not from the service")
    end
    local ok, why = core.upstream_verify(sig, id, keys)
    if ok then return true end
    if why == "malformed" then
        return fail(401, "ESIGNATURE", "X-ASRS-Signature is malformed (expected sha256=<64 hex digits>"
            .. " items separated by commas)")
    end
    return fail(401, "ESIGNATURE", "X-ASRS-Signature does not match this connection id under any"
        .. " of the " .. #keys .. " key(s)")
end

function _M.verify(headers, keys)
    if type(headers) ~= "table" then
        error("signalr.upstream.verify: headers must be a table, got " .. type(headers), 2)
    end
    return verify(headers, key_list(keys, "verify"))
end

-- ===== bearer tokens: the service's upstream auth (ManagedIdentity) =====

-- What `auth` may hold, and the compiled form of each `auth` table (read
-- once: a table changed after its first use keeps its first reading).
local AUTH_KNOWN = { issuer = true, audience = true, public_keys = true, jwks = true,
                     clock_skew = true }
local compiled = setmetatable({}, { __mode = "k" })

--- Seconds of clock skew allowed on `exp` and `nbf` by default (5
-- minutes, as Microsoft's token validation allows).
_M.CLOCK_SKEW = 300

-- a string or a list of non-empty strings, as a set
local function string_set(v, what, name, lvl)
    if type(v) == "string" then v = { v } end
    if type(v) ~= "table" or #v == 0 then
        error("signalr.upstream." .. what .. ": auth." .. name
            .. " must be a string or a list of strings", lvl + 1)
    end
    local set = {}
    for i, x in ipairs(v) do
        if type(x) ~= "string" or x == "" then
            error("signalr.upstream." .. what .. ": auth." .. name .. "[" .. i
                .. "] must be a non-empty string", lvl + 1)
        end
        set[x] = true
    end
    return set
end

-- The RSA keys of a JWKS document (JSON text): those of kty RSA meant
-- for signatures (use "sig" or none, alg RS256 or none), by kid.
local function add_jwks(ks, text, what, lvl)
    local ok, t = pcall(cjson.decode, text)
    if not ok or type(t) ~= "table" or type(t.keys) ~= "table" then
        error("signalr.upstream." .. what .. ": auth.jwks is not a JWKS document"
            .. " (JSON text {\"keys\":[...]})", lvl + 1)
    end
    for i, k in ipairs(t.keys) do
        if type(k) == "table" and k.kty == "RSA" and (k.use == nil or k.use == "sig")
                and (k.alg == nil or k.alg == "RS256") then
            if type(k.n) ~= "string" or type(k.e) ~= "string"
                    or (k.kid ~= nil and type(k.kid) ~= "string") then
                error("signalr.upstream." .. what .. ": auth.jwks: key " .. i
                    .. " lacks n or e, or its kid is not a string", lvl + 1)
            end
            local added, msg = ks:add_jwk(k.n, k.e, k.kid)
            if not added then
                error("signalr.upstream." .. what .. ": auth.jwks: key " .. i .. ": " .. msg, lvl + 1)
            end
        end
    end
end

-- auth -> { ks, issuers, audiences, skew } (raises on a setting that
-- cannot work: a typo here would let every token through or none; lvl:
-- the level of the user's call, for error())
local function compile_auth(auth, what, lvl)
    local c = compiled[auth]
    if c then return c end
    for k in pairs(auth) do
        if not AUTH_KNOWN[k] then
            error("signalr.upstream." .. what .. ": unknown auth option '" .. tostring(k)
                .. "' (issuer, audience, public_keys, jwks, clock_skew)", lvl)
        end
    end
    if auth.issuer == nil or auth.audience == nil then
        error("signalr.upstream." .. what .. ": auth needs issuer (e.g."
            .. " 'https://sts.windows.net/<tenant id>/') and audience (the upstream"
            .. " setting's resource)", lvl)
    end
    c = { issuers = string_set(auth.issuer, what, "issuer", lvl),
          audiences = string_set(auth.audience, what, "audience", lvl),
          skew = auth.clock_skew or _M.CLOCK_SKEW, ks = core.keyset() }
    if type(c.skew) ~= "number" or c.skew < 0 or c.skew > 3600 then
        error("signalr.upstream." .. what .. ": auth.clock_skew must be a number of"
            .. " seconds from 0 to 3600", lvl)
    end
    local pems = auth.public_keys
    if type(pems) == "string" then pems = { pems } end
    if pems ~= nil then
        if type(pems) ~= "table" then
            error("signalr.upstream." .. what .. ": auth.public_keys must be PEM text or"
                .. " a list of PEM texts", lvl)
        end
        for i, pem in ipairs(pems) do
            if type(pem) ~= "string" then
                error("signalr.upstream." .. what .. ": auth.public_keys[" .. i
                    .. "] must be PEM text", lvl)
            end
            local added, msg = c.ks:add_pem(pem)
            if not added then
                error("signalr.upstream." .. what .. ": auth.public_keys[" .. i .. "]: " .. msg, lvl)
            end
        end
    end
    if auth.jwks ~= nil then
        if type(auth.jwks) ~= "string" then
            error("signalr.upstream." .. what .. ": auth.jwks must be the JWKS document's"
                .. " JSON text", lvl)
        end
        add_jwks(c.ks, auth.jwks, what, lvl)
    end
    if c.ks:count() == 0 then
        error("signalr.upstream." .. what .. ": auth has no RSA key: give public_keys"
            .. " (PEM) or jwks (the tenant's JWKS document)", lvl)
    end
    compiled[auth] = c
    return c
end

local function now()
    local n = type(ngx) == "table" and ngx.time
    return n and n() or os.time()
end

-- A claim as messages show it: plain text, at most 100 bytes.
local function shown(v)
    v = tostring(v)
    if #v > 100 or v:find("[%c\"]") then return "(not shown)" end
    return "'" .. v .. "'"
end

-- verify_bearer with auth compiled
local function bearer(headers, c)
    local h = header(headers, "Authorization")
    if h == nil then h = header(headers, "Authentication") end
    if type(h) ~= "string" or h == "" then
        return fail(401, "ETOKEN", "no Authorization header: the upstream expects the"
            .. " service's bearer token (upstream auth ManagedIdentity)")
    end
    local tok = h:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+([%w%-_%.]+)%s*$")
    if not tok then
        return fail(401, "ETOKEN", "the Authorization header is not 'Bearer <JWT>'"
            .. " (the value is not shown)")
    end
    local json, msg = c.ks:verify(tok)
    if not json then return fail(401, "ETOKEN", "bearer token refused: " .. msg) end
    local ok, claims = pcall(cjson.decode, json)
    if not ok or type(claims) ~= "table" then
        return fail(401, "ETOKEN", "bearer token refused: the payload is not a JSON object")
    end
    local t = now()
    local exp, nbf = claims.exp, claims.nbf
    if type(exp) ~= "number" then
        return fail(401, "ETOKEN", "bearer token refused: no numeric exp claim")
    end
    if t > exp + c.skew then
        return fail(401, "ETOKEN", "bearer token refused: expired at " .. floor(exp)
            .. " (now " .. t .. ", clock skew " .. c.skew .. " s)")
    end
    if nbf ~= nil and (type(nbf) ~= "number" or t < nbf - c.skew) then
        return fail(401, "ETOKEN", "bearer token refused: not valid before "
            .. tostring(nbf) .. " (now " .. t .. ", clock skew " .. c.skew .. " s)")
    end
    if type(claims.iss) ~= "string" or not c.issuers[claims.iss] then
        return fail(401, "ETOKEN", "bearer token refused: issuer " .. shown(claims.iss)
            .. " is not one of auth.issuer")
    end
    local aud, hit = claims.aud, false
    if type(aud) == "string" then
        hit = c.audiences[aud] == true
    elseif type(aud) == "table" then
        for _, a in ipairs(aud) do if c.audiences[a] then hit = true end end
    end
    if not hit then
        return fail(401, "ETOKEN", "bearer token refused: audience "
            .. (type(aud) == "string" and shown(aud) or "(not a string)")
            .. " is not one of auth.audience")
    end
    return claims
end

--- Check the service's bearer token (upstream auth `ManagedIdentity`: a
-- Microsoft Entra ID token in `Authorization: Bearer`; `Authentication`
-- is read too): its RS256 signature with one of the keys (the C core),
-- `iss` one of `issuer`, `aud` one of `audience`, `exp` not past and
-- `nbf` reached, both within `clock_skew`.
-- @tparam table headers the request's headers (names in any case)
-- @tparam table auth `{ issuer, audience, public_keys, jwks, clock_skew }`:
--   `issuer` and `audience` a string or a list; `public_keys` PEM text (a
--   public key or a certificate) or a list of them; `jwks` the JSON text of
--   a JWKS document (keys picked by the token's `kid`); `clock_skew`
--   seconds (default 300).  Read once per table.
-- @treturn[1] table the token's claims
-- @treturn[2] nil
-- @treturn[2] string why (never the token)
-- @treturn[2] table details: `code` "ETOKEN", `status` 401
-- @raise on a wrong type, an unknown `auth` option, a key that cannot be read
function _M.verify_bearer(headers, auth)
    if type(headers) ~= "table" then
        error("signalr.upstream.verify_bearer: headers must be a table, got " .. type(headers), 2)
    end
    if type(auth) ~= "table" then
        error("signalr.upstream.verify_bearer: auth must be a table", 2)
    end
    return bearer(headers, compile_auth(auth, "verify_bearer", 3))
end

-- "a: b, c: d" -> { a = "b", c = "d" } (the first value of a type wins)
local function parse_claims(s)
    local out = {}
    if type(s) ~= "string" then return out end
    for item in (s .. ","):gmatch("([^,]*),") do
        local at = find(item, ": ", 1, true)
        if at then
            local k = item:sub(1, at - 1):match("^%s*(.-)%s*$")
            local v = item:sub(at + 2):match("^%s*(.-)%s*$")
            if k ~= "" and out[k] == nil then out[k] = v end
        end
    end
    return out
end

-- "?a=1&b=2" -> { a = "1", b = "2" } (repeated keys: the first)
local function parse_query(s)
    local out = {}
    if type(s) ~= "string" then return out end
    s = s:gsub("^%?", "")
    for pair in s:gmatch("[^&]+") do
        local k, v = pair:match("^([^=]*)=?(.*)$")
        k = core.url_decode((k:gsub("+", " ")))
        if k and k ~= "" and out[k] == nil then
            out[k] = core.url_decode((v:gsub("+", " "))) or v
        end
    end
    return out
end

-- A field of a JSON object, read case-insensitively (the service writes
-- `type`, the official emulator `Type`).
local field = lookup

local mp -- lua-messagepack, loaded for the first MessagePack body
local function msgpack()
    if mp then return mp end
    local ok, m = pcall(require, "MessagePack")
    if not ok and _VERSION == "Lua 5.4" then
        -- Debian packages lua-messagepack for 5.1-5.3; its pure-Lua 5.3
        -- module runs unchanged under 5.4
        local path = "/usr/share/lua/5.3/MessagePack.lua"
        local f = io.open(path, "rb")
        if f then
            f:close()
            ok, m = pcall(dofile, path)
            if ok then package.loaded.MessagePack = m end
        end
    end
    if not ok then
        return nil, "a MessagePack body needs lua-messagepack (Debian: lua-messagepack)"
    end
    mp = m
    return mp
end

local NULL = cjson.null
_M.null = NULL

-- JSON null and MessagePack nil both arrive as signalr.upstream.null in
-- argument lists (a hole would shorten the list).
local function nulls(list, n)
    local out = {}
    for i = 1, n do
        local v = list[i]
        if v == nil then v = NULL end
        out[i] = v
    end
    return out
end

local function decode_json(body)
    local ok, t = pcall(cjson.decode, body)
    if not ok or type(t) ~= "table" then return nil end
    return t
end

--- Read an upstream request into an event table:
-- `{ hub, category, event, connection_id, user_id, claims, query,
-- protocol, error, invocation = { invocation_id, target, arguments } }`.
-- Checks the content type, the routing headers and the body; does not
-- check the signature (`verify` does).
-- @treturn[1] table the event
-- @treturn[2] nil, message, details (`code`, and `status`: the answer
--   the service should get: 400 or 415)
function _M.parse(headers, body)
    if type(headers) ~= "table" then
        error("signalr.upstream.parse: headers must be a table, got " .. type(headers), 2)
    end
    if body ~= nil and type(body) ~= "string" then
        error("signalr.upstream.parse: body must be a string, got " .. type(body), 2)
    end
    body = body or ""
    local ctype = lower(header(headers, "Content-Type") or ""):match("^%s*([^;%s]+)")
    if ctype ~= JSON and ctype ~= MSGPACK then
        return fail(415, "EINVAL", "unsupported Content-Type '" .. tostring(header(headers, "Content-Type"))
            .. "' (expected application/json or application/x-msgpack)")
    end
    local ev = {
        hub = header(headers, "X-ASRS-Hub"),
        category = header(headers, "X-ASRS-Category"),
        event = header(headers, "X-ASRS-Event"),
        connection_id = header(headers, "X-ASRS-Connection-Id"),
        user_id = header(headers, "X-ASRS-User-Id"),
        protocol = ctype == JSON and "json" or "messagepack",
    }
    for _, k in ipairs { "hub", "category", "event", "connection_id" } do
        if type(ev[k]) ~= "string" or ev[k] == "" then
            local name = ({ hub = "X-ASRS-Hub", category = "X-ASRS-Category",
                            event = "X-ASRS-Event", connection_id = "X-ASRS-Connection-Id" })[k]
            return fail(400, "EINVAL", "missing header " .. name)
        end
    end
    if ev.user_id == "" then ev.user_id = nil end
    ev.claims = parse_claims(header(headers, "X-ASRS-User-Claims"))
    ev.query = parse_query(header(headers, "X-ASRS-Client-Query"))
    local cat = lower(ev.category)
    if cat == "connections" then
        local kind = lower(ev.event)
        if kind ~= "connected" and kind ~= "disconnected" then
            return fail(400, "EINVAL", "unknown connections event '" .. ev.event
                .. "' (connected or disconnected)")
        end
        if ctype ~= JSON then
            return fail(415, "EINVAL", "a connections event has a JSON body")
        end
        local t = body ~= "" and decode_json(body) or {}
        if not t then return fail(400, "EINVAL", "the body is not a JSON object") end
        local want = kind == "connected" and 10 or 11
        local typ = field(t, "type")
        if typ ~= nil and typ ~= want then
            return fail(400, "EINVAL", "a " .. kind .. " event has type " .. want .. ", not "
                .. tostring(typ))
        end
        local err = field(t, "error")
        if type(err) == "string" and err ~= "" then ev.error = err end
        return ev
    elseif cat ~= "messages" then
        return fail(400, "EINVAL", "unknown category '" .. ev.category .. "' (connections or messages)")
    end
    local inv
    if ctype == JSON then
        local t = decode_json(body)
        if not t or field(t, "type") ~= 1 then
            return fail(400, "EINVAL", "the body is not a JSON hub invocation ({\"type\":1,...})")
        end
        local args = field(t, "arguments")
        if args ~= nil and type(args) ~= "table" then
            return fail(400, "EINVAL", "the invocation's arguments are not a list")
        end
        local id = field(t, "invocationId")
        if id ~= nil and type(id) ~= "string" then
            return fail(400, "EINVAL", "the invocationId is not a string")
        end
        args = args or {}
        inv = { invocation_id = id, target = field(t, "target"), arguments = nulls(args, #args) }
    else
        local m, why = msgpack()
        if not m then return fail(415, "EUNSUPPORTED", why) end
        local ok, t = pcall(m.unpack, body)
        -- [1, headers, invocationId | nil, target, arguments, streamIds?]
        if not ok or type(t) ~= "table" or t[1] ~= 1 or type(t[4]) ~= "string"
                or type(t[5]) ~= "table" then
            return fail(400, "EINVAL", "the body is not a MessagePack hub invocation"
                .. " ([1, headers, invocationId, target, arguments])")
        end
        if t[3] ~= nil and type(t[3]) ~= "string" then
            return fail(400, "EINVAL", "the invocationId is not a string")
        end
        local n = 0
        for k in pairs(t[5]) do if type(k) == "number" and k > n then n = k end end
        inv = { invocation_id = t[3], target = t[4], arguments = nulls(t[5], n) }
    end
    if type(inv.target) ~= "string" or lower(inv.target) ~= lower(ev.event) then
        return fail(400, "EINVAL", "the invocation's target '" .. tostring(inv.target)
            .. "' is not the event '" .. ev.event .. "'")
    end
    ev.invocation = inv
    return ev
end

-- ===== completions: the framed hub message the invoking client reads =====

local function varint(n)
    local out = {}
    repeat
        local b = n % 128
        n = floor(n / 128)
        out[#out + 1] = char(n > 0 and b + 128 or b)
    until n == 0
    return concat(out)
end
_M._varint = varint

local function need_invocation(ev, what)
    if type(ev) ~= "table" or type(ev.invocation) ~= "table" then
        error("signalr.upstream." .. what .. ": expected an invocation event from upstream.parse", 3)
    end
    if ev.invocation.invocation_id == nil then
        error("signalr.upstream." .. what .. ": this invocation expects no result"
            .. " (it has no invocationId): answer 200 with no body", 3)
    end
end

-- MessagePack of a value (null and nil -> nil), for the completion's result.
local function pack_value(m, v)
    if v == NULL then return "\192" end
    return m.pack(v)
end

local function build(ev, kind, value)
    local id = ev.invocation.invocation_id
    if ev.protocol == "json" then
        local t = { type = 3, invocationId = id }
        if kind == "error" then t.error = value elseif kind == "result" then t.result = value end
        local ok, text = pcall(cjson.encode, t)
        if not ok then return nil, "the result cannot be sent as JSON: " .. tostring(text) end
        return text .. "\30", JSON
    end
    local m, why = msgpack()
    if not m then return nil, why end
    -- [3, headers {}, invocationId, resultKind (1 error, 2 void, 3 result), value?]
    local parts = { kind == "void" and "\148" or "\149", "\3", "\128", m.pack(id) }
    if kind == "error" then
        parts[#parts + 1] = "\1"
        parts[#parts + 1] = m.pack(value)
    elseif kind == "void" then
        parts[#parts + 1] = "\2"
    else
        parts[#parts + 1] = "\3"
        local ok, packed = pcall(pack_value, m, value)
        if not ok then return nil, "the result cannot be sent as MessagePack: " .. tostring(packed) end
        parts[#parts + 1] = packed
    end
    local msg = concat(parts)
    return varint(#msg) .. msg, MSGPACK
end

--- The reply body and content type for an invocation that expects a
-- result: a Completion carrying `result` (nil: a void completion), framed
-- for the client's protocol.
-- @treturn string body
-- @treturn string content type
function _M.completion(ev, result)
    need_invocation(ev, "completion")
    local body, ctype = build(ev, result == nil and "void" or "result", result)
    if not body then error("signalr.upstream.completion: " .. ctype, 2) end
    return body, ctype
end

--- The reply for an invocation whose handler failed: a Completion with
-- `error` = message, which the client's invoke() rejects with.
function _M.completion_error(ev, message)
    need_invocation(ev, "completion_error")
    if type(message) ~= "string" then
        error("signalr.upstream.completion_error: message must be a string", 2)
    end
    return build(ev, "error", message)
end

-- ===== dispatch: an event to the handler table =====

local function check_spec(spec, what)
    if type(spec) ~= "table" then
        error("signalr.upstream." .. what .. ": expected a table { keys = ..., hubs = ... }", 3)
    end
    if spec.auth ~= nil and type(spec.auth) ~= "table" then
        error("signalr.upstream." .. what .. ": auth must be a table { issuer, audience,"
            .. " public_keys | jwks }", 3)
    end
    -- with auth (bearer tokens) the access keys are optional: resources
    -- with local auth disabled have none
    local keys = (spec.keys ~= nil or not spec.auth) and key_list(spec.keys, what) or nil
    if type(spec.hubs) ~= "table" then
        error("signalr.upstream." .. what .. ": hubs must be a table of hub name -> handlers", 3)
    end
    if spec.on_error ~= nil and type(spec.on_error) ~= "function" then
        error("signalr.upstream." .. what .. ": on_error must be a function", 3)
    end
    return keys, spec.auth and compile_auth(spec.auth, what, 4)
end

-- The signature (with keys) and the bearer token (with auth), from the
-- headers alone: the token's claims, true, or nil, message, details.
local function authenticate(headers, keys, auth)
    if keys then
        local ok, msg, d = verify(headers, keys)
        if not ok then return nil, msg, d end
    end
    if auth then return bearer(headers, auth) end
    return true
end

-- The order of the checks reads the least of what an unauthenticated
-- sender sends.  X-ASRS-Signature is an HMAC of the X-ASRS-Connection-Id
-- header (core.upstream_verify), not of the body, so it is checked first,
-- from those two headers alone: an unsigned or forged request is refused
-- with 401 before anything else of it is looked at, its body neither read
-- (handle) nor measured (dispatch), and it learns nothing of the other
-- checks (such as max_body).  Only then the body's size (413; handle
-- refuses a Content-Length over max_body before reading the body), then
-- its content type and contents (415, 400), then the handler (404).

-- dispatch after the signature was checked
local function answer(spec, headers, body, claims)
    local max = spec.max_body or _M.MAX_BODY
    if body ~= nil and #body > max then
        return 413, "", nil, "body over " .. max .. " bytes"
    end
    local ev, msg, d = _M.parse(headers, body)
    if not ev then return d.status, "", nil, msg end
    if type(claims) == "table" then ev.auth = claims end
    local hub = lookup(spec.hubs, ev.hub)
    local fn
    if hub then
        if lower(ev.category) == "connections" then
            fn = hub[lower(ev.event)]
        elseif type(hub.messages) == "table" then
            fn = lookup(hub.messages, ev.event)
        end
    end
    if type(fn) ~= "function" then
        return 404, "", nil, "no handler for hub '" .. ev.hub .. "', " .. ev.category .. "/" .. ev.event
    end
    local inv = ev.invocation
    local res
    if inv then
        res = { pcall(fn, ev, (table.unpack or unpack)(inv.arguments, 1, #inv.arguments)) }
    else
        res = { pcall(fn, ev) }
    end
    if not res[1] then
        local err = tostring(res[2])
        if spec.on_error then pcall(spec.on_error, ev, err) end
        if not inv then
            -- a connected handler that fails refuses the client (as the
            -- Functions extension answers); disconnected: nothing to refuse
            if lower(ev.event) == "connected" then return 403, "", nil, "the handler failed" end
            return 200, "", nil
        end
        if inv.invocation_id == nil then return 200, "", nil end
        -- the client's invoke() rejects with the error's text (as the
        -- Functions extension sends the exception's message), without
        -- Lua's "file:line:" prefix; hide_errors sends a fixed text
        local text = spec.hide_errors and "Method execution failed."
            or (err:gsub("^[^:\n]+:%d+: ", ""))
        local b, ct = build(ev, "error", text)
        return 200, b, ct
    end
    if inv and inv.invocation_id ~= nil then
        local b, ct = build(ev, res[2] == nil and "void" or "result", res[2])
        if not b then
            if spec.on_error then pcall(spec.on_error, ev, ct) end
            b, ct = build(ev, "error", "Method execution failed.")
        end
        return 200, b, ct
    end
    return 200, "", nil
end

--- Answer one upstream request (no I/O): the status, body and content
-- type to reply with, and for a refused request the reason.  Statuses,
-- in the order they are checked: 401 bad or missing signature or bearer
-- token (from the headers alone, first: nothing else of an unsigned
-- request is looked at), 413 a body over `max_body`, 415 content type, 400 missing headers
-- or a bad body, 404 no handler, 403 a connected handler that raised,
-- 200 otherwise (with the completion for an invocation that expects one:
-- the handler's value, or its error).
-- @tparam table spec `{ keys, auth, hubs, max_body, on_error, hide_errors }`:
--   `keys` the access keys (signatures; optional with `auth`), `auth` the
--   bearer token's settings (see `verify_bearer`; its claims are the
--   event's `auth`)
-- @tparam table headers the request's headers (names in any case)
-- @tparam string body the request's body
-- @treturn integer status
-- @treturn string body
-- @treturn string|nil content type
-- @treturn[opt] string why a request was refused (never a secret)
function _M.dispatch(spec, headers, body)
    local keys, auth = check_spec(spec, "dispatch")
    if type(headers) ~= "table" then
        error("signalr.upstream.dispatch: headers must be a table, got " .. type(headers), 2)
    end
    local ok, msg, d = authenticate(headers, keys, auth)
    if not ok then return d.status, "", nil, msg end
    return answer(spec, headers, body, ok)
end

--- The OpenResty glue: check the signature from the headers, then (only
-- for a signed request) read the body, `dispatch` it, answer.  Call it
-- from `content_by_lua_block`.  Handlers run in the request's light
-- thread, so they may call hub methods (over cosockets).
function _M.handle(spec)
    local keys, auth = check_spec(spec, "handle")
    local ngx = ngx
    if not spec.on_error and type(ngx) == "table" and ngx.log then
        -- a handler that raised: its error in nginx's log (the client
        -- gets an error completion or, for connected, a refusal)
        local copy = {}
        for k, v in pairs(spec) do copy[k] = v end
        copy.on_error = function(ev, err)
            ngx.log(ngx.ERR, "signalr.upstream: the ", ev.category, "/", ev.event,
                " handler of hub ", ev.hub, " failed: ", err)
        end
        spec = copy
    end
    if type(ngx) ~= "table" or not ngx.req then
        error("signalr.upstream.handle: needs nginx (use upstream.dispatch elsewhere)", 2)
    end
    local max = spec.max_body or _M.MAX_BODY
    local status, body, ctype, why
    local headers = ngx.req.get_headers(100)
    local len = tonumber(ngx.var.http_content_length or "")
    -- the signature first, from the headers (see dispatch): the body of
    -- an unsigned request is never read
    local ok, msg, d = authenticate(headers, keys, auth)
    if not ok then
        status, body, why = d.status, "", msg
        if d.code == "ETOKEN" then
            ngx.header["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        end
    elseif ngx.req.get_method() ~= "POST" then
        status, body, why = 405, "", "the service POSTs events"
    elseif len and len > max then
        status, body, why = 413, "", "body over " .. max .. " bytes"
    else
        ngx.req.read_body()
        local data = ngx.req.get_body_data()
        if not data then
            local file = ngx.req.get_body_file()
            if file then
                local f = io.open(file, "rb")
                data = f and f:read(max + 1)
                if f then f:close() end
            end
        end
        status, body, ctype, why = answer(spec, headers, data or "", ok)
    end
    if why then ngx.log(ngx.WARN, "signalr.upstream: ", status, ": ", why) end
    ngx.status = status
    if ctype then ngx.header.content_type = ctype end
    if body ~= "" then ngx.print(body) end
    return ngx.exit(status)
end

return _M
