#!/usr/bin/env bash
# make demo: start the bundled emulator and real SignalR clients, run
# examples/demo.lua with the library, show what each client received, and
# stop everything that was started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$root/build/lua5.4/?.so;;"
export NODE_PATH="$root/spec/e2e/node_modules"

echo "== starting the emulator (bin/signalr-emulator)"
bin/signalr-emulator --port 0 --log-level warn > "$tmp/emu.out" 2> "$tmp/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "Connection string:" "$tmp/emu.out" && break; sleep 0.1; done
AzureSignalRConnectionString=$(sed -n 's/^Connection string: //p' "$tmp/emu.out")
[ -n "$AzureSignalRConnectionString" ] || { cat "$tmp/emu.err"; exit 1; }
export AzureSignalRConnectionString
echo "   $AzureSignalRConnectionString"

echo "== negotiate: tokens for alice (two tabs), bob and carol from hub:negotiate"
lua5.4 - > "$tmp/tokens" <<'LUA'
local signalr = require "signalr"
local cjson = require "cjson"
local hub = assert(assert(signalr.new(os.getenv("AzureSignalRConnectionString"))):hub("chat"))
for _, c in ipairs { { "alice#1", "alice" }, { "alice#2", "alice" }, { "bob", "bob" }, { "carol", "carol" } } do
    local n = assert(hub:negotiate { user_id = c[2] })
    print(cjson.encode { name = c[1], url = n.url, accessToken = n.accessToken })
end
LUA
node examples/demo_clients.js "$tmp/tokens" > "$tmp/received" 2>&1 &
clients=$!
pids+=($clients)
for _ in $(seq 150); do [ "$(grep -c connected "$tmp/received" || true)" -ge 4 ] && break; sleep 0.1; done
grep connected "$tmp/received" | sed 's/^/   /'

echo "== examples/demo.lua (the library at work)"
lua5.4 examples/demo.lua

wait "$clients" || { echo "the clients did not finish:"; cat "$tmp/received"; exit 1; }
echo "== what each real SignalR client received"
grep -- "<-" "$tmp/received" | sort -s -t$'\t' -k1,1 | sed 's/^/   /'
echo "== done: emulator and clients stopped"
