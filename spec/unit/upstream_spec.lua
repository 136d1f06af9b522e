-- signalr.upstream on plain tables: signatures (the reference sheet's
-- examples, two keys, forged, missing), events in JSON and MessagePack,
-- completions framed for each protocol, dispatch's statuses, and what
-- handle reads of a request (never the body of an unsigned one).
local upstream = require "signalr.upstream"
local core = require "signalr.core"
local mp = (function()
    local ok, m = pcall(require, "MessagePack")
    if ok then return m end
    return dofile("/usr/share/lua/5.3/MessagePack.lua")
end)()

local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
local KEY2 = "a-secondary-key-for-rotation-0123456789abcd"

local function headers(over)
    local h = {
        ["X-ASRS-Connection-Id"] = "c1", ["X-ASRS-Hub"] = "chat",
        ["X-ASRS-Category"] = "messages", ["X-ASRS-Event"] = "send",
        ["X-ASRS-Signature"] = core.upstream_sign(KEY, "c1"),
        ["Content-Type"] = "application/json",
    }
    for k, v in pairs(over or {}) do
        if v == false then h[k] = nil else h[k] = v end
    end
    return h
end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x ", c:byte()) end)) end

describe("signalr.upstream", function()
    describe("verify()", function()
        it("accepts the service's signature, with either of two keys", function()
            assert.equal("sha256=DD527C793428B58B71B037644217FC6BB0164A08513C39F37AC6C2CAD55F9023",
                core.upstream_sign(KEY, "c1"))
            assert.is_true(upstream.verify(headers(), KEY))
            assert.is_true(upstream.verify(headers(), { KEY2, KEY }))
            -- the service signs with both keys, comma-separated
            local both = core.upstream_sign(KEY2, "c1") .. "," .. core.upstream_sign(KEY, "c1")
            assert.is_true(upstream.verify(headers { ["X-ASRS-Signature"] = both }, { KEY2 }))
            -- header names in any case (nginx lowercases them)
            local lowered = {}
            for k, v in pairs(headers()) do lowered[k:lower()] = v end
            assert.is_true(upstream.verify(lowered, KEY))
        end)

        it("refuses a forged, missing or malformed signature, or another connection id", function()
            local cases = {
                { headers { ["X-ASRS-Signature"] = false }, "no X%-ASRS%-Signature" },
                { headers { ["X-ASRS-Connection-Id"] = false }, "no X%-ASRS%-Connection%-Id" },
                { headers { ["X-ASRS-Signature"] = "sha256=" .. string.rep("0", 64) }, "does not match" },
                { headers { ["X-ASRS-Signature"] = "md5=abc" }, "malformed" },
                -- a signature replayed with another connection id
                { headers { ["X-ASRS-Connection-Id"] = "c2" }, "does not match" },
            }
            for _, c in ipairs(cases) do
                local ok, msg, d = upstream.verify(c[1], KEY)
                assert.is_nil(ok)
                assert.matches(c[2], msg)
                assert.equal("ESIGNATURE", d.code)
                assert.equal(401, d.status)
                assert.is_nil(msg:find(KEY, 1, true))
            end
            local ok = upstream.verify(headers(), "another-key")
            assert.is_nil(ok)
        end)

        it("raises on wrong argument types", function()
            assert.has_error(function() upstream.verify("x", KEY) end)
            assert.has_error(function() upstream.verify({}, {}) end,
                "signalr.upstream.verify: keys must be an access key or a list of them")
            assert.has_error(function() upstream.verify({}, { 1 }) end,
                "signalr.upstream.verify: keys[1] must be a non-empty string")
        end)
    end)

    describe("parse()", function()
        it("reads a JSON invocation, its user, claims and query", function()
            local ev = assert(upstream.parse(headers {
                ["X-ASRS-User-Id"] = "alice",
                ["X-ASRS-User-Claims"] = "nameid: alice, role: admin, role: other",
                ["X-ASRS-Client-Query"] = "?hub=chat&room=a%20b",
            }, '{"type":1,"invocationId":"0","target":"send","arguments":["hi",null,{"x":1}]}'))
            assert.equal("chat", ev.hub)
            assert.equal("messages", ev.category)
            assert.equal("send", ev.event)
            assert.equal("c1", ev.connection_id)
            assert.equal("alice", ev.user_id)
            assert.equal("json", ev.protocol)
            assert.same({ nameid = "alice", role = "admin" }, ev.claims)
            assert.equal("a b", ev.query.room)
            assert.equal("0", ev.invocation.invocation_id)
            assert.equal("send", ev.invocation.target)
            assert.equal(3, #ev.invocation.arguments)
            assert.equal("hi", ev.invocation.arguments[1])
            assert.equal(upstream.null, ev.invocation.arguments[2])
            assert.equal(1, ev.invocation.arguments[3].x)
        end)

        it("reads the sheet's MessagePack invocation (no length prefix)", function()
            local body = string.char(0x96, 0x01, 0x80, 0xa1, 0x30, 0xa9) .. "broadcast"
                .. string.char(0x91, 0xa2) .. "hi" .. string.char(0x90)
            local ev = assert(upstream.parse(headers { ["Content-Type"] = "application/x-msgpack",
                ["X-ASRS-Event"] = "broadcast" }, body))
            assert.equal("messagepack", ev.protocol)
            assert.equal("0", ev.invocation.invocation_id)
            assert.same({ "hi" }, ev.invocation.arguments)
            -- fire and forget: a nil invocation id
            body = string.char(0x95, 0x01, 0x80, 0xc0, 0xa9) .. "broadcast"
                .. string.char(0x92, 0xc0, 0x07)
            ev = assert(upstream.parse(headers { ["Content-Type"] = "application/x-msgpack",
                ["X-ASRS-Event"] = "broadcast" }, body))
            assert.is_nil(ev.invocation.invocation_id)
            assert.equal(2, #ev.invocation.arguments)
            assert.equal(upstream.null, ev.invocation.arguments[1])
            assert.equal(7, ev.invocation.arguments[2])
        end)

        it("reads connected and disconnected, case-insensitively", function()
            local ev = assert(upstream.parse(headers { ["X-ASRS-Category"] = "connections",
                ["X-ASRS-Event"] = "connected" }, '{"type":10}'))
            assert.is_nil(ev.invocation)
            ev = assert(upstream.parse(headers { ["X-ASRS-Category"] = "connections",
                ["X-ASRS-Event"] = "disconnected" }, '{"Type":11,"Error":"gone"}'))
            assert.equal("gone", ev.error)
        end)

        it("refuses what is not an upstream request, with the status to answer", function()
            local cases = {
                { headers { ["Content-Type"] = "text/plain" }, "{}", 415, "unsupported Content%-Type" },
                { headers { ["Content-Type"] = false }, "{}", 415, "unsupported Content%-Type" },
                { headers { ["X-ASRS-Hub"] = false }, "{}", 400, "missing header X%-ASRS%-Hub" },
                { headers { ["X-ASRS-Event"] = "" }, "{}", 400, "missing header X%-ASRS%-Event" },
                { headers(), '{"type":1,"target":"send","argu', 400, "not a JSON hub invocation" },
                { headers(), '{"type":1,"target":"other","arguments":[]}', 400, "is not the event" },
                { headers(), '{"type":1,"target":"send","arguments":5}', 400, "not a list" },
                { headers { ["Content-Type"] = "application/x-msgpack" }, "\150\1", 400,
                  "not a MessagePack hub invocation" },
                { headers { ["X-ASRS-Category"] = "other" }, "{}", 400, "unknown category" },
                { headers { ["X-ASRS-Category"] = "connections" }, "{}", 400, "unknown connections event" },
            }
            for i, c in ipairs(cases) do
                local ev, msg, d = upstream.parse(c[1], c[2])
                assert.is_nil(ev, "case " .. i)
                assert.equal(c[3], d.status, "case " .. i)
                assert.matches(c[4], msg, 1, false, "case " .. i)
            end
        end)
    end)

    describe("completion()", function()
        local function inv(protocol, id)
            return { protocol = protocol, invocation = { invocation_id = id, target = "t", arguments = {} } }
        end

        it("JSON: a Completion and the record separator", function()
            local body, ct = upstream.completion(inv("json", "0"), "ok")
            assert.equal("application/json", ct)
            assert.equal("\30", body:sub(-1))
            assert.same({ type = 3, invocationId = "0", result = "ok" },
                require("cjson").decode(body:sub(1, -2)))
            body = upstream.completion(inv("json", "1"))
            assert.same({ type = 3, invocationId = "1" }, require("cjson").decode(body:sub(1, -2)))
            body = upstream.completion_error(inv("json", "2"), "nope")
            assert.same({ type = 3, invocationId = "2", error = "nope" }, require("cjson").decode(body:sub(1, -2)))
        end)

        it("MessagePack: the sheet's bytes, length-prefixed", function()
            local body, ct = upstream.completion(inv("messagepack", "0"), "ok")
            assert.equal("application/x-msgpack", ct)
            assert.equal("09 95 03 80 a1 30 03 a2 6f 6b ", hex(body))
            assert.equal("06 94 03 80 a1 30 02 ", hex((upstream.completion(inv("messagepack", "0")))))
            body = upstream.completion_error(inv("messagepack", "0"), "no")
            local t = mp.unpack(body:sub(2))
            assert.same({ 3, {}, "0", 1, "no" }, t)
            -- a longer body: a two-byte varint
            body = upstream.completion(inv("messagepack", "0"), string.rep("x", 200))
            assert.equal(0xd1 % 128 + 128, body:byte(1))
            assert.equal(string.char(0xd1, 0x01), body:sub(1, 2))
        end)

        it("raises for an event that expects no result", function()
            assert.has_error(function() upstream.completion(inv("json", nil), 1) end)
            assert.has_error(function() upstream.completion({}, 1) end)
        end)
    end)

    describe("dispatch()", function()
        local calls
        local spec = { keys = { KEY2, KEY }, hubs = { Chat = {
            connected = function(ev) calls[#calls + 1] = "connected " .. ev.connection_id end,
            disconnected = function(ev) calls[#calls + 1] = "disconnected " .. tostring(ev.error) end,
            messages = {
                send = function(_, text) calls[#calls + 1] = "send " .. text return "got " .. text end,
                fail = function() error("no such room") end,
                quiet = function() end,
            },
        } } }
        before_each(function() calls = {} end)

        it("runs the handler and answers with the completion", function()
            local status, body, ct = upstream.dispatch(spec, headers(),
                '{"type":1,"invocationId":"7","target":"send","arguments":["hi"]}')
            assert.equal(200, status)
            assert.equal("application/json", ct)
            assert.same({ type = 3, invocationId = "7", result = "got hi" },
                require("cjson").decode(body:sub(1, -2)))
            assert.same({ "send hi" }, calls)
            -- no invocation id: 200, no body
            status, body = upstream.dispatch(spec, headers(), '{"type":1,"target":"send","arguments":["x"]}')
            assert.equal(200, status)
            assert.equal("", body)
            -- a void handler
            status, body = upstream.dispatch(spec, headers { ["X-ASRS-Event"] = "quiet" },
                '{"type":1,"invocationId":"8","target":"quiet","arguments":[]}')
            assert.equal(200, status)
            assert.same({ type = 3, invocationId = "8" }, require("cjson").decode(body:sub(1, -2)))
        end)

        it("a handler's error reaches the client as an error completion", function()
            local status, body = upstream.dispatch(spec, headers { ["X-ASRS-Event"] = "fail" },
                '{"type":1,"invocationId":"9","target":"fail","arguments":[]}')
            assert.equal(200, status)
            assert.same({ type = 3, invocationId = "9", error = "no such room" },
                require("cjson").decode(body:sub(1, -2)))
        end)

        it("connected and disconnected", function()
            assert.equal(200, upstream.dispatch(spec, headers { ["X-ASRS-Category"] = "connections",
                ["X-ASRS-Event"] = "connected" }, '{"type":10}'))
            assert.equal(200, upstream.dispatch(spec, headers { ["X-ASRS-Category"] = "connections",
                ["X-ASRS-Event"] = "disconnected" }, '{"type":11,"error":"bye"}'))
            assert.same({ "connected c1", "disconnected bye" }, calls)
        end)

        it("refuses, and the handler never runs: 401, 415, 400, 413, 404", function()
            local body = '{"type":1,"invocationId":"1","target":"send","arguments":["x"]}'
            local cases = {
                { headers { ["X-ASRS-Signature"] = core.upstream_sign("wrong", "c1") }, body, 401 },
                { headers { ["X-ASRS-Signature"] = false }, body, 401 },
                { headers { ["X-ASRS-Connection-Id"] = "c2" }, body, 401 },
                { headers { ["Content-Type"] = "text/xml" }, body, 415 },
                { headers(), body:sub(1, 20), 400 },
                { headers(), string.rep(" ", upstream.MAX_BODY + 1), 413 },
                { headers { ["X-ASRS-Hub"] = "other" }, body, 404 },
                { headers { ["X-ASRS-Event"] = "nothing" },
                  '{"type":1,"target":"nothing","arguments":[]}', 404 },
            }
            for i, c in ipairs(cases) do
                local status, _, _, why = upstream.dispatch(spec, c[1], c[2])
                assert.equal(c[3], status, "case " .. i .. ": " .. tostring(why))
                assert.is_string(why)
            end
            assert.same({}, calls)
        end)

        it("the signature first: an unsigned request is refused (401) whatever its body's size", function()
            -- the signature covers X-ASRS-Connection-Id, not the body: it
            -- is checked from the headers alone, before the body's size
            local big = string.rep(" ", upstream.MAX_BODY + 1)
            for i, h in ipairs {
                headers { ["X-ASRS-Signature"] = false },
                headers { ["X-ASRS-Signature"] = core.upstream_sign("wrong", "c1") },
                headers { ["X-ASRS-Connection-Id"] = false },
            } do
                local status, body, ct, why = upstream.dispatch(spec, h, big)
                assert.equal(401, status, "case " .. i .. ": " .. tostring(why))
                assert.equal("", body)
                assert.is_nil(ct)
            end
            -- signed: the size, then the content type and the body
            assert.equal(413, (upstream.dispatch(spec, headers { ["Content-Type"] = "text/xml" }, big)))
            assert.equal(413, (upstream.dispatch({ keys = KEY, hubs = spec.hubs, max_body = 10 },
                headers(), '{"type":1,"target":"send","arguments":["x"]}')))
            assert.same({}, calls)
        end)

        it("MessagePack in, MessagePack out", function()
            local body = string.char(0x96, 0x01, 0x80, 0xa1, 0x35, 0xa4) .. "send"
                .. string.char(0x91, 0xa2) .. "yo" .. string.char(0x90)
            local status, out, ct = upstream.dispatch(spec,
                headers { ["Content-Type"] = "application/x-msgpack" }, body)
            assert.equal(200, status)
            assert.equal("application/x-msgpack", ct)
            assert.same({ 3, {}, "5", 3, "got yo" }, mp.unpack(out:sub(2)))
        end)
    end)

    describe("handle() (a stand-in for nginx)", function()
        -- what handle read of the request: the body only for a signed one
        local saved, seen
        local function fake_ngx(method, hdrs, body, content_length)
            seen = { read_body = 0 }
            local lowered = {}
            for k, v in pairs(hdrs) do lowered[k:lower()] = v end
            return {
                WARN = 4, ERR = 3,
                log = function() end,
                var = { http_content_length = content_length or (body and tostring(#body)) },
                header = {},
                req = {
                    get_method = function() return method end,
                    get_headers = function() return lowered end,
                    read_body = function() seen.read_body = seen.read_body + 1 end,
                    get_body_data = function()
                        assert(seen.read_body > 0, "the body was taken before it was read")
                        return body
                    end,
                    get_body_file = function() return nil end,
                },
                print = function(b) seen.printed = b end,
                exit = function(status) seen.exit = status end,
            }
        end
        before_each(function() saved = rawget(_G, "ngx") end)
        after_each(function() _G.ngx = saved end)

        local calls
        local spec = { keys = KEY, hubs = { chat = { messages = {
            send = function(_, text) calls[#calls + 1] = text return "got " .. text end } } } }
        local body = '{"type":1,"invocationId":"1","target":"send","arguments":["x"]}'

        local function handle(method, h, b, content_length)
            calls = {}
            _G.ngx = fake_ngx(method, h, b, content_length)
            upstream.handle(spec)
            return ngx.status, seen
        end

        it("a signed request: the body is read, the handler runs", function()
            local status, s = handle("POST", headers(), body)
            assert.equal(200, status)
            assert.equal(1, s.read_body)
            assert.same({ "x" }, calls)
        end)

        it("an unsigned request: 401 from the headers alone, its body never read", function()
            for i, c in ipairs {
                { "POST", headers { ["X-ASRS-Signature"] = false }, body },
                { "POST", headers { ["X-ASRS-Signature"] = core.upstream_sign("wrong", "c1") }, body },
                { "POST", headers { ["X-ASRS-Signature"] = false }, body, tostring(upstream.MAX_BODY + 1) },
                { "GET", headers { ["X-ASRS-Signature"] = false }, nil },
            } do
                local status, s = handle(c[1], c[2], c[3], c[4])
                assert.equal(401, status, "case " .. i)
                assert.equal(0, s.read_body, "case " .. i .. ": the body was read")
                assert.equal(401, s.exit)
                assert.same({}, calls)
            end
        end)

        it("a signed request over max_body by its Content-Length: 413, the body never read", function()
            local status, s = handle("POST", headers(), body, tostring(upstream.MAX_BODY + 1))
            assert.equal(413, status)
            assert.equal(0, s.read_body)
            -- and a signed request that is not a POST: 405, nothing read
            status, s = handle("GET", headers(), nil)
            assert.equal(405, status)
            assert.equal(0, s.read_body)
            assert.same({}, calls)
        end)
    end)

    describe("outside bytes", function()
        -- random and mutated bodies: parse answers (an event or nil,
        -- message, details with a status), it never raises
        it("parse never raises on arbitrary JSON or MessagePack bodies", function()
            math.randomseed(1234)
            local seeds = {
                '{"type":1,"invocationId":"0","target":"send","arguments":["hi",null,{"x":[1,2]}]}',
                string.char(0x96, 0x01, 0x80, 0xa1, 0x30, 0xa4) .. "send" .. string.char(0x91, 0xa2) .. "hi"
                    .. string.char(0x90),
            }
            for i = 1, 3000 do
                local b = seeds[i % 2 + 1]
                local t = {}
                for j = 1, #b do t[j] = b:sub(j, j) end
                for _ = 1, math.random(1, 6) do
                    local at = math.random(1, #t + 1)
                    local op = math.random(3)
                    if op == 1 then t[at] = string.char(math.random(0, 255))
                    elseif op == 2 then table.remove(t, math.min(at, #t))
                    else table.insert(t, at, string.char(math.random(0, 255))) end
                end
                if i % 7 == 0 then -- pure noise
                    t = {}
                    for j = 1, math.random(0, 40) do t[j] = string.char(math.random(0, 255)) end
                end
                local body = table.concat(t)
                local ct = i % 2 == 0 and "application/json" or "application/x-msgpack"
                local ok, ev, msg, d = pcall(upstream.parse, headers { ["Content-Type"] = ct }, body)
                assert(ok, "raised on " .. string.format("%q", body) .. ": " .. tostring(ev))
                if not ev then
                    assert.is_string(msg)
                    assert.is_true(d.status == 400 or d.status == 415)
                end
            end
        end)
    end)
end)
