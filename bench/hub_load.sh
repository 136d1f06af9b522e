#!/usr/bin/env bash
# bench/hub_load.sh (make bench): the hub server under load, through the
# bundled emulator (Default mode), with real @microsoft/signalr clients:
# CLIENTS (1000) connected, INVOKING (200) of them calling Add at RATE (10)
# per second each on a fixed schedule for SECS (10) seconds, and one client
# that subscribes to a 6.4 MB/s feed (FEED_KB, 64 KB every 10 ms) and then
# reads nothing; STATE_HZ (0) adds a small state broadcast to everyone
# that many times a second.  The clients' process runs with a larger young
# generation (--max-semi-space-size=64): its own garbage collections
# otherwise put tens of ms into the round trips it measures.  Per round
# (fresh emulator and hub server, ROUNDS rounds, 3): the others' round
# trip p50/p99/max, the hub server's RSS before the stuck client chokes,
# at most and at the end, and whether the stuck client was closed (the
# emulator bounds what waits for one client, --max-client-buffer 1 MiB
# here, and tells the hub server, whose on_disconnected gets the reason).
# Targets (issue: hub servers, part 2): p99 < 20 ms, RSS bounded (growth
# under 64 MB), the stuck client closed.  Exit 1 on a wrong or failed
# call, a client that could not connect or was closed, or a stuck client
# left open.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=${CLIENTS:-1000}; invoking=${INVOKING:-200}; rate=${RATE:-10}; secs=${SECS:-10}
export STATE_HZ=${STATE_HZ:-0} FEED_KB=${FEED_KB:-64}
rounds=${ROUNDS:-3}; build=${SIGNALR_BUILD:-$root/build}
tmp=$(mktemp -d); port=$((33000 + RANDOM % 3000))
key=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH
cleanup() {
  for f in "$tmp"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
if [ ! -d spec/e2e/node_modules/@microsoft/signalr ]; then
  echo "spec/e2e/node_modules missing (make test installs it)" >&2; exit 1
fi
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/emulator/?.lua;$root/emulator/?/init.lua;;"
export LUA_CPATH="$build/lua5.4/?.so;;"
# a client per file descriptor, twice over (node, the emulator)
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"

median() { sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
  printf "%.2f (%.2f-%.2f)", m, a[1], a[NR] }'; }
field() { lua5.4 -e 'local j = require("cjson").decode(io.read("a")); local v = j
  for k in ("'"$1"'"):gmatch("[^.]+") do v = v[k] end
  if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end; print(v)'; }

: > "$tmp/p99"; : > "$tmp/growth"; : > "$tmp/lines"; status=0
echo "measuring: $rounds rounds of ${secs}s, $clients clients, $invoking invoking at $rate/s each ..." >&2
for i in $(seq 1 "$rounds"); do
  port=$((port + 1))
  lua5.4 bin/signalr-emulator --port "$port" --log-level error --service-mode default \
    --max-conns-per-ip 5000 --max-client-buffer 1048576 > "$tmp/emu.out" 2>&1 & echo $! > "$tmp/emu.pid"
  for _ in $(seq 1 100); do grep -q "Connection string" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
  cs="Endpoint=http://127.0.0.1;Port=$port;AccessKey=$key;Version=1.0;"
  AzureSignalRConnectionString=$cs lua5.4 bench/hub_load_app.lua 4 > "$tmp/app.out" 2>&1 & echo $! > "$tmp/app.pid"
  for _ in $(seq 1 100); do
    n=$(curl -s "http://127.0.0.1:$port/_emulator/servers" | grep -o '"carries_clients":true' | wc -l || true)
    [ "${n:-0}" -ge 4 ] && break; sleep 0.1
  done
  read -r url tok <<< "$(AzureSignalRConnectionString=$cs lua5.4 -e '
    local n = assert(assert(require("signalr").new(os.getenv("AzureSignalRConnectionString"))):hub("chat"):negotiate {})
    print(n.url, n.accessToken)')"
  out=$(NODE_PATH="$root/spec/e2e/node_modules" timeout $((secs + 120)) node --max-semi-space-size=64 bench/hub_load.js \
    "$url" "$tok" "$clients" "$invoking" "$rate" "$secs" "$(cat "$tmp/app.pid")")
  sleep 1
  stuck=$(echo "$out" | field stuck)
  closed=no
  grep -q "^disconnected $stuck .*does not read" "$tmp/app.out" && closed=yes
  kill "$(cat "$tmp/app.pid")" "$(cat "$tmp/emu.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  connected=$(echo "$out" | field connected); calls=$(echo "$out" | field calls)
  answered=$(echo "$out" | field answered); wrong=$(echo "$out" | field wrong); failed=$(echo "$out" | field failed)
  p50=$(echo "$out" | field p50_ms); p99=$(echo "$out" | field p99_ms); max=$(echo "$out" | field max_ms)
  before=$(echo "$out" | field rss_kb.before); top=$(echo "$out" | field rss_kb.max); fin=$(echo "$out" | field rss_kb.end)
  early=$(echo "$out" | field closed_early)
  echo "$p99" >> "$tmp/p99"
  awk -v a="$top" -v b="$before" 'BEGIN { printf "%.1f\n", (a - b) / 1024 }' >> "$tmp/growth"
  printf '| %d | %s | %s / %s | %s / %s / %s | %s / %s / %s | %s |\n' "$i" "$connected" "$answered" "$calls" \
    "$p50" "$p99" "$max" "$((before / 1024))" "$((top / 1024))" "$((fin / 1024))" "$closed" >> "$tmp/lines"
  if [ "$connected" != "$clients" ] || [ "$wrong" != 0 ] || [ "$failed" != 0 ] || [ "$answered" != "$calls" ] \
     || [ "$early" != 0 ] || [ "$closed" != yes ]; then
    echo "round $i failed: $out (stuck client closed: $closed)" >&2
    grep -v "^ready" "$tmp/app.out" | head -5 >&2 || true
    status=1
  fi
done
p99m=$(median < "$tmp/p99"); growth=$(median < "$tmp/growth")
cat <<OUT
Hub server under load: $clients clients connected (WebSockets, JSON), $invoking calling Add at $rate/s
each (open loop), a state broadcast ${STATE_HZ}/s to all, one client fed $((FEED_KB * 100)) KB/s that
reads nothing; through the emulator (Default mode, --max-client-buffer 1 MiB), 4 server
connections; $secs s per round.

| round | connected | answered / calls | round trip p50 / p99 / max ms | hub server RSS MB before / max / end | stuck client closed |
|---|---|---|---|---|---|
$(cat "$tmp/lines")

| figure | median (min-max) | target |
|---|---|---|
| the others' round trip p99 ms | $p99m | < 20 $(awk -v v="${p99m%% *}" 'BEGIN { print (v < 20) ? "met" : "missed" }') |
| hub server RSS growth MB (max - before) | $growth | < 64 $(awk -v v="${growth%% *}" 'BEGIN { print (v < 64) ? "met" : "missed" }') |
OUT
exit $status
