--- A real forward proxy for specs: tinyproxy (Debian's package) on a
-- free loopback port, plain HTTP forwarding and CONNECT tunnels, with its
-- log read back to count what went through it.
local env = require "helpers.env"

local M = {}

local Proxy = {}
Proxy.__index = Proxy

-- A port nothing listens on now (bound, then released).
local function free_port()
    local s = require("cqueues.socket").listen("127.0.0.1", 0)
    assert(s:listen())
    local _, _, port = s:localname()
    s:close()
    return port
end

--- Start tinyproxy; returns the handle (`url`, `port`).
function M.start()
    local p = os.tmpname()
    os.remove(p)
    assert(os.execute("mkdir -p " .. p))
    for _ = 1, 5 do
        local self = setmetatable({ dir = p, port = free_port() }, Proxy)
        local f = assert(io.open(p .. "/conf", "wb"))
        f:write("Port ", self.port, "\nListen 127.0.0.1\nTimeout 60\nLogFile \"", p, "/log\"\n",
            "LogLevel Info\nMaxClients 100\nAllow 127.0.0.1\nDisableViaHeader Yes\n")
        f:close()
        os.remove(p .. "/log")
        assert(os.execute(env.CLEAN .. "tinyproxy -d -c " .. p .. "/conf > " .. p .. "/out 2>&1 & echo $! > "
            .. p .. "/pid"))
        self.pid = env.read(p .. "/pid"):match("%d+")
        local up = pcall(env.wait, function()
            return (env.read(p .. "/log") or ""):find("listening on", 1, true)
                or (env.read(p .. "/log") or ""):find("Listening on", 1, true)
                or os.execute(env.CLEAN .. "curl -s -o /dev/null -m 1 http://127.0.0.1:" .. self.port
                    .. "/ 2>/dev/null")
        end, 5, "tinyproxy to listen")
        if up then
            self.url = "http://127.0.0.1:" .. self.port
            self:clear()
            return self
        end
        self:stop()
    end
    error("tinyproxy did not start")
end

--- What went through since the last clear: a list of request lines
-- ("POST http://127.0.0.1:1234/api/... HTTP/1.1", "CONNECT host:port HTTP/1.1").
function Proxy:requests()
    local out, n = {}, 0
    for line in ((env.read(self.dir .. "/log") or "") .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        local req = line:match("Request %(file descriptor %d+%): (.+)$")
        if n > (self.skip or 0) and req then out[#out + 1] = req end
    end
    return out
end

--- The requests whose line matches `pattern`.
function Proxy:matching(pattern)
    local out = {}
    for _, r in ipairs(self:requests()) do
        if r:find(pattern) then out[#out + 1] = r end
    end
    return out
end

--- Forget what went through so far.
function Proxy:clear()
    local n = 0
    for _ in ((env.read(self.dir .. "/log") or "") .. "\n"):gmatch("[^\n]*\n") do n = n + 1 end
    self.skip = n
end

function Proxy:stop()
    if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
    self.pid = nil
end

return M
