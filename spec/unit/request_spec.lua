-- signalr.request: request objects and the queue that reports each
-- outcome once, in order, whatever on_done does.  No network.
local request = require "signalr.request"

describe("signalr.request", function()
    it("a request prints its id, method and state", function()
        local q = request.queue()
        local r = q:request("broadcast")
        assert.equal("signalr.request #1 (broadcast, pending)", tostring(r))
        q:finish(r, nil, "boom", { code = "EHTTP" })
        q:report()
        assert.equal("signalr.request #1 (broadcast, failed)", tostring(r))
        assert.equal("signalr.broadcast: boom", r.error)
    end)

    it("reports in order, once, and counts what is pending", function()
        local seen = {}
        local q = request.queue(function(r) seen[#seen + 1] = r.id end)
        local a, b = q:request("to_user"), q:track(request.new(42, "to_group"))
        assert.equal(2, q.open)
        q:finish(b, true)
        q:settle(a, nil, "signalr.to_user: as is", { code = "ETIMEDOUT" })
        assert.is_true(q:waiting())
        assert.equal(2, q:report())
        assert.equal(0, q:report())
        assert.same({ 42, 1 }, seen)
        assert.equal(0, q.open)
        assert.is_true(b.done and b.result)
        assert.equal("signalr.to_user: as is", a.error)
    end)

    it("an on_done that raises: every outcome is still reported, then the first error", function()
        local n = 0
        local q = request.queue(function() n = n + 1 error("first " .. n, 0) end)
        for i = 1, 3 do q:finish(q:request("m" .. i), true) end
        assert.has_error(function() q:report() end, "first 1")
        assert.equal(3, n)
        assert.equal(0, q.open)
    end)

    it("full() says when size requests are pending", function()
        local q = request.queue(nil, 1)
        assert.is_nil(q:full("broadcast"))
        q:request("broadcast")
        local msg, d = q:full("broadcast")
        assert.equal("signalr.broadcast: queue full: 1 requests are pending; poll or flush before sending more", msg)
        assert.equal("EQUEUEFULL", d.code)
    end)

    it("drain() polls until nothing is pending, or gives up after its timeout", function()
        local q = request.queue()
        local r = q:request("x")
        local polls = 0
        assert.is_true(q:drain(function()
            polls = polls + 1
            if polls == 3 then q:finish(r, true) q:report() end
        end))
        assert.equal(3, polls)
        q:request("y")
        local ok, msg, d = q:drain(function() end, 0.05)
        assert.is_nil(ok)
        assert.equal("signalr.flush: 1 requests still pending after 0.05 s", msg)
        assert.same({ code = "ETIMEDOUT", pending = 1 }, d)
    end)

    it("closed() is the one answer of a closed client", function()
        local ok, msg, d = request.closed("to_group")
        assert.is_nil(ok)
        assert.equal("signalr.to_group: the client is closed (nothing was sent)", msg)
        assert.same({ code = "ECANCELED", sent = false }, d)
    end)
end)
