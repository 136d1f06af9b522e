-- The floor of a persistent-mode send for bench/persistent.sh: only the
-- work no implementation can skip, straight on the binding (no client,
-- no hub, no pool): the same Lua arguments into a frame in the
-- binding's one call (core.sp_send: their JSON and MessagePack in one
-- walk, the core's frame encoder, as the library does when clients may
-- speak either), masking
-- (ws:send), and one write per BATCH sends (sock:write), the batches the
-- library makes when its caller polls every 64 sends.
-- argv: floor OP SECONDS PORT -> prints "sends/s cpu_us_per_send"
--       frame OP             -> writes OP's frame to stdout (bench/ws_wire.c)
-- OP: broadcast, to_group or to_user (the same as bench/lua_send.lua's).
local core = require "signalr.core"
local SP = core.sp
local what, op, secs, port = arg[1], arg[2], tonumber(arg[3]), arg[4]
local ARGS = { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" }, "0123456789abcde" }
local BATCH = 64
local SPEC = {
    broadcast = { SP.BROADCAST, nil },
    to_group = { SP.GROUP_BROADCAST, "group1" },
    to_user = { SP.USER_DATA, "user1" },
}
local spec = assert(SPEC[op], "OP: broadcast, to_group or to_user")
local ty, id = spec[1], spec[2]
local PROTOCOLS, MAX = SP.JSON + SP.MESSAGEPACK, 1024 * 1024
local sp_send, concat = core.sp_send, table.concat

if what == "frame" then
    io.write(assert(sp_send(ty, id, "newMessage", ARGS, PROTOCOLS, MAX)))
    return
end

-- a server connection to the sink: the upgrade, the handshake
local sock = assert(core.sock("http://127.0.0.1:" .. port .. "/", 5000, false, nil))
local t = core.monotonic()
while not assert(sock:connect()) do
    assert(core.monotonic() - t < 5, "no connection")
end
local ws = assert(core.ws("127.0.0.1:" .. port, "/server/?hub=chat", "Authorization: Bearer x\r\n"))
assert(ws:send(core.sp_handshake(SP.WEAK_CONNECTION)))
repeat
    assert(sock:pump(ws))
    local msgs = ws:messages()
until #msgs > 0 and msgs[1].type == SP.HANDSHAKE_RESPONSE

local batch, n = {}, 0
local t0, c0 = core.monotonic(), os.clock()
while core.monotonic() - t0 < secs do
    for i = 1, BATCH do
        batch[i] = sp_send(ty, id, "newMessage", ARGS, PROTOCOLS, MAX)
    end
    ws:send(concat(batch, "", 1, BATCH))
    local ok, want_write = sock:write(ws)
    assert(ok)
    n = n + BATCH
    while want_write do -- the socket is full: wait until it drains
        ok, want_write = sock:pump(ws)
        assert(ok)
    end
end
while ws:unsent() > 0 do assert(sock:pump(ws)) end
print(string.format("%.1f %.3f", n / (core.monotonic() - t0), (os.clock() - c0) / n * 1e6))
sock:close()
ws:free()
