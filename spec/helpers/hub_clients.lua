--- Driving real clients of a hub server (spec/e2e/clients.js through
-- helpers.env's pool): connect with a negotiate from a REST hub, invoke
-- and wait for the answer, collect a stream's items.
local env = require "helpers.env"

local M = {}

--- Helpers over `pool`; `rest` is the hub whose negotiate gives clients
-- their URL and token (a connect may name another).
function M.new(pool, rest)
    local self = { n = 0 }
    local function fresh(prefix)
        self.n = self.n + 1
        return prefix .. self.n
    end
    self.fresh = fresh

    --- Connect a client of user (extra: protocol, transport, results...):
    -- its name and connection id.
    function self.connect(user, extra, via)
        local name = fresh(user)
        local id, err = pool:connect(name, assert((via or rest):negotiate { user_id = user }), nil, nil, extra)
        assert(id, err)
        return name, id
    end

    --- Start an invocation: its id.
    function self.start_call(name, target, ...)
        local id = fresh("q")
        pool:send { cmd = "call", name = name, id = id, target = target, args = { ... } }
        return id
    end

    --- The answer (result or call_failed event) to invocation id.
    function self.answer(name, id, secs, what)
        return env.wait(function()
            for _, e in ipairs(pool:events()) do
                if e.name == name and e.id == id and (e.ev == "result" or e.ev == "call_failed") then
                    return e
                end
            end
        end, secs or 10, what or id)
    end

    --- Invoke and wait for the answer.
    function self.call(name, target, ...)
        return self.answer(name, self.start_call(name, target, ...), 10, target .. " to answer")
    end

    --- The items client name got on stream id, in order.
    function self.items(name, id)
        local items = {}
        for _, e in ipairs(pool:filter("stream_item", name)) do
            if e.id == id then items[#items + 1] = e.item end
        end
        return items
    end

    --- Wait for the end of stream id: its stream_done event.
    function self.stream_done(name, id)
        return env.wait(function()
            for _, e in ipairs(pool:filter("stream_done", name)) do if e.id == id then return e end end
        end, 10, "the stream's end")
    end
    return self
end

return M
