--- The fault matrix of spec/faults/: three emulators (endpoints "eu" and
-- "us", primary, and "ap", secondary), a real JS client on each that
-- negotiated through the library, and the bookkeeping: for every send and
-- every endpoint, what the call reported against what that endpoint's
-- client received.
local env = require "helpers.env"
local cjson = require "cjson"
local assert = require "luassert"

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
                local key = ep .. ":" .. tostring(s.code) .. (s.status and ("/" .. s.status) or "")
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

M.json = cjson
return M
