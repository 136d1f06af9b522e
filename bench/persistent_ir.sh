#!/usr/bin/env bash
# bench/persistent_ir.sh: persistent-mode sends against their floor in
# instructions (callgrind), which other load on the machine does not
# disturb: the library's and the floor's instructions per send for
# broadcast, to_group and to_user (bench/persistent_ir.lua, the same work
# as bench/lua_send.lua and bench/persistent_floor.lua), each the
# difference of a run of 400 and one of 100 batches of 64 sends (the
# start-up cancels out).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp -d); port=$((26000 + RANDOM % 3000))
cleanup() { [ -f "$tmp/sink.pid" ] && kill "$(cat "$tmp/sink.pid")" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
cc -O2 -std=c99 bench/ws_sink.c -lcrypto -o "$tmp/ws_sink"
"$tmp/ws_sink" "$port" & echo $! > "$tmp/sink.pid"
sleep 0.2
# LUA=luajit (or lua5.1, lua5.3): the same under another interpreter
lua=${LUA:-lua5.4}
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="${SIGNALR_BUILD:-$root/build}/$lua/?.so;;"
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$lua" bench/persistent_ir.lua "$@" "$port" 2>&1 \
    | awk '/Collected/ { print $4 }'
}
echo "$lua:"
echo "| send | library instructions per send | floor | library / floor |"
echo "|---|---|---|---|"
for op in broadcast to_group to_user; do
  l=$(( ($(ir lib "$op" 400) - $(ir lib "$op" 100)) / (300 * 64) ))
  f=$(( ($(ir floor "$op" 400) - $(ir floor "$op" 100)) / (300 * 64) ))
  awk -v o="$op" -v l="$l" -v f="$f" 'BEGIN { printf "| %s | %d | %d | %.2f |\n", o, l, f, l / f }'
done
