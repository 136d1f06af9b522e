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
    function r.try_send(t, i) return hub:broadcast("newMessage", { t, i }) end
    function r.try_negotiate() return hub:negotiate() end
    function r.pending() return client:pending() end
    function r.close() client:close() end
    return r
end

local bdd = { describe = describe, it = it, setup = setup, teardown = teardown,
              before_each = before_each }
for _, mode in ipairs { "blocking", "async" } do
    matrix.suite(mode, function(w) return runner(mode, w) end, bdd)
end
