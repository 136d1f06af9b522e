--- The fault matrix of spec/faults/: three emulators (endpoints "eu" and
-- "us", primary, and "ap", secondary), a real JS client on each that
-- negotiated through the library, and the bookkeeping: for every send and
-- every endpoint, what the call reported against what that endpoint's
-- client received.
local env = require "helpers.env"
local cjson = require "cjson"
local assert = require "luassert"
local core = require "signalr.core"

local M = {}
M.NAMES = { "eu", "us", "ap" }
M.TYPES = { eu = "primary", us = "primary", ap = "secondary" }
M.HUB = "matrix"
-- the clients' settings: a 1 s request timeout, fast retries, and health
-- checks every second (0.3 s between attempts) so the cases run quickly
M.OPTS = { retries = 2, retry_delay = 0.05, max_retry_delay = 2, timeout = 1,
           health_interval = 1, health_timeout = 0.5, health_retries = 2,
           health_retry_delay = 0.3 }

--- Start the emulators and the JS client pool.
function M.start()
    local w = { emu = {}, clients = {} }
    for _, name in ipairs(M.NAMES) do w.emu[name] = env.emulator() end
    w.pool = env.clients(w.emu.eu)
    return w
end

function M.stop(w)
    w.pool:quit()
    for _, e in pairs(w.emu) do e:stop() end
end

--- The `endpoints` option for signalr.new.
function M.endpoints(w)
    local out = {}
    for i, name in ipairs(M.NAMES) do
        out[i] = { connection_string = w.emu[name].cs, name = name, type = M.TYPES[name] }
    end
    return out
end

--- Which endpoint a negotiate result points at (by the emulator's port).
function M.endpoint_of(w, nego)
    local port = tonumber(nego.url:match(":(%d+)/"))
    for name, e in pairs(w.emu) do if e.port == port then return name end end
end

--- Connect a JS client named `cname` with a negotiate result for the
-- endpoint `ep`; it counts as that endpoint's listener from now on.
function M.connect(w, cname, ep, nego)
    assert.equal(ep, M.endpoint_of(w, nego))
    local id, err = w.pool:connect(cname, nego, { "newMessage" })
    assert(id, err)
    w.clients[ep] = cname
end

-- (tag, i) -> count, per client name
local function received(w, tag)
    local got = {}
    for _, m in ipairs(w.pool:messages()) do
        if m.args[1] == tag then
            local per = got[m.name] or {}
            got[m.name] = per
            per[m.args[2]] = (per[m.args[2]] or 0) + 1
        end
    end
    return got
end

-- What outcome o says of endpoint ep: true (took it) or an error table.
local function said(o, ep)
    if o.ok then return true end
    local e = o.endpoints and o.endpoints[ep]
    if e == nil then return { code = o.code } end
    return e
end

--- Count a batch: outcomes[i] = { ok = bool, code = ..., endpoints = {...} }
-- for send i of `tag`; `live` = the endpoints whose client listens.
-- Waits for what was reported delivered, then a little more for
-- duplicates.  Returns the row.
function M.evaluate(w, name, tag, outcomes, live)
    local function missing()
        local got = received(w, tag)
        for i, o in ipairs(outcomes) do
            for _, ep in ipairs(live) do
                local per = got[w.clients[ep]] or {}
                if said(o, ep) == true and not per[i] then return true end
            end
        end
        return false
    end
    local deadline = os.time() + 5
    while missing() and os.time() <= deadline do env.sleep(0.1) end
    env.sleep(0.3)
    local got = received(w, tag)
    local row = { case = name, sends = #outcomes, expected = #outcomes * #live, delivered = 0,
                  duplicated = 0, lost = 0, errors = 0, reported = 0, codes = {} }
    local is_live = {}
    for _, ep in ipairs(live) do is_live[ep] = true end
    for i, o in ipairs(outcomes) do
        if not o.ok then row.errors = row.errors + 1 end
        for _, ep in ipairs(M.NAMES) do
            local s = said(o, ep)
            if is_live[ep] then
                local n = (got[w.clients[ep]] or {})[i] or 0
                if n >= 1 then row.delivered = row.delivered + 1 end
                if n > 1 then row.duplicated = row.duplicated + 1 end
                if s == true and n == 0 then row.lost = row.lost + 1 end
            end
            if s ~= true then
                row.reported = row.reported + 1
                local key = ep .. ":" .. tostring(s.code) .. (s.status and ("/" .. math.floor(s.status)) or "")
                row.codes[key] = (row.codes[key] or 0) + 1
            end
        end
    end
    return row
end

--- The table the spec prints (and the issue note quotes).
function M.format(title, rows)
    local out = { "", title,
        "| case | sends | endpoint deliveries expected | delivered | duplicated | lost |"
        .. " errors returned | endpoint failures reported (endpoint:code) |",
        "|---|---|---|---|---|---|---|---|" }
    for _, r in ipairs(rows) do
        local codes = {}
        for k, v in pairs(r.codes) do codes[#codes + 1] = k .. " x" .. v end
        table.sort(codes)
        out[#out + 1] = string.format("| %s | %d | %d | %d | %d | %d | %d | %s |", r.case, r.sends,
            r.expected, r.delivered, r.duplicated, r.lost, r.errors,
            #codes > 0 and table.concat(codes, ", ") or "-")
    end
    return table.concat(out, "\n")
end

--- Sends of `path` an emulator recorded since its last clear.
function M.received_requests(e, path)
    local n = 0
    for _, r in ipairs(e:requests()) do
        if r.path:find(path or ":send", 1, true) then n = n + 1 end
    end
    return n
end

--- An outcome from a call's results.
function M.outcome(ok, _, details)
    if ok then return { ok = true } end
    details = details or {}
    return { ok = false, code = details.code, endpoints = details.endpoints }
end

local function count(outcomes, pred)
    local n = 0
    for _, o in ipairs(outcomes) do if pred(o) then n = n + 1 end end
    return n
end

local function said_true(o, ep)
    return o.ok or (o.endpoints and o.endpoints[ep] == true)
end

--- Define the matrix's cases for one transport: runner(w) gives the
-- runner (idle, batch, all_online, negotiate, try_send, try_negotiate,
-- pending, close); bdd holds busted's describe, it, setup, teardown and
-- before_each.
function M.suite(mode, make_runner, bdd)
    local describe, it, setup, teardown, before_each =
        bdd.describe, bdd.it, bdd.setup, bdd.teardown, bdd.before_each
    describe("fault matrix, " .. mode .. " transport (3 endpoints, real clients)", function()
        local w, r, rows = nil, nil, {}
        local n_case = 0
        local function tag() n_case = n_case + 1 return mode:gsub("%W", "") .. "-" .. n_case end
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
            w = M.start()
            r = make_runner(w)
            for _, ep in ipairs(M.NAMES) do
                M.connect(w, ep .. "-" .. mode, ep, r.negotiate { endpoints = { ep } })
            end
        end)
        teardown(function()
            print(M.format("fault matrix, " .. mode .. " transport:", rows))
            local ok, err = pcall(r.close)
            M.stop(w)
            assert(ok, err)
        end)
        before_each(function()
            clear_all()
            r.all_online()
            clear_all()
        end)

        it("all up: every send reaches every endpoint once, and the call says true", function()
            local t = tag()
            local out = r.batch(t, 10)
            local row = M.evaluate(w, "all up", t, out, M.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(30, row.delivered)
        end)

        it("500 burst on one endpoint: those sends fail naming it, none retried", function()
            w.emu.us:fault { mode = "status", status = 500, count = 2, path = ":send" }
            local t = tag()
            -- 1 s of sends: after the first 500 the endpoint is offline until
            -- its check (0.3 s later) passes; the second 500 needs a send after
            -- that, with room for a loaded machine
            local out = r.batch(t, 20, 0.05)
            local row = M.evaluate(w, "500 x2 on us", t, out, M.NAMES)
            check(row)
            assert.equal(2, row.codes["us:ESTATUS/500"])
            -- us got each send it took once, plus the two refused: no retry
            assert.equal(count(out, function(o) return said_true(o, "us") end) + 2,
                M.received_requests(w.emu.us))
            for _, o in ipairs(out) do
                if not o.ok then
                    assert.equal("EPARTIAL", o.code)
                    assert.is_true(o.endpoints.eu)
                    assert.is_true(o.endpoints.ap)
                    assert.is_table(o.endpoints.us)
                end
            end
            -- every other endpoint got everything
            assert.equal(20, M.received_requests(w.emu.eu))
        end)

        it("503 burst: retried, nothing lost, no error", function()
            w.emu.us:fault { mode = "status", status = 503, count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 10)
            local row = M.evaluate(w, "503 x2 on us", t, out, M.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(30, row.delivered)
            assert.equal(12, M.received_requests(w.emu.us))
        end)

        it("429 with Retry-After: waited for, then delivered", function()
            w.emu.us:fault { mode = "status", status = 429, count = 1, retry_after = 1, path = ":send" }
            local t, t0 = tag(), core.monotonic()
            local out = r.batch(t, 5)
            local row = M.evaluate(w, "429 Retry-After 1 on us", t, out, M.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(15, row.delivered)
            assert.equal(6, M.received_requests(w.emu.us))
            assert.is_true(core.monotonic() - t0 >= 0.9)
        end)

        it("a stall past the timeout: that send fails naming the endpoint, never resent", function()
            w.emu.us:fault { mode = "stall", ms = 1600, count = 1, path = ":send" }
            local t = tag()
            local out = r.batch(t, 5)
            local row = M.evaluate(w, "stall 1.6 s on us (timeout 1 s)", t, out, M.NAMES)
            check(row)
            assert.equal(1, row.errors)
            assert.equal(1, row.codes["us:ETIMEDOUT"])
            assert.equal(5, M.received_requests(w.emu.us))
        end)

        it("a connection reset before the reply: fails, not resent", function()
            w.emu.us:fault { mode = "reset", count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 6)
            local row = M.evaluate(w, "reset x2 on us (no work done)", t, out, M.NAMES)
            check(row)
            assert.equal(2, row.errors)
            assert.equal(6, M.received_requests(w.emu.us))
        end)

        it("a reset after the work: fails (it may have been delivered), not resent", function()
            w.emu.us:fault { mode = "reset_after", count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 6)
            local row = M.evaluate(w, "reset after the work x2 on us", t, out, M.NAMES)
            check(row)
            assert.equal(2, row.errors)
            assert.equal(6, M.received_requests(w.emu.us))
            -- the service did the work: its client got all six
            assert.equal(18, row.delivered)
        end)

        it("a reply body cut short: fails, not resent", function()
            w.emu.us:fault { mode = "truncate", count = 2, path = ":send" }
            local t = tag()
            local out = r.batch(t, 6)
            local row = M.evaluate(w, "reply body cut short x2 on us", t, out, M.NAMES)
            check(row)
            assert.equal(2, row.errors)
            assert.equal(6, M.received_requests(w.emu.us))
        end)

        it("an endpoint killed mid-run and restarted", function()
            local h = M.OPTS
            local t = tag()
            local out = r.batch(t, 5)
            local row = M.evaluate(w, "killed: before", t, out, M.NAMES)
            check(row)
            assert.equal(0, row.errors)

            -- killed: negotiate stops handing it out within one health
            -- interval (plus the check's retries)
            w.emu.us:kill()
            local t0 = core.monotonic()
            local gone
            env.wait(function()
                for _ = 1, 20 do
                    if M.endpoint_of(w, r.negotiate()) == "us" then r.idle(0.05) return false end
                end
                gone = core.monotonic() - t0
                return true
            end, 15, "negotiate to stop choosing the dead endpoint")
            assert.is_true(gone <= h.health_interval + h.health_retries * h.health_retry_delay + 2,
                "took " .. gone .. " s")
            t = tag()
            out = r.batch(t, 8, 0.05)
            row = M.evaluate(w, "killed: while down", t, out, { "eu", "ap" })
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
                    if M.endpoint_of(w, r.negotiate()) == "us" then return true end
                end
                r.idle(0.05)
            end, 15, "negotiate to choose the endpoint again")
            local back = core.monotonic() - t0
            assert.is_true(back <= h.health_interval + 2, "took " .. back .. " s")
            M.connect(w, "us-again-" .. mode, "us", r.negotiate { endpoints = { "us" } })
            t = tag()
            out = r.batch(t, 5)
            row = M.evaluate(w, "killed: after the restart", t, out, M.NAMES)
            check(row)
            assert.equal(0, row.errors)
            assert.equal(15, row.delivered)
        end)

        it("all endpoints down: every call fails fast with a clear error, nothing queued", function()
            for _, e in pairs(w.emu) do e:kill() end
            local t, t0 = tag(), core.monotonic()
            local out = r.batch(t, 30)
            local took = core.monotonic() - t0
            local row = M.evaluate(w, "all down", t, out, {})
            check(row)
            assert.equal(30, row.errors)
            assert.is_true(took < 5, "30 calls took " .. took .. " s")
            if mode == "async" then
                -- queued before any answer came back: each ends once,
                -- with the endpoints' errors; none is left pending
                for i = 1, 30 do assert.is_true(out[i].code == "EPARTIAL" or out[i].code == "EOFFLINE") end
                assert.equal(0, r.pending())
                local req, msg, d = r.try_send(t, 31)
                assert.is_nil(req) -- refused at once, nothing queued
                assert.equal("EOFFLINE", d.code)
                assert.matches("no endpoint is online", msg)
            else
                -- the first finds them down; the rest are refused at once
                for i = 2, 30 do assert.equal("EOFFLINE", out[i].code) end
            end
            local ok, msg, d = r.try_negotiate()
            assert.is_nil(ok)
            assert.equal("EOFFLINE", d.code)
            assert.matches("no endpoint is online", msg)
            for _, e in pairs(w.emu) do e:restart() end
        end)
    end)
end

M.json = cjson
return M
