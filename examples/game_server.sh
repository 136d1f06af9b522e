#!/usr/bin/env bash
# make demo-server: the bundled emulator in Default mode, the game server
# (examples/game_server.lua) behind it, and two real SignalR clients (JSON
# and MessagePack) that join a room and move for a few seconds; then what
# each saw, and everything started is stopped.  Exits non-zero when a
# client saw no state.
#   bash examples/game_server.sh [--luv] [SECONDS]     (SIGNALR_BUILD: the build, default build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${SIGNALR_BUILD:-$root/build}" 2>/dev/null && pwd) || { echo "no build at ${SIGNALR_BUILD:-build}: make all"; exit 1; }
cd "$root"
loop=""; [ "${1:-}" = "--luv" ] && { loop="--luv"; shift; }
seconds=${1:-4}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$build/lua5.4/?.so;;"
export NODE_PATH="$root/spec/e2e/node_modules"

echo "== starting the emulator (bin/signalr-emulator --service-mode default)"
bin/signalr-emulator --port 0 --log-level warn --service-mode default > "$tmp/emu.out" 2> "$tmp/emu.err" &
pids+=("$!")
for _ in $(seq 100); do grep -q "Connection string:" "$tmp/emu.out" && break; sleep 0.1; done
AzureSignalRConnectionString=$(sed -n 's/^Connection string: //p' "$tmp/emu.out")
[ -n "$AzureSignalRConnectionString" ] || { cat "$tmp/emu.err"; exit 1; }
export AzureSignalRConnectionString
port=$(echo "$AzureSignalRConnectionString" | sed -n 's/.*Port=\([0-9]*\).*/\1/p')

echo "== starting the game server (lua5.4 examples/game_server.lua${loop:+ $loop})"
lua5.4 examples/game_server.lua $loop > "$tmp/server.out" 2>&1 &
server=$!
pids+=("$server")
# ready when its two server connections are up at the emulator
for _ in $(seq 150); do
  n=$(curl -s "http://127.0.0.1:$port/_emulator/servers" | grep -o '"carries_clients":true' | wc -l || true)
  [ "$n" -ge 2 ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
[ "${n:-0}" -ge 2 ] || { echo "the game server did not connect:"; cat "$tmp/server.out"; exit 1; }

echo "== negotiate: tokens for alice (JSON) and bob (MessagePack) from hub:negotiate"
lua5.4 - > "$tmp/tokens" <<'LUA'
local signalr = require "signalr"
local cjson = require "cjson"
local hub = assert(assert(signalr.new(os.getenv("AzureSignalRConnectionString"))):hub("game"))
for _, c in ipairs { { "alice", "json", { 1, 0 } }, { "bob", "messagepack", { 0, 0.5 } } } do
    local n = assert(hub:negotiate { user_id = c[1] })
    print(cjson.encode { name = c[1], url = n.url, accessToken = n.accessToken, protocol = c[2],
                         room = "arena", move = c[3] })
end
LUA

echo "== two real SignalR clients play for $seconds s"
rc=0
node examples/game_server_clients.js "$tmp/tokens" "$seconds" > "$tmp/clients.out" 2>&1 &
clients=$!
pids+=("$clients")
wait "$clients" || rc=$?
sleep 0.3 # the server logs the leaves
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
echo "== what the game server printed"
sed 's/^/   /' "$tmp/server.out"
echo "== what each client saw"
sort -s -t$'\t' -k1,1 "$tmp/clients.out" | sed 's/^/   /'
# each client saw state ticks
[ "$(grep -c -E $'\tsaw [1-9][0-9]* state ticks' "$tmp/clients.out" || true)" -eq 2 ] || rc=1
if [ "$rc" -ne 0 ]; then echo "== FAILED: a client saw no state (or failed)"; exit 1; fi
echo "== done: emulator, game server and clients stopped"
