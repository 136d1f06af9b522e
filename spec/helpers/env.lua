--- Test environment: a real emulator process on a free loopback port, its
-- admin hooks (through the curl command), and a pool of real JS clients.
local cjson = require "cjson"

local M = {}
M.root = os.getenv("SIGNALR_ROOT") or "."
M.KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
-- Child processes (emulator, curl, node) run without the sanitizer
-- environment of `make asan`: only the library under test is instrumented.
M.CLEAN = "env -u LD_PRELOAD -u SIGNALR_BUILD -u ASAN_OPTIONS -u LSAN_OPTIONS "

local function read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end
M.read = read

function M.sleep(s) os.execute("sleep " .. s) end

local function tmpdir()
    local p = os.tmpname()
    os.remove(p)
    assert(os.execute("mkdir -p " .. p))
    return p
end

--- Poll fn() every 50 ms until it returns a truthy value or timeout (s).
function M.wait(fn, timeout, what)
    local deadline = os.time() + (timeout or 10)
    while true do
        local v = fn()
        if v then return v end
        if os.time() > deadline then error("timed out waiting for " .. (what or "condition"), 2) end
        M.sleep(0.05)
    end
end

local Emu = {}
Emu.__index = Emu

--- Start bin/signalr-emulator with extra arguments (on a free port, or
-- on `port`); returns the handle.
function M.emulator(args, port)
    local dir = tmpdir()
    local cmd = string.format(
        M.CLEAN .. "%s/bin/signalr-emulator --port %d --log-level %s %s > %s/out 2> %s/err & echo $! > %s/pid",
        M.root, port or 0, os.getenv("EMULATOR_LOG") or (os.getenv("SIGNALR_SCAN_DIR") and "debug" or "warn"),
        args or "", dir, dir, dir)
    assert(os.execute(cmd))
    local line = M.wait(function()
        local out = read(dir .. "/out") or ""
        return out:match("Connection string: ([^\n]+)\n")
    end, 10, "the emulator to start (" .. (read(dir .. "/err") or "") .. ")")
    local self = setmetatable({ dir = dir, cs = line, pid = read(dir .. "/pid"):match("%d+"),
                                args = args }, Emu)
    self.port = tonumber(line:match("Port=(%d+)"))
    self.base = "http://127.0.0.1:" .. self.port
    return self
end

-- Where the secrets scan of `make test` collects logs (SIGNALR_SCAN_DIR).
function M.keep_log(path, name)
    local dir = os.getenv("SIGNALR_SCAN_DIR")
    if dir and path then
        os.execute(string.format("mkdir -p '%s' && cp '%s' '%s/%s-%d.log' 2>/dev/null",
            dir, path, dir, name, math.random(1, 1e9)))
    end
end

function Emu:stop()
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    M.sleep(0.05)
    M.keep_log(self.dir .. "/err", "emulator")
end

--- Kill the emulator (SIGKILL: no goodbye to its clients) and wait until
-- its port refuses connections.
function Emu:kill()
    os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
    M.wait(function()
        return os.execute(M.CLEAN .. "curl -s -o /dev/null -m 1 -I " .. self.base .. "/api/health 2>/dev/null") ~= true
    end, 10, "the emulator to go away")
    M.keep_log(self.dir .. "/err", "emulator")
end

--- Start it again on the same port with the same arguments (and so the
-- same key): a service coming back.  Its state starts empty.
function Emu:restart()
    local fresh
    for _ = 1, 20 do
        local ok, e = pcall(M.emulator, self.args, self.port)
        if ok then fresh = e break end
        M.sleep(0.2)
    end
    assert(fresh, "the emulator did not come back on port " .. self.port)
    self.pid, self.dir = fresh.pid, fresh.dir
    return self
end

--- An admin or raw HTTP call with curl: returns status, body.
function Emu:http(method, path, body, headers)
    local args = { M.CLEAN .. "curl -s -o " .. self.dir .. "/body -w '%{http_code}' -X " .. method }
    if method == "HEAD" then args[1] = M.CLEAN .. "curl -s -I -o " .. self.dir .. "/body -w '%{http_code}'" end
    for k, v in pairs(headers or {}) do args[#args + 1] = "-H '" .. k .. ": " .. v .. "'" end
    if body then
        local f = assert(io.open(self.dir .. "/req", "wb"))
        f:write(body)
        f:close()
        args[#args + 1] = "--data-binary @" .. self.dir .. "/req"
    end
    args[#args + 1] = "'" .. self.base .. path .. "'"
    local p = io.popen(table.concat(args, " "))
    local status = tonumber(p:read("*a"))
    p:close()
    return status, read(self.dir .. "/body")
end

function Emu:requests()
    local _, body = self:http("GET", "/_emulator/requests")
    return cjson.decode(body)
end

function Emu:clear() self:http("DELETE", "/_emulator/requests") end

function Emu:last_request()
    local r = self:requests()
    return r[#r], #r
end

--- Inject a fault: { mode = "status"|"stall"|"reset", status, count, retry_after, ms }.
function Emu:fault(f)
    local status = self:http("POST", "/_emulator/faults", cjson.encode(f))
    assert(status == 204, "fault not accepted")
end

function Emu:stats()
    local _, body = self:http("GET", "/_emulator/stats")
    return cjson.decode(body)
end

-- ===== JS clients =====
local Pool = {}
Pool.__index = Pool

--- Start spec/e2e/clients.js (real @microsoft/signalr clients).
function M.clients(emu)
    local self = setmetatable({ dir = emu.dir, seen = 0 }, Pool)
    self.events_file = emu.dir .. "/events"
    self.proc = assert(io.popen(string.format(M.CLEAN .. "node %s/spec/e2e/clients.js > %s 2> %s/clients.err",
        M.root, self.events_file, emu.dir), "w"))
    return self
end

function Pool:send(cmd)
    self.proc:write(cjson.encode(cmd), "\n")
    self.proc:flush()
end

function Pool:events()
    local out = {}
    -- whole lines only: the clients may be writing the last one
    for line in (read(self.events_file) or ""):gmatch("([^\n]*)\n") do
        if line ~= "" then out[#out + 1] = cjson.decode(line) end
    end
    return out
end

--- Events of one kind (and name), in order.
function Pool:filter(ev, name)
    local out = {}
    for _, e in ipairs(self:events()) do
        if e.ev == ev and (not name or e.name == name) then out[#out + 1] = e end
    end
    return out
end

function Pool:messages(name) return self:filter("message", name) end

--- The arguments of client `name`'s messages, sync markers left out.
function Pool:got(name)
    local out = {}
    for _, m in ipairs(self:messages(name)) do
        if m.args[1] ~= "sync" then out[#out + 1] = m.args end
    end
    return out
end

--- send(marker) sends { "sync", marker } to every named client; then wait
-- until each has it: every message sent before it has then arrived (one
-- connection is ordered).
function Pool:sync(send, names)
    self.marker = (self.marker or 0) + 1
    local marker = self.marker
    send(marker)
    for _, n in ipairs(names) do
        M.wait(function()
            for _, m in ipairs(self:messages(n)) do
                if m.args[1] == "sync" and m.args[2] == marker then return true end
            end
        end, 10, n .. " to get sync " .. marker)
    end
end

--- How many messages client `name` got whose first argument is tag.
function Pool:count(name, tag)
    local n = 0
    for _, m in ipairs(self:messages(name)) do if m.args[1] == tag then n = n + 1 end end
    return n
end

--- Connect client `name` with a negotiate result; returns its connection id.
function Pool:connect(name, nego, targets, server_timeout, extra)
    local cmd = { cmd = "connect", name = name, url = nego.url, accessToken = nego.accessToken,
                  targets = targets or { "newMessage" }, serverTimeout = server_timeout }
    for k, v in pairs(extra or {}) do cmd[k] = v end
    self:send(cmd)
    local e = M.wait(function()
        for _, ev in ipairs(self:events()) do
            if ev.name == name and (ev.ev == "connected" or ev.ev == "failed") then return ev end
        end
    end, 15, "client " .. name .. " to connect")
    return e.connectionId, e.error
end

function Pool:quit()
    self:send { cmd = "quit" }
    self.proc:close()
end

return M
