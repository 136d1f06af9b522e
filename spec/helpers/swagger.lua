--- The official data-plane REST contract as a request checker: load the
-- committed contract (spec/conformance/contract.lua, generated from the
-- official swagger files by spec/conformance/contract_gen.lua) and any
-- folder of swagger files (Swagger 2.0 or OpenAPI 3, reduced the same way),
-- then judge a request as the emulator recorded it (method, path with
-- query, headers, body, status) against the operation it matches.  Adding
-- a file adds coverage: nothing here names an operation.
--
-- Patterns are JSON Schema patterns, so ECMA-262 regular expressions: they
-- run on PCRE2 (lua-rex-pcre2) after '.' and '\s' are spelled out the ECMA
-- way, with '$' matching only at the end.  Lengths count characters.
-- Property names in bodies match without regard to case (v1.json spells
-- them "Target"/"Arguments"; the service reads either).
local cjson = require("cjson").new()
local rex = require "rex_pcre2"
local core = require "signalr.core"

local M = {}

local FLAGS = rex.flags()
local ECMA_DOT = "[^\\n\\r\\x{2028}\\x{2029}]"
local ECMA_SPACE = "[\\t\\n\\v\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    .. "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}]"

-- Spell out '.' and '\s' outside character classes.
local function ecma(pattern)
    local out, i, in_class = {}, 1, false
    while i <= #pattern do
        local c = pattern:sub(i, i)
        if c == "\\" then
            local n = pattern:sub(i + 1, i + 1)
            out[#out + 1] = (n == "s" and not in_class) and ECMA_SPACE or (c .. n)
            i = i + 2
        else
            if c == "[" then in_class = true
            elseif c == "]" then in_class = false end
            out[#out + 1] = (c == "." and not in_class) and ECMA_DOT or c
            i = i + 1
        end
    end
    return table.concat(out)
end

local compiled = {}
local function matches(pattern, s)
    local r = compiled[pattern]
    if not r then
        r = rex.new(ecma(pattern), FLAGS.UTF + FLAGS.DOLLAR_ENDONLY)
        compiled[pattern] = r
    end
    local ok, found = pcall(r.find, r, s)
    return ok and found ~= nil
end

local function utf8_len(s)
    local n = 0
    for _ in s:gmatch("[^\128-\191]") do n = n + 1 end
    return n
end

-- A parameter's schema, in either dialect.
local function schema_of(p)
    return p.schema or p
end

--- Check a string value against a parameter's rules; nil or the reason.
function M.check_string(p, v)
    local s = schema_of(p)
    if s.type == "integer" then
        local n = tonumber(v)
        if not v:match("^%-?%d+$") or not n then return "not an integer: " .. v end
        if s.minimum and n < s.minimum then return "below minimum " .. s.minimum end
        if s.maximum and n > s.maximum then return "above maximum " .. s.maximum end
        if s.format == "int32" and (n > 2147483647 or n < -2147483648) then
            return "not an int32"
        end
        return nil
    end
    if s.type == "boolean" then
        if v ~= "true" and v ~= "false" then return "not a boolean" end
        return nil
    end
    local len = utf8_len(v)
    if s.minLength and len < s.minLength then return "shorter than " .. s.minLength end
    if s.maxLength and len > s.maxLength then return "longer than " .. s.maxLength end
    if s.pattern and not matches(s.pattern, v) then
        return "does not match " .. s.pattern
    end
    if s.enum then
        for _, e in ipairs(s.enum) do if e == v then return nil end end
        return "not one of the enum values"
    end
    return nil
end

-- ===== loading =====

-- Follow $refs through the schemas the contract carries (keyed by $ref).
local function resolve(doc, node)
    while type(node) == "table" and node["$ref"] do
        local ref = node["$ref"]
        node = doc.refs[ref]
        assert(node, "the contract carries no schema for $ref " .. ref)
    end
    return node
end

--- Load each source given: the committed contract table (a .lua file, as
-- written by spec/conformance/contract_gen.lua), or a folder of swagger
-- files (reduced the same way on the spot, e.g. spec/conformance/sheets).
-- Returns the list of operations:
-- { file, version, method, template, id, regex, names,
--   params = { path = { name = p }, query = { name = p } },
--   body = schema | nil, consumes = { media = true }, responses = { code = true },
--   doc = { refs = { ["$ref"] = schema } } }
function M.load(...)
    local gen = require "conformance.contract_gen"
    local ops = {}
    for _, src in ipairs { ... } do
        local contract
        if src:match("%.lua$") then
            contract = assert(dofile(src), src .. " returns no contract")
        else
            contract = gen.extract(src)
        end
        assert(#contract.files > 0, "no swagger files in " .. src)
        for _, f in ipairs(contract.files) do
            local doc = { refs = f.refs }
            for _, op in ipairs(f.operations) do
                local o = { file = f.file, version = f.version, method = op.method,
                            template = op.template, id = op.id,
                            params = { path = {}, query = {} }, consumes = {}, responses = {},
                            body = resolve(doc, op.body), body_required = op.body_required,
                            doc = doc }
                for _, prm in ipairs(op.params) do
                    if prm["in"] == "path" or prm["in"] == "query" then
                        o.params[prm["in"]][prm.name] = prm
                    end
                end
                for _, m in ipairs(op.consumes) do o.consumes[m] = true end
                for _, code in ipairs(op.responses) do o.responses[code] = true end
                -- the template as an anchored Lua pattern
                local rx = op.template:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
                o.names = {}
                rx = rx:gsub("{([^}]+)}", function(name)
                    o.names[#o.names + 1] = name
                    return "([^/]+)"
                end)
                o.regex = "^" .. rx .. "$"
                ops[#ops + 1] = o
            end
        end
    end
    return ops
end

-- ===== checking a request =====

local function parse_query(q)
    local out = {}
    for pair in (q or ""):gmatch("[^&]+") do
        local k, v = pair:match("^([^=]*)=?(.*)$")
        k, v = core.url_decode(k), core.url_decode(v)
        out[#out + 1] = { k, v }
    end
    return out
end

-- Validate a decoded JSON value against a schema; nil or the reason.
local function check_json(doc, schema, v, where)
    schema = resolve(doc, schema)
    if not schema or next(schema) == nil then return nil end
    if v == cjson.null then
        if schema.nullable then return nil end
        return where .. ": null"
    end
    local t = schema.type
    if t == "object" then
        if type(v) ~= "table" then return where .. ": not an object" end
        local props = {}
        for k, s in pairs(schema.properties or {}) do props[k:lower()] = { k, s } end
        for k, val in pairs(v) do
            local p = props[tostring(k):lower()]
            if not p then
                if schema.additionalProperties == false then
                    return where .. ": property '" .. tostring(k) .. "' is not allowed"
                end
            else
                local why = check_json(doc, p[2], val, where .. "." .. p[1])
                if why then return why end
            end
        end
        for _, r in ipairs(schema.required or {}) do
            local found = false
            for k in pairs(v) do if tostring(k):lower() == r:lower() then found = true end end
            if not found then return where .. ": '" .. r .. "' is required" end
        end
    elseif t == "array" then
        if type(v) ~= "table" then return where .. ": not an array" end
        -- only items that name a definition: v1.json spells .NET's
        -- `object` (any value) as an empty object schema for arguments
        if schema.items and schema.items["$ref"] then
            for i, item in ipairs(v) do
                local why = check_json(doc, schema.items, item, where .. "[" .. i .. "]")
                if why then return why end
            end
        end
    elseif t == "string" then
        if type(v) ~= "string" then return where .. ": not a string" end
        if schema.enum then
            local found = false
            for _, e in ipairs(schema.enum) do if e == v then found = true end end
            if not found then return where .. ": not one of the enum values" end
        end
        if schema.maxLength and utf8_len(v) > schema.maxLength then
            return where .. ": longer than " .. schema.maxLength
        end
        if schema.minLength and utf8_len(v) < schema.minLength then
            return where .. ": shorter than " .. schema.minLength
        end
    end
    return nil
end

--- The operations a request may match (same method, path template).
local function candidates(ops, method, path)
    local out = {}
    for _, o in ipairs(ops) do
        if o.method == method then
            local caps = { path:match(o.regex) }
            if caps[1] then out[#out + 1] = { o, caps } end
        end
    end
    return out
end

--- Judge one recorded request.  Returns the operation it conforms to, or
-- nil and a list of reasons (one per candidate operation).
function M.check(ops, rec)
    local path, query = rec.path:match("^([^?]*)%??(.*)$")
    local q = parse_query(query)
    local version
    for _, kv in ipairs(q) do if kv[1] == "api-version" then version = kv[2] end end
    local reasons = {}
    local cands = candidates(ops, rec.method, path)
    if #cands == 0 then
        return nil, { "no operation " .. rec.method .. " " .. path .. " in any swagger file" }
    end
    for _, c in ipairs(cands) do
        local o, caps = c[1], c[2]
        local why
        -- api-version: required where declared, equal to the file's version
        if o.params.query["api-version"] then
            if version ~= o.version then
                why = "api-version " .. tostring(version) .. " is not " .. o.version
            end
        elseif version then
            why = "api-version is not a parameter of " .. o.file
        end
        for i, name in ipairs(o.names) do
            if why then break end
            local v = core.url_decode(caps[i])
            local p = o.params.path[name]
            if not v then why = "path parameter " .. name .. " is badly escaped"
            elseif p then
                local w = M.check_string(p, v)
                if w then why = "path parameter " .. name .. " " .. w end
            end
            -- every byte outside RFC 3986 unreserved must be escaped
            if not why and caps[i]:find("[^%w%-%._~%%]") then
                why = "path parameter " .. name .. " is not percent-encoded: " .. caps[i]
            end
        end
        local seen = {}
        for _, kv in ipairs(q) do
            if why then break end
            local p = o.params.query[kv[1]]
            if not p then
                why = "query parameter '" .. kv[1] .. "' is not declared"
            else
                local s = schema_of(p)
                if seen[kv[1]] and not (s.type == "array" and
                        (p.collectionFormat == "multi" or p.explode ~= false)) then
                    why = "query parameter '" .. kv[1] .. "' repeated"
                end
                seen[kv[1]] = true
                if not why then
                    local w = M.check_string(s.type == "array" and (s.items or {}) or p, kv[2])
                    if w then why = "query parameter " .. kv[1] .. " " .. w end
                end
            end
        end
        for name, p in pairs(o.params.query) do
            if not why and p.required and not seen[name] then
                why = "required query parameter '" .. name .. "' is missing"
            end
        end
        local clen = tonumber(rec.headers["content-length"] or "0") or 0
        local ctype = rec.headers["content-type"]
        if not why and o.body then
            local media = ctype and ctype:match("^%s*([^;%s]+)")
            if not media or not o.consumes[media:lower()] then
                why = "content type " .. tostring(ctype) .. " is not consumed"
            elseif not rec.body then
                why = "no body recorded"
            else
                local ok, v = pcall(cjson.decode, rec.body)
                if not ok then why = "body is not JSON"
                else why = check_json(o.doc, o.body, v, "body") end
            end
        elseif not why and clen > 0 then
            why = "a body is sent where the operation takes none"
        end
        if not why and rec.status then
            local st = string.format("%d", rec.status)
            if not o.responses[st] and not (rec.status >= 300 and o.responses.default) then
                why = "the answer " .. st .. " is not a declared response"
            end
        end
        if not why then return o end
        reasons[#reasons + 1] = o.file .. " " .. (o.id or o.template) .. ": " .. why
    end
    return nil, reasons
end

--- The official contract the specs judge by: the committed table
-- spec/conformance/contract.lua, generated from the official swagger files
-- (spec/conformance/contract_spec.lua checks it against them when
-- SIGNALR_SWAGGER_DIR names their folder).  Nothing outside the
-- repository is read.
function M.contract(root)
    return root .. "/spec/conformance/contract.lua"
end
-- the former name, for callers that pass it to load()
M.dir = M.contract

return M
