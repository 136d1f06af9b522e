-- Instructions per send for bench/persistent_ir.sh (under callgrind): N
-- batches of 64 sends, by the library (as bench/lua_send.lua sends) or
-- by the floor (as bench/persistent_floor.lua does), to bench/ws_sink.c.
-- argv: lib|floor OP N PORT; OP: broadcast, to_group or to_user
local signalr = require "signalr"
local core = require "signalr.core"
local SP = core.sp
local ARGS = { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" }, "0123456789abcde" }
local which, op, N, port = arg[1], arg[2], tonumber(arg[3]), arg[4]
local B = 64
if which == "lib" then
  local client = assert(signalr.new { mode = "persistent", server_timeout = 600, connection_string =
    "Endpoint=http://127.0.0.1;Port=" .. port
        .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;" })
  local hub = client:hub("chat")
  assert(hub:broadcast("newMessage", ARGS)); assert(client:flush(10))
  for _ = 1, N do
    if op == "broadcast" then for _ = 1, B do hub:broadcast("newMessage", ARGS) end
    elseif op == "to_group" then for _ = 1, B do hub:to_group("group1", "newMessage", ARGS) end
    else for _ = 1, B do hub:to_user("user1", "newMessage", ARGS) end end
    local _, bytes = client:pending()
    client:poll(bytes > 1024 * 1024 and 0.001 or 0)
  end
  assert(client:flush(10))
else
  local sock = assert(core.sock("http://127.0.0.1:" .. port .. "/", 5000, false, nil))
  while not assert(sock:connect()) do end
  local ws = assert(core.ws("127.0.0.1:" .. port, "/server/?hub=chat", "Authorization: Bearer x\r\n"))
  assert(ws:send(core.sp_handshake(SP.WEAK_CONNECTION)))
  repeat assert(sock:pump(ws)) until #ws:messages() > 0
  local sp_send, concat = core.sp_send, table.concat
  local ty = ({ broadcast = SP.BROADCAST, to_group = SP.GROUP_BROADCAST, to_user = SP.USER_DATA })[op]
  local id = ({ to_group = "group1", to_user = "user1" })[op]
  local batch = {}
  for _ = 1, N do
    for i = 1, B do batch[i] = sp_send(ty, id, "newMessage", ARGS, 3, 16777216) end
    ws:send(concat(batch, "", 1, B))
    local _, ww = sock:write(ws)
    while ww do _, ww = sock:pump(ws) end
  end
end
