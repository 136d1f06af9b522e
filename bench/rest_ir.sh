#!/usr/bin/env bash
# bench/rest_ir.sh: REST sends in instructions (callgrind), which other
# load on the machine does not disturb: instructions per send of the
# library (bench/lua_send.lua, as bench/cpu.sh runs it) against the C
# API alone (bench/csend.c, as bench/cpu.sh's "C API" lines), blocking
# and async with 16 in flight, to an nginx sink that answers 202.  Each
# figure is the difference of a run of 4000 sends and one of 1000 (the
# start-up cancels out).  User-space instructions only: the kernel's
# share of a send (the same for both) is not counted.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp -d); port=$((21000 + RANDOM % 5000))
trap 'nginx -p "$tmp" -c "$tmp/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $tmp;
  server { listen 127.0.0.1:$port; keepalive_requests 1000000; location / { return 202; } } }
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf"
build=${SIGNALR_BUILD:-$root/build}
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$build/lua5.4/?.so;;"
export AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$port;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
cc -O2 -I"$root/core/include" bench/csend.c "$build/libsignalr.a" -lcurl -lcrypto -lwslay -o "$tmp/csend"
# ir N CMD...: instructions of CMD making N sends (SENDS=N)
ir() { local n=$1; shift; SENDS=$n valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 \
  | awk '/Collected/ { print $4 }'; }
per() { echo $(( ($(ir 4000 "$@") - $(ir 1000 "$@")) / 3000 )); }
echo "| mode | library instructions per send | C API alone | library / C API |"
echo "|---|---|---|---|"
for mode in blocking async; do
  l=$(per lua5.4 bench/lua_send.lua "$mode" 0 16)
  c=$(per "$tmp/csend" "$mode")
  awk -v m="$mode" -v l="$l" -v c="$c" 'BEGIN { printf "| %s | %d | %d | %.2f |\n", m, l, c, l / c }'
done
