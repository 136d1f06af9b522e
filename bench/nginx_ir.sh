#!/usr/bin/env bash
# Instructions per request of the nginx worker (callgrind), for the three
# handlers of bench/nginx_locations.conf: without the call, hub:broadcast
# over REST, hub:broadcast in persistent mode.  Deterministic where
# bench/nginx_broadcast.sh's req/s are not (load on the machine does not
# move it): user-space instructions only, so the kernel's share (the
# sockets) is not in it.  Under callgrind time runs ~50x slower, so the
# timers' work (the keep-alive pass every 0.25 s) weighs ~50x more per
# request than it does at full speed.  SECS (8) of wrk per handler.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
secs=${SECS:-8}
sink_port=$((21000 + RANDOM % 5000)); app_port=$((26000 + RANDOM % 5000)); ws_port=$((sink_port + 1))
vg=
pin0=()
. "$root/bench/nginx_sinks.sh"
cleanup() {
  [ -n "$vg" ] && kill "$vg" 2>/dev/null || true
  stop_sinks
  rm -rf "$tmp"
}
trap cleanup EXIT
command -v valgrind > /dev/null || { echo "nginx_ir: needs valgrind" >&2; exit 1; }
start_sinks
# render the configuration (run.sh starts nginx; stop it, run it under
# callgrind in the foreground, one process)
"$root/examples/openresty/run.sh" "$tmp/app" "$app_port" /etc/ssl/certs/ca-certificates.crt "$tmp/locations.conf"
sleep 0.3; nginx -p "$tmp/app" -c "$tmp/app/nginx.conf" -s stop; sleep 0.3
unset LUA_PATH LUA_CPATH LUA_PATH_5_1 LUA_CPATH_5_1 LUA_INIT
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" --dump-instr=no \
  nginx -p "$tmp/app" -c "$tmp/app/nginx.conf" -g 'daemon off; master_process off;' 2> "$tmp/vg.log" &
vg=$!
body='{"target":"newMessage","arguments":["hello",{"x":1}]}'
printf 'wrk.method = "POST"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$body" > "$tmp/post.lua"
up=0
for _ in $(seq 120); do
  curl -sf -m 5 --data-binary "$body" "http://127.0.0.1:$app_port/bench/noop" > /dev/null && { up=1; break; }
  sleep 0.5
done
[ "$up" = 1 ] || { echo "nginx_ir: nginx under callgrind did not answer" >&2; exit 1; }
# one location -> instructions per request (counters zeroed after a warm-up)
measure() {
  local n before after f
  curl -sf --data-binary "$body" "http://127.0.0.1:$app_port$1" > /dev/null
  wrk -t1 -c16 -d2s -s "$tmp/post.lua" "http://127.0.0.1:$app_port$1" > /dev/null
  callgrind_control -z "$vg" > /dev/null 2>&1
  n=$(wrk -t1 -c16 -d"${secs}s" -s "$tmp/post.lua" "http://127.0.0.1:$app_port$1" | awk '/requests in/ {print $1}')
  callgrind_control -d "$vg" > /dev/null 2>&1
  f=$(ls -t "$tmp"/cg.out.* | head -1)
  callgrind_annotate "$f" 2> /dev/null | awk -v n="$n" '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "%d", $1 / n }'
}
bare=$(measure /bench/noop); rest=$(measure /bench/rest); pers=$(measure /bench/pers)
errors=$(grep -c '\[error\]' "$tmp/app/logs/error.log" || true)
echo "nginx worker, user-space instructions per request (callgrind, wrk -c16 ${secs}s each):"
echo "  without the call: $bare"
awk -v a="$bare" -v b="$rest" 'BEGIN { printf "  REST hub:broadcast: %d (without / REST: %.2f)\n", b, a / b }'
awk -v a="$bare" -v b="$pers" 'BEGIN { printf "  persistent hub:broadcast: %d (without / persistent: %.2f)\n", b, a / b }'
echo "  errors logged: $errors"
