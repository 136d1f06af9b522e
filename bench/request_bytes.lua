-- The cost of making a REST request's bytes in Lua, the two ways the nginx
-- transport has had: client:build (a table of fields and headers) with the
-- head assembled in Lua, against client:wire (the core's bytes, one string).
-- Run: LUA_CPATH="build/luajit/?.so;;" luajit bench/request_bytes.lua
-- Prints the microseconds per request of each, three times.
local core = require "signalr.core"
local c = assert(core.client("Endpoint=http://127.0.0.1;Port=8080;"
    .. "AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"))
local params = { hub = "chat", target = "newMessage", arguments = '["hello",{"x":1}]' }
local concat = table.concat
local function old()
    local req = c:build("broadcast", params, 1e9)
    local h = req.headers
    local host = req.host
    if (req.tls and req.port ~= 443) or (not req.tls and req.port ~= 80) then host = host .. ":" .. req.port end
    local lines = { req.method, " ", req.path, " HTTP/1.1\r\nHost: ", host,
                    "\r\nUser-Agent: ", h["User-Agent"], "\r\n" }
    if h["Asrs-User-Agent"] then lines[#lines + 1] = "Asrs-User-Agent: " .. h["Asrs-User-Agent"] .. "\r\n" end
    if h.Authorization then lines[#lines + 1] = "Authorization: " .. h.Authorization .. "\r\n" end
    if h["Content-Type"] then lines[#lines + 1] = "Content-Type: " .. h["Content-Type"] .. "\r\n" end
    lines[#lines + 1] = "Content-Length: " .. #req.body .. "\r\n"
    lines[#lines + 1] = "\r\n"
    lines[#lines + 1] = req.body
    return concat(lines)  -- (cosockets' send takes the table; the concat stands for its copy)
end
local function new() return (c:wire("broadcast", params, 1e9)) end
local N = 200000
for _ = 1, 3 do
  local t = os.clock(); for _ = 1, N do old() end; local a = (os.clock() - t) / N * 1e6
  t = os.clock(); for _ = 1, N do new() end; local b = (os.clock() - t) / N * 1e6
  print(string.format("build + Lua head %.2f us, wire %.2f us", a, b))
end
