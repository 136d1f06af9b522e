-- signalr.loop: the event-loop contract's check and its helpers, over
-- stand-in members; the adapters accept any object of the contract.  No
-- network (the adapters themselves run in spec/e2e/loop_spec.lua).
local loop = require "signalr.loop"

local function member(due, fds)
    local m = { polls = 0 }
    function m.poll(_, s) m.polls = m.polls + 1 m.last = s return 0 end
    function m.pollfd() return nil end
    function m.timeout() return due end
    function m.fds() return fds or {} end
    return m
end

describe("signalr.loop", function()
    describe("check()", function()
        it("takes any object with poll, pollfd and timeout", function()
            loop.check(member(), "x")
        end)
        it("raises on anything else, naming the caller", function()
            for _, bad in ipairs { 5, {}, { pollfd = print } } do
                assert.has_error(function() loop.check(bad, "signalr.loop.luv.attach") end,
                    "signalr.loop.luv.attach: expected a signalr client (or an object with poll, pollfd and timeout)")
            end
        end)
        it("is what the adapters check", function()
            assert.has_error(function() require("signalr.loop.luv").attach({}, {}) end,
                "signalr.loop.luv.attach: expected a signalr client (or an object with poll, pollfd and timeout)")
            assert.has_error(function() require("signalr.loop.cqueues").attach(5, {}) end,
                "signalr.loop.cqueues.attach: expected a signalr client (or an object with poll, pollfd and timeout)")
        end)
    end)

    describe("group()", function()
        it("is one loop object over its members", function()
            local a, b = member(2, { { fd = 7, read = true, write = false } }), member(0.5)
            local g = loop.group { a, b }
            assert.equal(0.5, g:due())
            assert.same({ { fd = 7, read = true, write = false } }, g:fds())
            g:step()
            assert.same({ 1, 1 }, { a.polls, b.polls })
            assert.same({ 0, 0 }, { a.last, b.last })
            g:wait(0.01)
            g:close()
        end)
        it("has no timeout when no member has one", function()
            assert.is_nil(loop.group({ member(), member() }):due())
        end)
    end)

    describe("sockets()", function()
        it("has no descriptor while there is no socket to watch, and waits for nothing then", function()
            local s = loop.sockets()
            local fd = s:fd({})
            assert.is_true(fd == nil or type(fd) == "number")
            s:wait({}, 0)
            s:close()
        end)
    end)

    it("earliest() picks the earlier of two timeouts", function()
        assert.equal(1, loop.earliest(1, 2))
        assert.equal(2, loop.earliest(nil, 2))
        assert.is_nil(loop.earliest(nil, nil))
    end)
end)
