-- The fault matrix (issue 13): three real emulators as three endpoints, a
-- real JS client on each (negotiated through the library), and for every
-- fault the count of what each endpoint's client received against what
-- each call reported.  The rule every case asserts: nothing is lost
-- without an error saying so, and nothing is duplicated where the
-- service's retry rule forbids a retry.  Runs on the blocking transport
-- and in async mode; spec/faults/nginx_matrix_spec.lua runs it over
-- cosockets inside nginx.
local env = require "helpers.env"
local matrix = require "helpers.matrix"
local signalr = require "signalr"
local core = require "signalr.core"

local function runner(mode, w)
    local opts = { endpoints = matrix.endpoints(w) }
    for k, v in pairs(matrix.OPTS) do opts[k] = v end
    local r = { finished = {} }
    if mode == "async" then
        opts.async = true
        opts.on_done = function(req) r.finished[req] = (r.finished[req] or 0) + 1 end
    end
    local client = assert(signalr.new(opts))
    local hub = assert(client:hub(matrix.HUB))
    r.client, r.hub = client, hub
    -- wait s seconds while the client makes progress (health checks)
    function r.idle(s)
        if mode == "async" then
            local t = core.monotonic() + s
            repeat client:poll(math.max(0, t - core.monotonic())) until core.monotonic() >= t
        else
            env.sleep(s)
        end
    end
    -- n broadcasts tagged tag, gap seconds apart: their outcomes
    function r.batch(tag, n, gap)
        local outcomes, reqs = {}, {}
        for i = 1, n do
            local res, msg, d = hub:broadcast("newMessage", { tag, i })
            if mode == "async" and res then
                reqs[i] = res
                client:poll(0)
            else
                outcomes[i] = matrix.outcome(res, msg, d)
            end
            if gap then r.idle(gap) end
        end
        if mode == "async" then
            assert(client:flush(15))
            for i, req in pairs(reqs) do
                assert.is_true(req.done)
                -- one outcome per request, after every endpoint answered
                assert.equal(1, r.finished[req])
                outcomes[i] = matrix.outcome(req.result, req.error, req.details)
            end
        end
        return outcomes
    end
    -- every endpoint online again (faults cleared, services up)
    function r.all_online()
        env.wait(function()
            local h = client:health()
            if mode == "async" and h then
                assert(client:flush(5))
                h = h.result
            end
            if not h then return false end
            for _, e in ipairs(client:endpoints()) do if not e.online then return false end end
            return true
        end, 15, "every endpoint online")
    end
    function r.negotiate(o)
        return assert(hub:negotiate(o))
    end
    return r
end

local function count(outcomes, pred)
    local n = 0
    for _, o in ipairs(outcomes) do if pred(o) then n = n + 1 end end
    return n
end

local function said_true(o, ep)
    return o.ok or (o.endpoints and o.endpoints[ep] == true)
end

for _, mode in ipairs { "blocking", "async" } do
    describe("fault matrix, " .. mode .. " transport (3 endpoints, real clients)", function()
        local w, r, rows = nil, nil, {}
        local n_case = 0
        local function tag() n_case = n_case + 1 return mode .. "-" .. n_case end
        local function check(row)
            rows[#rows + 1] = row
            assert.equal(0, row.lost, row.case .. ": lost without an error")
            assert.equal(0, row.duplicated, row.case .. ": duplicated")
        end
        local function clear_all()
            for _, e in pairs(w.emu) do
                e:http("DELETE", "/_emulator/faults")
                e:clear()
            end
        end

        setup(function()
            w = matrix.start()
            r = runner(mode, w)
            for _, ep in ipairs(matrix.NAMES) do
                matrix.connect(w, ep .. "-" .. mode, ep, r.negotiate { endpoints = { ep } })
            end
        end)
        teardown(function()
            print(matrix.format("fault matrix, " .. mode .. " transport:", rows))
            r.client:close()
            matrix.stop(w)
        end)
        before_each(function()
            clear_all()
            r.all_online()
            clear_all()
        end)

        it("all up: every send reaches every endpoint once, and the call says true", function()
            local t = tag()
            local out = r.batch(t, 10)
            local row = matrix.evaluate(w, "all up", t, out, matrix.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(30, row.delivered)
        end)

        it("500 burst on one endpoint: those sends fail naming it, none retried", function()
            w.emu.us:fault { mode = "status", status = 500, count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 10, 0.05)
            local row = matrix.evaluate(w, "500 x2 on us", t, out, matrix.NAMES)
            check(row)
            assert.equal(2, row.codes["us:ESTATUS/500"])
            -- us got each send it took once, plus the two refused: no retry
            assert.equal(count(out, function(o) return said_true(o, "us") end) + 2,
                matrix.received_requests(w.emu.us))
            for _, o in ipairs(out) do
                if not o.ok then
                    assert.equal("EPARTIAL", o.code)
                    assert.is_true(o.endpoints.eu)
                    assert.is_true(o.endpoints.ap)
                    assert.is_table(o.endpoints.us)
                end
            end
            -- every other endpoint got everything
            assert.equal(10, matrix.received_requests(w.emu.eu))
        end)

        it("503 burst: retried, nothing lost, no error", function()
            w.emu.us:fault { mode = "status", status = 503, count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 10)
            local row = matrix.evaluate(w, "503 x2 on us", t, out, matrix.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(30, row.delivered)
            assert.equal(12, matrix.received_requests(w.emu.us))
        end)

        it("429 with Retry-After: waited for, then delivered", function()
            w.emu.us:fault { mode = "status", status = 429, count = 1, retry_after = 1, path = ":send" }
            local t, t0 = tag(), core.monotonic()
            local out = r.batch(t, 5)
            local row = matrix.evaluate(w, "429 Retry-After 1 on us", t, out, matrix.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(15, row.delivered)
            assert.equal(6, matrix.received_requests(w.emu.us))
            assert.is_true(core.monotonic() - t0 >= 0.9)
        end)

        it("a stall past the timeout: that send fails naming the endpoint, never resent", function()
            w.emu.us:fault { mode = "stall", ms = 1600, count = 1, path = ":send" }
            local t = tag()
            local out = r.batch(t, 5)
            local row = matrix.evaluate(w, "stall 1.6 s on us (timeout 1 s)", t, out, matrix.NAMES)
            check(row)
            assert.equal(1, row.errors)
            assert.equal(1, row.codes["us:ETIMEDOUT"])
            assert.equal(5, matrix.received_requests(w.emu.us))
        end)

        it("a connection reset before the reply: fails, not resent", function()
            w.emu.us:fault { mode = "reset", count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 6)
            local row = matrix.evaluate(w, "reset x2 on us (no work done)", t, out, matrix.NAMES)
            check(row)
            assert.equal(2, row.errors)
            assert.equal(6, matrix.received_requests(w.emu.us))
        end)

        it("a reset after the work: fails (it may have been delivered), not resent", function()
            w.emu.us:fault { mode = "reset_after", count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 6)
            local row = matrix.evaluate(w, "reset after the work x2 on us", t, out, matrix.NAMES)
            check(row)
            assert.equal(2, row.errors)
            assert.equal(6, matrix.received_requests(w.emu.us))
            -- the service did the work: its client got all six
            assert.equal(18, row.delivered)
        end)

        it("a reply body cut short: fails, not resent", function()
            w.emu.us:fault { mode = "truncate", count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 6)
            local row = matrix.evaluate(w, "reply body cut short x2 on us", t, out, matrix.NAMES)
            check(row)
            assert.equal(2, row.errors)
            assert.equal(6, matrix.received_requests(w.emu.us))
        end)

        it("an endpoint killed mid-run and restarted", function()
            local h = matrix.OPTS
            local t = tag()
            local out = r.batch(t, 5)
            local row = matrix.evaluate(w, "killed: before", t, out, matrix.NAMES)
            check(row)
            assert.equal(0, row.errors)

            -- killed: negotiate stops handing it out within one health
            -- interval (plus the check's retries)
            w.emu.us:kill()
            local t0 = core.monotonic()
            local gone
            env.wait(function()
                for _ = 1, 20 do
                    if matrix.endpoint_of(w, r.negotiate()) == "us" then r.idle(0.05) return false end
                end
                gone = core.monotonic() - t0
                return true
            end, 15, "negotiate to stop choosing the dead endpoint")
            assert.is_true(gone <= h.health_interval + h.health_retries * h.health_retry_delay + 2,
                "took " .. gone .. " s")
            t = tag()
            out = r.batch(t, 8, 0.05)
            row = matrix.evaluate(w, "killed: while down", t, out, { "eu", "ap" })
            check(row)
            assert.equal(8, row.errors)
            for _, o in ipairs(out) do
                assert.equal("EPARTIAL", o.code)
                assert.is_table(o.endpoints.us)
                assert.is_true(o.endpoints.eu)
            end
            assert.equal(16, row.delivered)

            -- back: negotiate takes it again within a health interval
            w.emu.us:restart()
            t0 = core.monotonic()
            env.wait(function()
                for _ = 1, 20 do
                    if matrix.endpoint_of(w, r.negotiate()) == "us" then return true end
                end
                r.idle(0.05)
            end, 15, "negotiate to choose the endpoint again")
            local back = core.monotonic() - t0
            assert.is_true(back <= h.health_interval + 2, "took " .. back .. " s")
            matrix.connect(w, "us-again-" .. mode, "us", r.negotiate { endpoints = { "us" } })
            t = tag()
            out = r.batch(t, 5)
            row = matrix.evaluate(w, "killed: after the restart", t, out, matrix.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(15, row.delivered)
        end)

        it("all endpoints down: every call fails fast with a clear error, nothing queued", function()
            for _, e in pairs(w.emu) do e:kill() end
            local t, t0 = tag(), core.monotonic()
            local out = r.batch(t, 30)
            local took = core.monotonic() - t0
            local row = matrix.evaluate(w, "all down", t, out, {})
            check(row)
            assert.equal(30, row.errors)
            assert.is_true(took < 5, "30 calls took " .. took .. " s")
            if mode == "async" then
                -- queued before any answer came back: each ends once,
                -- with the endpoints' errors; none is left pending
                for i = 1, 30 do assert.is_true(out[i].code == "EPARTIAL" or out[i].code == "EOFFLINE") end
                assert.equal(0, r.client:pending())
                local req, msg, d = r.hub:broadcast("newMessage", { t, 31 })
                assert.is_nil(req) -- refused at once, nothing queued
                assert.equal("EOFFLINE", d.code)
                assert.matches("no endpoint is online", msg)
            else
                -- the first finds them down; the rest are refused at once
                for i = 2, 30 do assert.equal("EOFFLINE", out[i].code) end
            end
            local ok, msg, d = r.hub:negotiate()
            assert.is_nil(ok)
            assert.equal("EOFFLINE", d.code)
            assert.matches("no endpoint is online", msg)
            for _, e in pairs(w.emu) do e:restart() end
        end)
    end)
end
