--- OData filters for :execute, as the service documents them for
-- connection selection (the Web PubSub grammar; SignalR publishes none of
-- its own): identifiers `userId`, `connectionId` (strings) and `groups`
-- (a collection), case-insensitive; `eq ne gt ge lt le`, `and or not`,
-- `in` (a list or `groups`), parentheses; `tolower toupper trim
-- startswith endswith contains indexof length substring concat`;
-- literals 'text' ('' escapes a quote), integers, true, false, null.
-- compile(text) returns a predicate over { id, user, groups } or nil, why.
local tonumber, type, pairs, lower, upper = tonumber, type, pairs, string.lower, string.upper

local _M = {}

local function lex(s)
    local toks, i = {}, 1
    while i <= #s do
        local c = s:sub(i, i)
        if c:match("%s") then
            i = i + 1
        elseif c == "'" then
            local j, buf = i + 1, {}
            while true do
                local q = s:find("'", j, true)
                if not q then return nil, "unterminated string at " .. i end
                buf[#buf + 1] = s:sub(j, q - 1)
                if s:sub(q + 1, q + 1) == "'" then
                    buf[#buf + 1] = "'"
                    j = q + 2
                else
                    j = q + 1
                    break
                end
            end
            toks[#toks + 1] = { "str", table.concat(buf) }
            i = j
        elseif c:match("[%(%),]") then
            toks[#toks + 1] = { c }
            i = i + 1
        elseif c:match("[%d%-]") then
            local n = s:match("^%-?%d+", i)
            if not n then return nil, "bad number at " .. i end
            toks[#toks + 1] = { "num", tonumber(n) }
            i = i + #n
        elseif c:match("[%a_]") then
            local w = s:match("^[%w_]+", i)
            toks[#toks + 1] = { "word", w }
            i = i + #w
        else
            return nil, "unexpected '" .. c .. "' at " .. i
        end
    end
    return toks
end

local FUNCS = {
    tolower = function(a) return type(a) == "string" and lower(a) or nil end,
    toupper = function(a) return type(a) == "string" and upper(a) or nil end,
    trim = function(a) return type(a) == "string" and a:match("^%s*(.-)%s*$") or nil end,
    startswith = function(a, b) return type(a) == "string" and type(b) == "string" and a:sub(1, #b) == b end,
    endswith = function(a, b) return type(a) == "string" and type(b) == "string" and (b == "" or a:sub(-#b) == b) end,
    contains = function(a, b) return type(a) == "string" and type(b) == "string" and a:find(b, 1, true) ~= nil end,
    indexof = function(a, b)
        if type(a) ~= "string" or type(b) ~= "string" then return nil end
        local p = a:find(b, 1, true)
        return p and p - 1 or -1
    end,
    length = function(a)
        if type(a) == "string" then return #a end
        if type(a) == "table" then local n = 0 for _ in pairs(a) do n = n + 1 end return n end
    end,
    substring = function(a, i, n)
        if type(a) ~= "string" or type(i) ~= "number" then return nil end
        return a:sub(i + 1, n and (i + n) or -1)
    end,
    concat = function(a, b) return type(a) == "string" and type(b) == "string" and a .. b or nil end,
}

local CMP = {
    eq = function(a, b) return a == b end, ne = function(a, b) return a ~= b end,
    gt = function(a, b) return a ~= nil and b ~= nil and type(a) == type(b) and a > b end,
    ge = function(a, b) return a ~= nil and b ~= nil and type(a) == type(b) and a >= b end,
    lt = function(a, b) return a ~= nil and b ~= nil and type(a) == type(b) and a < b end,
    le = function(a, b) return a ~= nil and b ~= nil and type(a) == type(b) and a <= b end,
}

--- Compile a filter; returns fn(conn) -> boolean, or nil and the reason.
function _M.compile(text)
    local toks, why = lex(text)
    if not toks then return nil, why end
    local pos = 1
    local function peek() return toks[pos] end
    local function word(w) local t = toks[pos] return t and t[1] == "word" and lower(t[2]) == w end
    local function take(kind)
        local t = toks[pos]
        if not t or t[1] ~= kind then
            error({ "expected " .. kind .. (t and (" near token " .. pos) or " at the end") }, 0)
        end
        pos = pos + 1
        return t
    end
    local expr
    local function primary()
        local t = peek()
        if not t then error({ "unexpected end" }, 0) end
        if t[1] == "(" then
            pos = pos + 1
            local e = expr()
            take(")")
            return e
        elseif t[1] == "str" or t[1] == "num" then
            pos = pos + 1
            local v = t[2]
            return function() return v end
        elseif t[1] == "word" then
            pos = pos + 1
            local w = lower(t[2])
            if w == "true" or w == "false" then
                local v = w == "true"
                return function() return v end
            elseif w == "null" then return function() return nil end
            elseif w == "userid" then return function(c) return c.user end
            elseif w == "connectionid" then return function(c) return c.id end
            elseif w == "groups" then return function(c) return c.groups end
            elseif FUNCS[w] and peek() and peek()[1] == "(" then
                pos = pos + 1
                local args = {}
                if not (peek() and peek()[1] == ")") then
                    repeat
                        args[#args + 1] = expr()
                        local more = peek() and peek()[1] == ","
                        if more then pos = pos + 1 end
                    until not more
                end
                take(")")
                local f = FUNCS[w]
                return function(c)
                    local v = {}
                    for i, a in ipairs(args) do v[i] = a(c) end
                    return f(v[1], v[2], v[3])
                end
            end
            error({ "unknown identifier '" .. t[2] .. "'" }, 0)
        end
        error({ "unexpected token " .. pos }, 0)
    end
    local function comparison()
        if word("not") then
            pos = pos + 1
            local e = comparison()
            return function(c) return not e(c) end
        end
        local left = primary()
        local t = peek()
        local op = t and t[1] == "word" and lower(t[2])
        if op and CMP[op] then
            pos = pos + 1
            local right, cmp = primary(), CMP[op]
            return function(c) return cmp(left(c), right(c)) end
        elseif op == "in" then
            pos = pos + 1
            local set
            if peek() and peek()[1] == "(" then
                pos = pos + 1
                local items = {}
                repeat
                    items[#items + 1] = primary()
                    local more = peek() and peek()[1] == ","
                    if more then pos = pos + 1 end
                until not more
                take(")")
                set = function(c) local r = {} for _, f in ipairs(items) do r[f(c)] = true end return r end
            else
                set = primary()
            end
            return function(c)
                local v, s = left(c), set(c)
                return v ~= nil and type(s) == "table" and s[v] == true
            end
        end
        return left
    end
    local function conj()
        local e = comparison()
        while word("and") do
            pos = pos + 1
            local a, b = e, comparison()
            e = function(c) return a(c) == true and b(c) == true end
        end
        return e
    end
    expr = function()
        local e = conj()
        while word("or") do
            pos = pos + 1
            local a, b = e, conj()
            e = function(c) return a(c) == true or b(c) == true end
        end
        return e
    end
    local ok, f = pcall(function()
        local e = expr()
        if pos <= #toks then error({ "unexpected token " .. pos }, 0) end
        return e
    end)
    if not ok then return nil, type(f) == "table" and f[1] or tostring(f) end
    return function(conn) return f(conn) == true end
end

return _M
