--- signalr.core's exact JSON codec: core.json_encode, core.json_decode,
-- core.json_null, core.json_empty_array (binding/json.c, json_text.c).
local core = require "signalr.core"

local E, D, null = core.json_encode, core.json_decode, core.json_null
local INTEGERS = math.type ~= nil -- 5.3+: integers are a subtype
-- -0.0 made at run time (5.1 and LuaJIT merge the constants 0 and -0.0)
local ZERO = 0.0
local NEG_ZERO = -ZERO

-- deep equality (numbers by value: 1 == 1.0; -0.0 == 0 is checked apart)
local function same(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) ~= "table" then return a == b end
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end

local function fails(code, fragment, ok, msg, details)
    assert.is_nil(ok)
    assert.equal("string", type(msg))
    assert.truthy(msg:find(fragment, 1, true), msg)
    assert.same({ code = code }, details)
end

describe("signalr.core JSON", function()
    describe("json_encode()", function()
        describe("numbers", function()
            for _, c in ipairs {
                { "a small integer", 42, "42" },
                { "a negative integer", -7, "-7" },
                { "zero", 0, "0" },
                { "1.0 as an integer", 1.0, "1" },
                { "-0.0 with its sign", NEG_ZERO, "-0" },
                { "0.1 in its fewest digits", 0.1, "0.1" },
                { "0.1 + 0.2 in 17 digits", 0.1 + 0.2, "0.30000000000000004" },
                { "1/3 in 16 digits", 1 / 3, "0.3333333333333333" },
                { "1.5", 1.5, "1.5" },
                { "123456.789", 123456.789, "123456.789" },
                { "-1.5e-7", -1.5e-7, "-1.5e-07" },
                { "1e-5", 1e-5, "1e-05" },
                { "1e308", 1e308, "1e+308" },
                { "1e23 (not 9.9999999999999992e+22)", 1e23, "1e+23" },
                { "the largest double", 1.7976931348623157e308, "1.7976931348623157e+308" },
                { "the smallest normal double", 2.2250738585072014e-308, "2.2250738585072014e-308" },
                { "the smallest subnormal (15 digits that read back)", 5e-324, "4.94065645841247e-324" },
                { "2^53 as an integer", 2 ^ 53, "9007199254740992" },
                { "2^53 + 2 as an integer", 2 ^ 53 + 2, "9007199254740994" },
                { "-2^53 as an integer", -2 ^ 53, "-9007199254740992" },
                { "2^63 (a double) with an exponent", 2 ^ 63, "9.223372036854776e+18" },
                { "-2^63 (a double) with an exponent", -2 ^ 63, "-9.223372036854776e+18" },
                { "1e15 + 0.5", 1e15 + 0.5, "1000000000000000.5" },
            } do
                it(c[1], function()
                    assert.equal(c[3], E(c[2]))
                    assert.equal(c[2], tonumber(E(c[2])))
                end)
            end

            if INTEGERS then
                it("prints every 64-bit integer exactly (5.3+)", function()
                    assert.equal("9007199254740993", E(9007199254740993))
                    assert.equal("-9223372036854775808", E(math.mininteger))
                    assert.equal("9223372036854775807", E(math.maxinteger))
                    assert.equal("[-9223372036854775808,9223372036854775807]",
                        E { math.mininteger, math.maxinteger })
                end)
            else
                it("prints the double a large integer literal became (5.1, LuaJIT)", function()
                    -- 9007199254740993 is not a double: the literal is 2^53
                    assert.equal("9007199254740992", E(9007199254740993))
                end)
            end

            for _, c in ipairs {
                { "NaN", 0 / 0, "NaN cannot be encoded" },
                { "infinity", math.huge, "inf cannot be encoded" },
                { "-infinity", -math.huge, "-inf cannot be encoded" },
            } do
                it("refuses " .. c[1], function()
                    fails("EINVAL", c[3], E(c[2]))
                    fails("EINVAL", c[3] .. " as JSON (at $[2])", E { 1, c[2] })
                end)
            end
        end)

        describe("strings", function()
            for _, c in ipairs {
                { "plain ASCII", "hello", '"hello"' },
                { "quotes and backslashes", 'a"b\\c', '"a\\"b\\\\c"' },
                { "'/' unescaped", "a/b", '"a/b"' },
                { "the short escapes", "\b\f\n\r\t", '"\\b\\f\\n\\r\\t"' },
                { "other control characters as \\u00XX", "\0\1\31", '"\\u0000\\u0001\\u001f"' },
                { "DEL as it is", "\127", '"\127"' },
                { "UTF-8 as it is", "\195\169\226\130\172\240\159\152\128", '"\195\169\226\130\172\240\159\152\128"' },
                { "U+2028 as it is", "\226\128\168", '"\226\128\168"' },
                { "U+10FFFF", "\244\143\191\191", '"\244\143\191\191"' },
                { "the empty string", "", '""' },
            } do
                it("writes " .. c[1], function() assert.equal(c[3], E(c[2])) end)
            end

            for _, c in ipairs {
                { "a lone byte 0xFF", "\255", 1 },
                { "an overlong '/'", "ab\192\175", 3 },
                { "a UTF-8 surrogate", "\237\160\128", 1 },
                { "a code point past U+10FFFF", "\244\144\128\128", 1 },
                { "a truncated sequence", "x\226\130", 2 },
                { "a lone continuation byte", "\128", 1 },
            } do
                it("refuses " .. c[1], function()
                    fails("EINVAL", "a string that is not valid UTF-8 (byte " .. c[3]
                        .. ") cannot be encoded as JSON", E(c[2]))
                    fails("EINVAL", "not valid UTF-8", E { k = { c[2] } })
                end)
            end

            it("refuses a key that is not valid UTF-8", function()
                fails("EINVAL", "a key that is not valid UTF-8 (byte 1) cannot be encoded as JSON (at $[?])",
                    E { ["\255"] = 1 })
            end)
        end)

        describe("tables", function()
            it("writes a sequence as an array", function()
                assert.equal('[1,"a",true,false]', E { 1, "a", true, false })
            end)
            it("writes string keys as an object", function()
                assert.equal('{"a":1}', E { a = 1 })
                local t = D(E { a = 1, b = { c = "d" }, ["x y"] = 2 })
                assert.same({ a = 1, b = { c = "d" }, ["x y"] = 2 }, t)
            end)
            it("writes an empty table as {} (as lua-cjson does), nested too", function()
                assert.equal("{}", E {})
                assert.equal("[{},{}]", E { {}, {} })
            end)
            it("writes core.json_empty_array as []", function()
                assert.equal("[]", E(core.json_empty_array))
                assert.equal('{"list":[]}', E { list = core.json_empty_array })
            end)
            it("writes core.json_null and nil as null", function()
                assert.equal("null", E(null))
                assert.equal("null", E(nil))
                assert.equal("[1,null,3]", E { 1, null, 3 })
                assert.equal('{"a":null}', E { a = null })
            end)
            it("is lua-cjson's null", function()
                local ok, cjson = pcall(require, "cjson")
                if not ok then return pending("lua-cjson is not installed") end
                assert.equal(cjson.null, null)
            end)
            it("writes a sequence built out of order", function()
                local t = {}
                for i = 40, 1, -1 do t[i] = i end
                t[100] = 1 t[100] = nil -- a hash part that once held a key
                local parts = {}
                for i = 1, 40 do parts[i] = tostring(i) end
                assert.equal("[" .. table.concat(parts, ",") .. "]", E(t))
            end)
            it("writes nested tables", function()
                assert.equal('[[[1]],{"a":[{"b":[]}]}]', E { { { 1 } }, { a = { { b = core.json_empty_array } } } })
            end)
            it("nests up to 1000 tables, or opts.max_depth", function()
                local deep = {}
                local t = deep
                for _ = 2, 1000 do t[1] = {} t = t[1] end
                assert.equal(string.rep("[", 999) .. "{}" .. string.rep("]", 999), E(deep))
                fails("EINVAL", "a table nested deeper than 1000 cannot be encoded as JSON (at $[1][1]",
                    E { deep })
                assert.equal("[[[]]]", E({ { core.json_empty_array } }, { max_depth = 2 }))
                fails("EINVAL", "a table nested deeper than 2 cannot be encoded as JSON (at $[1][1])",
                    E({ { {} } }, { max_depth = 2 }))
            end)
            it("refuses a cyclic table", function()
                local c = {}
                c.self = c
                fails("EINVAL", "a cyclic table cannot be encoded as JSON (at $.self.self", E(c))
                local a, b = {}, {}
                a[1], b[1] = b, a
                fails("EINVAL", "a cyclic table cannot be encoded", E { a })
            end)
            it("writes a table met twice that is no cycle", function()
                local shared = { 1 }
                assert.equal("[[1],[1]]", E { shared, shared })
            end)
            for _, c in ipairs {
                { "holes", { 1, nil, 3 }, "a table whose number keys are not 1..n (a sparse array" },
                { "a sparse array", { [1] = 1, [1000] = 2 }, "not 1..n" },
                { "key 0", { [0] = 1 }, "not 1..n" },
                { "a float key", { [1.5] = 1 }, "not 1..n" },
                { "mixed keys (sequence first)", { 1, 2, x = 3 }, "a table with both string and number keys" },
                { "mixed keys (string first)", { x = 1, [1] = 2 }, "a table with both string and number keys" },
                { "a boolean key", { [true] = 1 }, "a table with a boolean key" },
                { "a table key", { [{}] = 1 }, "a table with a table key" },
            } do
                it("refuses " .. c[1], function()
                    fails("EINVAL", c[3], E(c[2]))
                    fails("EINVAL", "(at $.arg)", E { arg = c[2] })
                end)
            end
        end)

        describe("other values", function()
            for _, c in ipairs {
                { "a function", print, "a function cannot be encoded as JSON (at $[1])" },
                { "a coroutine", coroutine.create(function() end), "a thread cannot be encoded as JSON (at $[1])" },
                { "a userdata", io.stdout, "a userdata cannot be encoded as JSON (at $[1])" },
            } do
                it("refuses " .. c[1], function() fails("EINVAL", c[3], E { c[2] }) end)
            end
            it("names the place of a bad value", function()
                fails("EINVAL", 'a function cannot be encoded as JSON (at $.a.b["c d"][2])',
                    E { a = { b = { ["c d"] = { 1, print } } } })
            end)
            it("writes booleans", function()
                assert.equal("true", E(true))
                assert.equal("false", E(false))
            end)
        end)

        it("raises on a missing value or bad options", function()
            assert.has_error(function() E() end)
            assert.has_error(function() E({}, { max_depth = 0 }) end)
            assert.has_error(function() E({}, { max_depth = "x" }) end)
            assert.has_error(function() E({}, 5) end)
        end)
    end)

    describe("json_decode()", function()
        it("reads scalars", function()
            assert.equal(true, D("true"))
            assert.equal(false, D(" false "))
            assert.equal(null, D("null"))
            assert.equal("a/b\n\"\\\1", D([["a\/b\n\"\\\u0001"]]))
            assert.equal(1.5, D("1.5"))
        end)
        it("reads integers as integers when they fit 64 bits", function()
            if INTEGERS then
                assert.equal("integer", math.type(D("42")))
                assert.equal(9007199254740993, D("9007199254740993"))
                assert.equal(math.maxinteger, D("9223372036854775807"))
                assert.equal(math.mininteger, D("-9223372036854775808"))
                assert.equal("float", math.type(D("9223372036854775808")))
                assert.equal(2 ^ 63, D("9223372036854775808"))
                assert.equal("float", math.type(D("1.0")))
                assert.equal("float", math.type(D("1e2")))
            else
                -- 5.1, LuaJIT: doubles, the nearest one to the literal
                assert.equal(2 ^ 53, D("9007199254740993"))
                assert.equal(2 ^ 63, D("9223372036854775807"))
                assert.equal(-2 ^ 63, D("-9223372036854775808"))
            end
            assert.equal(100, D("1e2"))
        end)
        it("reads -0 as the double -0.0", function()
            assert.equal(-math.huge, 1 / D("-0"))
            assert.equal(-math.huge, 1 / D("-0.0"))
            assert.equal(math.huge, 1 / D("0"))
        end)
        it("reads doubles exactly", function()
            for _, s in ipairs { "0.1", "0.30000000000000004", "1e308", "5e-324", "2.2250738585072014e-308",
                                 "1.7976931348623157e308", "123456789012345678901234567890", "-1.5E-7",
                                 "0.000001234", "3.141592653589793238462643383279", "1e-400" } do
                assert.equal(tonumber(s), D(s), s)
            end
        end)
        it("reads arrays, objects and null", function()
            local v = D(' {"a": [1, 2.5, null, "x"], "b": {"c": {}}, "d": []} ')
            assert.same({ a = { 1, 2.5, null, "x" }, b = { c = {} }, d = {} }, v)
            assert.equal(4, #v.a)
            assert.equal(null, v.a[3])
        end)
        it("keeps the last of duplicate keys", function()
            assert.same({ a = 2 }, D('{"a":1,"a":2}'))
        end)
        it("reads escapes, surrogate pairs and UTF-8", function()
            assert.equal("\195\169\240\159\152\128\226\130\172",
                D([["\u00e9\ud83d\ude00€"]]))
            assert.equal("\0", D([["\u0000"]]))
            assert.equal("\240\144\128\128", D([["\uD800\uDC00"]]))
        end)
        it("nests up to 1000 levels, or opts.max_depth", function()
            assert.equal(1000, #E(D(string.rep("[", 500) .. string.rep("]", 500))))
            assert.truthy(D(string.rep("[", 1000) .. string.rep("]", 1000)))
            fails("EINVAL", "nested deeper than 1000 at byte 1001",
                D(string.rep("[", 1001) .. string.rep("]", 1001)))
            fails("EINVAL", "nested deeper than 2 at byte 3", D("[[[]]]", { max_depth = 2 }))
        end)
        for _, c in ipairs {
            { "an unclosed array", "[1,2", "expected ',' or ']', found the end of the text at byte 5" },
            { "a missing colon", '{"a" 1}', "expected ':', found '1' at byte 6" },
            { "the empty text", "", "expected a value, found the end of the text at byte 1" },
            { "white space only", "  ", "expected a value, found the end of the text at byte 3" },
            { "text after the value", "[1] x", "expected the end of the text, found 'x' at byte 5" },
            { "a lone high surrogate", [["\ud800"]], "lone surrogate in a \\u escape at byte 2" },
            { "a lone low surrogate", [["\udc00"]], "lone surrogate in a \\u escape at byte 2" },
            { "a high surrogate and no low one", [["\ud800\u0041"]], "lone surrogate in a \\u escape at byte 2" },
            { "a number past the largest double", "-1e400", "number out of range at byte 1" },
            { "invalid UTF-8", '"\255"', "invalid UTF-8 in a string at byte 2" },
            { "an overlong form", '"\192\175"', "invalid UTF-8 in a string at byte 2" },
            { "a leading zero", "01", "expected the end of the text, found '1' at byte 2" },
            { "a trailing comma in an array", "[1,]", "expected a value, found ']' at byte 4" },
            { "a trailing comma in an object", '{"a":1,}', "expected a string key, found '}' at byte 8" },
            { "a number key", "{1:2}", "expected a string key, found '1' at byte 2" },
            { "NaN", "NaN", "expected a value, found 'N' at byte 1" },
            { "a leading '+'", "+1", "expected a value, found '+' at byte 1" },
            { "a cut literal", "tru", "invalid literal at byte 1" },
            { "a raw line break in a string", '"a\nb"', "control character in a string at byte 3" },
            { "an unknown escape", [["\x"]], "invalid escape at byte 2" },
            { "a short \\u escape", [["\u12"]], "invalid \\u escape at byte 2" },
            { "a lone minus", "-", "invalid number at byte 1" },
            { "a point without digits", "1.", "invalid number at byte 1" },
            { "an exponent without digits", "1e", "invalid number at byte 1" },
            { "an unterminated string", '"abc', "unterminated string at byte 1" },
            { "a byte order mark", "\239\187\191[]", "expected a value, found byte 0xef at byte 1" },
            { "a missing comma", '{"a":1 "b":2}', "expected ',' or '}', found '\"' at byte 8" },
        } do
            it("refuses " .. c[1] .. " with its place", function()
                local ok, msg, details = D(c[2])
                assert.is_nil(ok)
                assert.equal(c[3], msg)
                assert.same({ code = "EINVAL" }, details)
            end)
        end
        it("raises on a text that is not a string", function()
            assert.has_error(function() D() end)
            assert.has_error(function() D({}) end)
            assert.has_error(function() D("1", { max_depth = 10001 }) end)
        end)
    end)

    describe("round trips", function()
        -- a random number generator of our own: the same values everywhere
        local seed = 12345
        local function rnd(n) -- 1..n
            seed = (seed * 1103515245 + 12345) % 2147483648
            return seed % n + 1
        end
        local CHARS = { "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\0", "\31", "\127",
                        "\195\169", "\226\130\172", "\240\159\152\128", "\226\128\168", "{", "]" }
        local function rstring()
            local t = {}
            for i = 1, rnd(12) - 1 do t[i] = CHARS[rnd(#CHARS)] end
            return table.concat(t)
        end
        local function rnumber()
            local k = rnd(8)
            if k == 1 then return rnd(2000) - 1000 end
            if k == 2 then return (rnd(2 ^ 30) - 2 ^ 29) * 2 ^ 23 + rnd(2 ^ 23) end -- near 2^53
            if k == 3 then return (rnd(1000000) - 500000) / 1000 end
            if k == 4 then return (rnd(2 ^ 30) / 2 ^ 30) * 10 ^ (rnd(600) - 300) end
            if k == 5 then return 1 / rnd(1000) end
            if k == 6 and INTEGERS then -- any 64-bit integer
                local hi, lo = math.tointeger(rnd(2 ^ 31) - 2 ^ 30 - 1), math.tointeger(rnd(2 ^ 31))
                return hi * 8589934592 + lo
            end
            if k == 7 and INTEGERS then return ({ math.mininteger, math.maxinteger })[rnd(2)] end
            return (rnd(2 ^ 31) * 2 ^ 22 + rnd(2 ^ 22)) * 2 ^ (rnd(2000) - 1000)
        end
        local value
        local function rtable(depth)
            local t, n = {}, rnd(5) - 1
            if rnd(2) == 1 then
                for i = 1, n do t[i] = value(depth + 1) end
            else
                for _ = 1, n do t[rstring()] = value(depth + 1) end
            end
            return t
        end
        value = function(depth)
            local k = rnd(depth > 4 and 5 or 7)
            if k == 1 then return null end
            if k == 2 then return rnd(2) == 1 end
            if k == 3 then return rnumber() end
            if k <= 5 then return rstring() end
            return rtable(depth)
        end

        it("json_decode(json_encode(v)) equals v for 3000 random values", function()
            for i = 1, 3000 do
                local v = value(0)
                local text = assert(E(v))
                local back = D(text)
                if not same(v, back) then
                    error("round trip " .. i .. " changed the value: " .. text .. " -> " .. tostring(E(back)))
                end
                if type(v) ~= "table" then assert.equal(text, E(back)) end
            end
        end)

        it("json_encode(json_decode(t)) == t for canonical texts", function()
            for _, t in ipairs { "[1,-0,0.1,1e+300,4.94065645841247e-324,true,false,null]",
                                 '{"a":[{"b":"\\u0000\\n\\\\\\"/"}]}', "[[],{}]", '"\240\159\152\128"' } do
                local v = D(t)
                local again = E(v)
                assert.same(v, D(again))
            end
            assert.equal("[1,-0,0.1,1e+300,4.94065645841247e-324,true,false,null]",
                E(D("[1,-0,0.1,1e+300,4.94065645841247e-324,true,false,null]")))
        end)

        it("writes what lua-cjson reads back the same", function()
            local ok, cjson = pcall(require, "cjson")
            if not ok then return pending("lua-cjson is not installed") end
            for _ = 1, 500 do
                local v = { rstring(), rnd(1000) - 500, (rnd(1000000) - 500000) / 1000,
                            { x = rstring(), y = { true, false, null } } }
                assert.is_true(same(v, cjson.decode(E(v))))
            end
        end)

        it("gives a call from a finalizer during another call a buffer of its own", function()
            local seen = {}
            local function finalizer() seen[#seen + 1] = E { "from __gc", 1.5, { x = "y" } } end
            local function garbage()
                if newproxy then -- 5.1, LuaJIT: __gc on userdata only
                    local p = newproxy(true)
                    getmetatable(p).__gc = finalizer
                else
                    setmetatable({}, { __gc = finalizer })
                end
            end
            local parts = {}
            for i = 1, 3000 do parts[i] = '{"k' .. i .. '":"\\u00e9 ' .. i .. '"}' end
            local text = "[" .. table.concat(parts, ",") .. "]"
            for _ = 1, 20 do
                for _ = 1, 200 do garbage() end
                local v = assert(D(text))
                assert.equal(3000, #v)
                assert.equal("\195\169 7", v[7].k7)
            end
            collectgarbage()
            assert.truthy(#seen > 0)
            for _, t in ipairs(seen) do assert.equal('["from __gc",1.5,{"x":"y"}]', t) end
        end)

        it("works after the module is loaded again", function()
            package.loaded["signalr.core"] = nil
            local again = require "signalr.core"
            assert.equal('[1,{"a":"b"}]', again.json_encode { 1, { a = "b" } })
            assert.same({ 1, { a = "\195\169" } }, again.json_decode('[1,{"a":"\\u00e9"}]'))
            assert.equal('[1,{"a":"b"}]', E { 1, { a = "b" } })
        end)

        it("reads numbers whatever the C locale's decimal point", function()
            local old = os.setlocale(nil, "numeric")
            local loc
            for _, l in ipairs { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "ru_RU.UTF-8" } do
                if os.setlocale(l, "numeric") then loc = l break end
            end
            if not loc then
                -- none installed: make de_DE with localedef (Debian's
                -- locales package, which make test installs) into a
                -- folder of its own and run the checks in a child whose
                -- LOCPATH names it
                local dir = os.tmpname()
                os.remove(dir)
                assert(os.execute("mkdir -p " .. dir .. " && localedef -i de_DE -f UTF-8 "
                    .. dir .. "/de_DE.UTF-8 >/dev/null 2>&1 || test -d " .. dir .. "/de_DE.UTF-8"),
                    "localedef could not make de_DE.UTF-8 (install Debian's locales package)")
                local lua = type(jit) == "table" and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
                local code = [[
                    local core = require "signalr.core"
                    assert(os.setlocale("de_DE.UTF-8", "numeric"), "no de_DE")
                    assert(os.setlocale(nil, "numeric") == "de_DE.UTF-8", "the locale did not stick")
                    assert(core.json_encode(1.5) == "1.5")
                    assert(core.json_encode(0.1 + 0.2) == "0.30000000000000004")
                    assert(core.json_decode("1.5") == 1.5)
                    assert(core.json_decode("0.30000000000000004") == 0.1 + 0.2)
                    assert(core.json_decode("1.2345678901234567890123") == 1.2345678901234568)
                    print("ok")]]
                -- (under make asan, glibc's own locale loading leaks a few
                -- bytes that LeakSanitizer would report from the child)
                local p = io.popen("ASAN_OPTIONS=detect_leaks=0 LOCPATH=" .. dir .. " " .. lua .. " -e '"
                    .. code .. "' 2>&1")
                local out = p:read("*a")
                p:close()
                os.execute("rm -rf " .. dir)
                assert.equal("ok\n", out)
                return
            end
            local ok, err = pcall(function()
                assert.equal("1.5", E(1.5))
                assert.equal("0.30000000000000004", E(0.1 + 0.2))
                assert.equal(1.5, D("1.5"))
                assert.equal(0.1 + 0.2, D("0.30000000000000004"))
                assert.equal(1.2345678901234568, D("1.2345678901234567890123"))
            end)
            os.setlocale(old, "numeric")
            assert(ok, err)
        end)
    end)
end)
