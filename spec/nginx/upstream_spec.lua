-- Serverless event handlers end to end: real JS clients (JSON and
-- MessagePack over WebSockets) invoke hub methods -> the emulator POSTs
-- them upstream -> a real nginx runs signalr.upstream.handle -> the
-- handler broadcasts through the REST API -> every client receives; an
-- invocation that expects a result gets the handler's value or its error;
-- connected/disconnected arrive once each.  Then forged, replayed and
-- malformed requests straight at nginx: refused, and no handler runs.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local signalr = require "signalr"
local core = require "signalr.core"
local cjson = require "cjson"
local sh = nginx.sh

local OLD_KEY = "the-rotated-out-key-0123456789abcdefghijklmn"
-- every transport and hub protocol of the official client
local CLIENTS = {
    { name = "json", protocol = "json" },
    { name = "mp", protocol = "messagepack" },
    { name = "sse", protocol = "json", transport = "ServerSentEvents" },
    { name = "lp", protocol = "json", transport = "LongPolling" },
    { name = "lpmp", protocol = "messagepack", transport = "LongPolling" },
}

local function counts(n)
    return cjson.decode(sh("curl -s " .. n.base .. "/counts"))
end

-- POST to the handler with curl: status
local function post(n, path, headers, body)
    local f = assert(io.open(n.prefix .. "/req", "wb"))
    f:write(body)
    f:close()
    local args = { "curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @" .. n.prefix .. "/req" }
    for k, v in pairs(headers) do args[#args + 1] = "-H '" .. k .. ": " .. v .. "'" end
    args[#args + 1] = "'" .. n.base .. path .. "'"
    return tonumber(sh(table.concat(args, " ")))
end

describe("serverless upstream through nginx", function()
    local n, emu, pool, hub
    setup(function()
        local cs_file = os.tmpname()
        n = nginx.start_conf("upstream.conf",
            { UPSTREAM_CS_FILE = cs_file, UPSTREAM_KEYS = OLD_KEY .. "," .. env.KEY }, function(x)
                return sh("curl -s -o /dev/null -w '%{http_code}' " .. x.base .. "/counts") == "200"
            end)
        emu = env.emulator("--upstream '" .. n.base .. "/upstream/{hub}/{category}/{event};hub=chat'")
        nginx.write_cs(cs_file, emu.cs)
        pool = env.clients(emu)
        hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
    end)
    teardown(function()
        pool:quit()
        emu:stop()
        nginx.stop_clean(n)
    end)

    local ids = {}
    it("clients of every transport and protocol connect: one connected event each", function()
        for _, c in ipairs(CLIENTS) do
            local nego = assert(hub:negotiate { user_id = "user-" .. c.name })
            ids[c.name] = assert(pool:connect(c.name, nego, { "newMessage" }, nil,
                { protocol = c.protocol, transport = c.transport }))
        end
        env.wait(function()
            local t = counts(n)
            for _, c in ipairs(CLIENTS) do if not t["connected:" .. ids[c.name]] then return false end end
            return true
        end, 10, "connected events")
        local t = counts(n)
        for _, c in ipairs(CLIENTS) do
            assert.equal(1, t["connected:" .. ids[c.name]])
            assert.equal("user-" .. c.name, t["user:" .. ids[c.name]])
        end
    end)

    it("a client's call reaches the handler, whose broadcast reaches every client once", function()
        for _, c in ipairs(CLIENTS) do
            pool:send { cmd = "invoke", name = c.name, target = "broadcast", args = { "from " .. c.name } }
        end
        for _, who in ipairs(CLIENTS) do
            env.wait(function()
                local seen = {}
                for _, m in ipairs(pool:messages(who.name)) do seen[m.args[2]] = true end
                for _, c in ipairs(CLIENTS) do if not seen["from " .. c.name] then return false end end
                return true
            end, 10, who.name .. " to get every broadcast")
        end
        env.sleep(0.3)
        -- each once, naming the sender's connection and protocol
        for _, who in ipairs(CLIENTS) do
            local got = pool:messages(who.name)
            assert.equal(#CLIENTS, #got, who.name)
            for _, m in ipairs(got) do
                local from = m.args[2]:match("^from (.*)$")
                local sender
                for _, c in ipairs(CLIENTS) do if c.name == from then sender = c end end
                assert.same({ ids[from], "from " .. from, sender.protocol }, m.args)
            end
        end
    end)

    it("an invocation that expects a result gets the handler's value, in its protocol", function()
        local value = { n = 42, list = { 1, 2, 3 }, text = "é" }
        for _, c in ipairs(CLIENTS) do
            pool:send { cmd = "call", name = c.name, id = "q-" .. c.name, target = "echo", args = { value } }
        end
        local r = env.wait(function()
            local res = pool:filter("result")
            return #res >= #CLIENTS and res
        end, 10, "results")
        for _, e in ipairs(r) do assert.same(value, e.result, e.name) end
    end)

    it("a handler's error reaches the invoking client as an error completion", function()
        for _, c in ipairs(CLIENTS) do
            pool:send { cmd = "call", name = c.name, id = "f-" .. c.name, target = "fail", args = {} }
        end
        local f = env.wait(function()
            local res = pool:filter("call_failed")
            return #res >= #CLIENTS and res
        end, 10, "failures")
        for _, e in ipairs(f) do assert.matches("no such room", e.error) end
        -- no handler for the method: the service's own text for a 404
        pool:send { cmd = "call", name = "json", id = "u1", target = "unknown", args = {} }
        local u = env.wait(function()
            for _, e in ipairs(pool:filter("call_failed")) do if e.id == "u1" then return e end end
        end, 10, "the unknown method's failure")
        assert.matches("Invocation failed, status code 404", u.error)
    end)

    it("forged, replayed, truncated, oversized or mistyped requests: refused, no handler runs", function()
        local before = counts(n).calls
        local body = '{"type":1,"invocationId":"1","target":"echo","arguments":[1]}'
        local function h(over)
            local t = { ["X-ASRS-Connection-Id"] = "c1", ["X-ASRS-Hub"] = "chat",
                        ["X-ASRS-Category"] = "messages", ["X-ASRS-Event"] = "echo",
                        ["X-ASRS-Signature"] = core.upstream_sign(env.KEY, "c1"),
                        ["Content-Type"] = "application/json" }
            for k, v in pairs(over or {}) do t[k] = v end
            for k, v in pairs(t) do if v == false then t[k] = nil end end
            return t
        end
        local path = "/upstream/chat/messages/echo"
        -- the genuine request is answered (and runs the handler once)
        assert.equal(200, post(n, path, h(), body))
        local cases = {
            { "a forged signature", h { ["X-ASRS-Signature"] = "sha256=" .. string.rep("AB", 32) }, body, 401 },
            { "no signature", h { ["X-ASRS-Signature"] = false }, body, 401 },
            { "signed with a key nginx does not hold", h { ["X-ASRS-Signature"] =
                core.upstream_sign("someone-elses-key", "c1") }, body, 401 },
            { "replayed for another connection", h { ["X-ASRS-Connection-Id"] = "c2" }, body, 401 },
            { "missing routing headers", h { ["X-ASRS-Event"] = false }, body, 400 },
            { "a truncated body", h(), body:sub(1, 30), 400 },
            { "an unknown content type", h { ["Content-Type"] = "text/plain" }, body, 415 },
            { "an oversized body", h(), string.rep("x", 1024 * 1024 + 10), 413 },
            -- the signature first, from the headers: an unsigned request's
            -- body is never read, whatever its size or framing (a chunked
            -- body over nginx's client_max_body_size of 4m would be refused
            -- by nginx with 413 if it were read)
            { "unsigned and oversized", h { ["X-ASRS-Signature"] = false }, string.rep("x", 1024 * 1024 + 10),
              401 },
            { "unsigned, chunked, past client_max_body_size", h { ["X-ASRS-Signature"] = false,
              ["Transfer-Encoding"] = "chunked" }, string.rep("x", 5 * 1024 * 1024), 401 },
            { "signed, chunked, oversized", h { ["Transfer-Encoding"] = "chunked" },
              string.rep("x", 1024 * 1024 + 10), 413 },
        }
        for _, c in ipairs(cases) do
            assert.equal(c[4], post(n, path, c[2], c[3]), c[1])
        end
        assert.equal(before + 1, counts(n).calls)
        -- key rotation: a request signed with the old key verifies too
        assert.equal(200, post(n, path, h { ["X-ASRS-Signature"] = core.upstream_sign(OLD_KEY, "c1") }, body))
        assert.equal(before + 2, counts(n).calls)
    end)

    it("REST sends reach each client in its own protocol, the arguments as sent", function()
        local args = { "text é", 42, 1.5, true, signalr.null, { a = { 1, 2 }, b = "x" }, { 3 } }
        assert.is_true(hub:broadcast("newMessage", args))
        local want = { "text é", 42, 1.5, true, cjson.null, { a = { 1, 2 }, b = "x" }, { 3 } }
        for _, c in ipairs(CLIENTS) do
            local m = env.wait(function()
                for _, x in ipairs(pool:messages(c.name)) do if x.args[1] == "text é" then return x end end
            end, 10, c.name .. " to get the REST broadcast")
            assert.same(want, m.args, c.name)
        end
    end)

    it("clients leave: one disconnected event each", function()
        for _, c in ipairs(CLIENTS) do pool:send { cmd = "stop", name = c.name } end
        env.wait(function()
            local t = counts(n)
            for _, c in ipairs(CLIENTS) do if not t["disconnected:" .. ids[c.name]] then return false end end
            return true
        end, 10, "disconnected events")
        env.sleep(0.3)
        local t = counts(n)
        for _, c in ipairs(CLIENTS) do
            assert.equal(1, t["disconnected:" .. ids[c.name]], c.name)
            assert.equal(1, t["connected:" .. ids[c.name]], c.name)
        end
    end)
end)

describe("serverless upstream with bearer tokens (upstream auth ManagedIdentity) through nginx", function()
    local rs = require "helpers.rs256"
    local AUD = "api://lua-signalr-upstream"
    local n, emu, pool, hub, auth_file
    setup(function()
        auth_file = os.tmpname()
        n = nginx.start_conf("upstream.conf", { UPSTREAM_CS_FILE = os.tmpname(), UPSTREAM_KEYS = env.KEY,
            UPSTREAM_AUTH_FILE = auth_file }, function(x)
                return sh("curl -s -o /dev/null -w '%{http_code}' " .. x.base .. "/counts") == "200"
            end)
        emu = env.emulator("--upstream '" .. n.base .. "/upstream-auth/{event};hub=chat;auth=ManagedIdentity;"
            .. "resource=" .. AUD .. "'")
        -- what an app reads from its tenant: the JWKS document and the issuer
        local jwks = sh("curl -s " .. emu.base .. "/managed/discovery/v2.0/keys")
        local f = assert(io.open(auth_file, "wb"))
        f:write(cjson.encode { jwks = jwks, audience = AUD,
                               issuer = "http://localhost:" .. emu.port .. "/managed/v2.0" })
        f:close()
        sh("chmod 644 " .. auth_file) -- nginx's worker reads it
        pool = env.clients(emu)
        hub = assert(assert(signalr.new(emu.cs)):hub("chat"))
    end)
    teardown(function()
        pool:quit()
        emu:stop()
        nginx.stop_clean(n)
        os.remove(auth_file)
    end)

    it("the service's signed tokens verify: connected arrives, an invocation gets its value", function()
        local nego = assert(hub:negotiate { user_id = "bearer-user" })
        local id = assert(pool:connect("b1", nego, { "newMessage" }, nil, { protocol = "json" }))
        env.wait(function() return counts(n)["connected:" .. id] end, 10, "the connected event")
        pool:send { cmd = "call", name = "b1", id = "b-echo", target = "echo", args = { { 7, "eight" } } }
        local r = env.wait(function()
            for _, e in ipairs(pool:filter("result")) do if e.id == "b-echo" then return e end end
            for _, e in ipairs(pool:filter("call_failed")) do
                if e.id == "b-echo" then error("refused: " .. tostring(e.error)) end
            end
        end, 10, "the echo")
        assert.same({ 7, "eight" }, r.result)
        assert.is_nil(sh("grep -c 'bearer token refused' " .. n.prefix .. "/logs/error.log || true")
            :match("^[1-9]"))
    end)

    it("without a token, or with one the tenant did not sign: 401, no handler runs", function()
        local before = counts(n).calls or 0
        local body = '{"type":1,"invocationId":"1","target":"echo","arguments":[1]}'
        local base = { ["X-ASRS-Connection-Id"] = "c1", ["X-ASRS-Hub"] = "chat",
                       ["X-ASRS-Category"] = "messages", ["X-ASRS-Event"] = "echo",
                       ["Content-Type"] = "application/json" }
        local k = rs.key()
        local now = os.time()
        local forged = rs.sign(k, { iss = "http://localhost:" .. emu.port .. "/managed/v2.0", aud = AUD,
                                    exp = now + 600, nbf = now - 5 })
        local kid = cjson.decode(sh("curl -s " .. emu.base .. "/managed/discovery/v2.0/keys")).keys[1].kid
        local forged_kid = rs.sign(k, { iss = "http://localhost:" .. emu.port .. "/managed/v2.0", aud = AUD,
                                        exp = now + 600 }, { alg = "RS256", kid = kid })
        rs.cleanup(k)
        for _, c in ipairs {
            { "no Authorization header", nil },
            { "a token signed by another key", "Bearer " .. forged },
            { "a forged token naming the tenant's kid", "Bearer " .. forged_kid },
            { "not a bearer token", "Basic dXNlcjpwYXNz" },
        } do
            local h = {}
            for key, v in pairs(base) do h[key] = v end
            h.Authorization = c[2]
            assert.equal(401, post(n, "/upstream-auth/echo", h, body), c[1])
        end
        assert.equal(before, counts(n).calls or 0)
        local log = sh("cat " .. n.prefix .. "/logs/error.log")
        assert.matches("no Authorization header", log)
        assert.matches("bearer token refused: the signature does not verify", log)
        -- the tokens never reach the log
        assert.is_nil(log:find(forged:match("[^.]+$"), 1, true))
        assert.is_nil(log:find(forged_kid:match("[^.]+$"), 1, true))
    end)
end)

describe("the serverless chat example (examples/openresty)", function()
    local emu, pool, base, prefix
    setup(function()
        -- the emulator calls nginx and nginx calls the emulator: the
        -- port first, then the emulator, then nginx on that port
        for _ = 1, 5 do
            local port = nginx.free_port()
            prefix = os.tmpname()
            os.remove(prefix)
            emu = env.emulator("--upstream 'http://127.0.0.1:" .. port .. "/upstream'")
            local out = sh(string.format("AzureSignalRConnectionString='%s' %s/examples/openresty/run.sh %s %d 2>&1",
                emu.cs, env.root, prefix, port))
            if not out:find("Address already in use", 1, true) then
                base = "http://127.0.0.1:" .. port
                break
            end
            emu:stop()
        end
        assert(base, "no free port for nginx")
        env.wait(function() return sh("curl -s " .. base .. "/ping") == "pong\n" end, 10, "nginx")
        pool = env.clients(emu)
    end)
    teardown(function()
        pool:quit()
        emu:stop()
        nginx.stop { prefix = prefix }
    end)

    it("negotiate through nginx, send, and the handler broadcasts back; invoke gets its value", function()
        -- the client negotiates with nginx, which hands it to the service
        pool:send { cmd = "connect", name = "alice", url = base .. "/chat?user=alice", targets = { "newMessage" } }
        env.wait(function()
            for _, e in ipairs(pool:events()) do
                if e.name == "alice" and e.ev == "connected" then return true end
                assert(not (e.name == "alice" and e.ev == "failed"), e.error)
            end
        end, 15, "alice to connect through nginx")
        pool:send { cmd = "invoke", name = "alice", target = "broadcast", args = { "hello, room" } }
        local m = env.wait(function() return pool:messages("alice")[1] end, 10, "the broadcast")
        assert.same({ "alice", "hello, room" }, m.args)
        pool:send { cmd = "call", name = "alice", id = "e1", target = "echo", args = { { 1, "two" } } }
        local r = env.wait(function() return pool:filter("result")[1] end, 10, "the echo")
        assert.same({ 1, "two" }, r.result)
        -- a call the handler refuses: an error completion, the worker logs it
        pool:send { cmd = "call", name = "alice", id = "e2", target = "broadcast", args = { 42 } }
        local f = env.wait(function() return pool:filter("call_failed")[1] end, 10, "the refusal")
        assert.matches("broadcast takes a text", f.error)
    end)
end)
