--- The official swagger files, reduced to the rules the conformance specs
-- check, and written out as a Lua table (spec/conformance/contract.lua), so
-- that the specs need nothing from outside the repository.
--
--   lua5.4 spec/conformance/contract_gen.lua SWAGGER_DIR [OUT]
--
-- SWAGGER_DIR: the folder of the official files (*.json and SOURCE.txt,
-- the line naming where they come from); $SIGNALR_SWAGGER_DIR when not
-- given.  OUT: spec/conformance/contract.lua beside this script when not
-- given.
--
-- Required as a module (helpers.swagger, contract_spec) it returns:
--   extract(dir)    the contract of the folder's *.json files
--   render(c)       its text, the table file byte for byte
--   generate(dir)   render(extract(dir)), insisting on SOURCE.txt
--
-- What is carried: for every operation its method, path template,
-- operationId, parameters (resolved; name, place and every validation
-- keyword), request body schema, body media types and response codes; and
-- the schemas the bodies and parameters name ($ref), each under its $ref.
-- Prose (descriptions, summaries, examples), tags, vendor extensions and
-- what responses carry are left out: the header of the table lists the
-- keys that were.
local cjson = require("cjson").new()

local M = {}

-- validation keywords of a schema (JSON Schema as Swagger 2.0 and
-- OpenAPI 3 use it); the keys of `properties` are names, not keywords
local SCHEMA_KEYS = {}
for k in ([[$ref type format pattern minLength maxLength minimum maximum
    exclusiveMinimum exclusiveMaximum multipleOf enum const nullable readOnly
    writeOnly required minItems maxItems uniqueItems minProperties
    maxProperties default discriminator properties additionalProperties items
    allOf anyOf oneOf not collectionFormat]]):gmatch("%S+") do
    SCHEMA_KEYS[k] = true
end
-- a parameter: a schema (Swagger 2.0 spells it inline) plus these
local PARAM_KEYS = { name = true, ["in"] = true, schema = true, style = true,
    explode = true, allowEmptyValue = true, allowReserved = true }

local function read(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local s = f:read("*a")
    f:close()
    return s
end

-- follow a local JSON pointer ("#/definitions/X") inside a document
local function pointer(doc, ref)
    assert(ref:sub(1, 2) == "#/", "only local $refs are supported: " .. ref)
    local t = doc
    for part in ref:sub(3):gmatch("[^/]+") do
        part = part:gsub("~1", "/"):gsub("~0", "~")
        assert(type(t) == "table", "dangling $ref " .. ref)
        t = t[part]
    end
    assert(type(t) == "table", "dangling $ref " .. ref)
    return t
end

-- One file's reduction: schemas keep their keywords, names pass through;
-- every $ref met is queued so that its target is carried too, and every
-- key left out is counted.
local function reducer(doc, dropped)
    local refs, queue = {}, {}
    local schema
    local function keep(node, allowed, out)
        for k, v in pairs(node) do
            if not allowed[k] then
                dropped[k] = true
            elseif k == "$ref" then
                out[k] = v
                if refs[v] == nil then refs[v] = false; queue[#queue + 1] = v end
            elseif k == "properties" then
                out[k] = {}
                for name, s in pairs(v) do out[k][name] = schema(s) end
            elseif k == "items" or k == "additionalProperties" or k == "not"
                    or k == "schema" then
                out[k] = type(v) == "table" and schema(v) or v
            elseif k == "allOf" or k == "anyOf" or k == "oneOf" then
                out[k] = {}
                for i, s in ipairs(v) do out[k][i] = schema(s) end
            else
                out[k] = v
            end
        end
        return out
    end
    function schema(node) return keep(node, SCHEMA_KEYS, {}) end
    local param_keys = setmetatable({}, { __index = function(_, k)
        return PARAM_KEYS[k] or SCHEMA_KEYS[k] end })
    local function param(node)
        while node["$ref"] do node = pointer(doc, node["$ref"]) end
        return keep(node, param_keys, {})
    end
    local function close()
        while #queue > 0 do
            local ref = table.remove(queue, 1)
            refs[ref] = schema(pointer(doc, ref))
        end
        return refs
    end
    return schema, param, close
end

local METHODS = { get = true, put = true, post = true, delete = true,
    options = true, head = true, patch = true, trace = true }

-- one swagger file (decoded) as { file, version, refs, operations }
local OP_KEYS = { operationId = true, parameters = true, requestBody = true,
    consumes = true, responses = true }

local function reduce(name, doc, dropped, dropped_op)
    local schema, param, close = reducer(doc, dropped)
    local ops = {}
    for template, item in pairs(doc.paths or {}) do
        for method, op in pairs(item) do
            if METHODS[method] then
                for k in pairs(op) do if not OP_KEYS[k] then dropped_op[k] = true end end
                local o = { method = method:upper(), template = template,
                            id = op.operationId, params = {}, consumes = {}, responses = {} }
                local all = {}
                for _, p in ipairs(item.parameters or {}) do all[#all + 1] = param(p) end
                for _, p in ipairs(op.parameters or {}) do all[#all + 1] = param(p) end
                for _, p in ipairs(all) do
                    if p["in"] == "body" then
                        o.body = p.schema
                        o.body_required = p.required
                    else
                        o.params[#o.params + 1] = p
                    end
                end
                for _, m in ipairs(op.consumes or doc.consumes or {}) do o.consumes[#o.consumes + 1] = m end
                if op.requestBody then
                    local body = op.requestBody
                    while body["$ref"] do body = pointer(doc, body["$ref"]) end
                    local media = {}
                    for m in pairs(body.content or {}) do media[#media + 1] = m end
                    table.sort(media)
                    for _, m in ipairs(media) do
                        o.consumes[#o.consumes + 1] = m
                        o.body = o.body or schema(body.content[m].schema or {})
                    end
                    o.body_required = body.required
                end
                for code in pairs(op.responses or {}) do o.responses[#o.responses + 1] = code end
                table.sort(o.responses)
                ops[#ops + 1] = o
            end
        end
    end
    table.sort(ops, function(a, b)
        if a.template ~= b.template then return a.template < b.template end
        return a.method < b.method
    end)
    return { file = name, version = doc.info.version, refs = close(), operations = ops }
end

--- The contract of every *.json file of a folder:
-- { source = SOURCE.txt's line or nil, dropped = { keys left out },
--   files = { { file, version, refs, operations } } }
function M.extract(dir)
    local p = io.popen('ls "' .. dir .. '" 2>/dev/null')
    local names = {}
    for f in p:lines() do
        if f:match("%.json$") then names[#names + 1] = f end
    end
    p:close()
    assert(#names > 0, "no swagger files (*.json) in " .. dir)
    table.sort(names)
    local c, dropped, dropped_op = { files = {} }, {}, {}
    for _, name in ipairs(names) do
        local text = assert(read(dir .. "/" .. name))
        c.files[#c.files + 1] = reduce(name, cjson.decode(text), dropped, dropped_op)
    end
    local function sorted(set)
        local l = {}
        for k in pairs(set) do l[#l + 1] = k end
        table.sort(l)
        return l
    end
    c.dropped = { operation = sorted(dropped_op), schema = sorted(dropped) }
    local source = read(dir .. "/SOURCE.txt")
    c.source = source and source:match("^%s*(.-)%s*$") or nil
    return c
end

-- ===== rendering: one text for one contract, under any Lua =====

local function quote(s)
    return '"' .. s:gsub('[%c"\\]', function(ch)
        if ch == '"' or ch == "\\" then return "\\" .. ch end
        return string.format("\\%03d", ch:byte())
    end) .. '"'
end

local function number(n)
    if n == math.floor(n) and n > -2^53 and n < 2^53 then
        return string.format("%.0f", n)
    end
    return string.format("%.17g", n)
end

local function is_list(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    for i = 1, n do if t[i] == nil then return false end end
    return true
end

local function key(k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and not ({
        ["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1, ["elseif"] = 1,
        ["end"] = 1, ["false"] = 1, ["for"] = 1, ["function"] = 1, ["goto"] = 1,
        ["if"] = 1, ["in"] = 1, ["local"] = 1, ["nil"] = 1, ["not"] = 1,
        ["or"] = 1, ["repeat"] = 1, ["return"] = 1, ["then"] = 1, ["true"] = 1,
        ["until"] = 1, ["while"] = 1 })[k] then
        return k
    end
    return "[" .. (type(k) == "string" and quote(k) or number(k)) .. "]"
end

local WIDTH = 100

local function value(v, indent)
    local t = type(v)
    if t == "string" then return quote(v) end
    if t == "number" then return number(v) end
    if t == "boolean" then return tostring(v) end
    assert(t == "table", "cannot write a " .. t .. " into the table")
    local items = {}
    if is_list(v) then
        for i = 1, #v do items[i] = { nil, v[i] } end
    else
        local keys = {}
        for k in pairs(v) do
            assert(type(k) == "string", "mixed table")
            keys[#keys + 1] = k
        end
        -- plain values first, then tables: a block opens with what it is
        table.sort(keys, function(a, b)
            local ta, tb = type(v[a]) == "table", type(v[b]) == "table"
            if ta ~= tb then return tb end
            return a < b
        end)
        for i, k in ipairs(keys) do items[i] = { key(k) .. " = ", v[k] } end
    end
    if #items == 0 then return "{}" end
    local inner = indent .. "  "
    local parts, flat = {}, true
    for i, it in ipairs(items) do
        parts[i] = (it[1] or "") .. value(it[2], inner)
        if parts[i]:find("\n") then flat = false end
    end
    local one = "{ " .. table.concat(parts, ", ") .. " }"
    if flat and #indent + #one <= WIDTH then return one end
    return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. ",\n" .. indent .. "}"
end

--- The table file's text for a contract.
function M.render(c)
    local head = {
        "-- GENERATED by spec/conformance/contract_gen.lua: do not edit; regenerate",
        "-- from the official files instead:",
        "--   lua5.4 spec/conformance/contract_gen.lua SWAGGER_DIR",
        "-- The official Azure SignalR Service data-plane REST contract, reduced to",
        "-- the rules spec/conformance checks (through spec/helpers/swagger.lua).",
        "-- Source: " .. tostring(c.source),
    }
    for _, f in ipairs(c.files) do
        head[#head + 1] = "--   " .. f.file .. ": version " .. f.version .. ", "
            .. #f.operations .. " operations"
    end
    local function list(line, keys)
        for _, k in ipairs(keys) do
            if #line + #k + 1 > 78 then head[#head + 1] = line; line = "--  " end
            line = line .. " " .. k
        end
        head[#head + 1] = line
    end
    list("-- Operation keys not carried:", c.dropped.operation)
    list("-- Parameter and schema keys not carried:", c.dropped.schema)
    head[#head + 1] = "-- Of responses, only the status codes are carried."
    head[#head + 1] = "-- luacheck: no max line length"
    return table.concat(head, "\n") .. "\nreturn " .. value(c, "") .. "\n"
end

--- render(extract(dir)), for the official folder: SOURCE.txt must be there.
function M.generate(dir)
    local c = M.extract(dir)
    assert(c.source, "no SOURCE.txt in " .. dir .. ": the table must name where its facts come from")
    return M.render(c)
end

-- run as a script: write the table
if arg and arg[0] and arg[0]:match("contract_gen%.lua$") then
    local dir = arg[1] or os.getenv("SIGNALR_SWAGGER_DIR")
    if not dir or dir == "" then
        io.stderr:write("usage: lua5.4 ", arg[0], " SWAGGER_DIR [OUT]",
            " (or set SIGNALR_SWAGGER_DIR)\n")
        os.exit(2)
    end
    local out = arg[2] or (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/contract.lua"
    local text = M.generate(dir)
    local f = assert(io.open(out, "wb"))
    f:write(text)
    f:close()
    print("wrote " .. out)
end

return M
