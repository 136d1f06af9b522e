#!/usr/bin/env bash
# make bench: everything in one run on loopback against one HTTP sink
# (nginx `return 202`), printing requests/s and the ratios of issue 6.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECS:-5}; conns=${CONNS:-16}
tmp=$(mktemp -d); port=$((21000 + RANDOM % 5000))
trap 'nginx -p "$tmp" -c "$tmp/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $tmp;
  server { listen 127.0.0.1:$port; keepalive_requests 1000000; location / { return 202; } } }
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf"
key=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH
export AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$port;AccessKey=$key;Version=1.0;"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$root/build/lua5.4/?.so;;"
url="http://127.0.0.1:$port/api/hubs/chat/:send?api-version=2022-06-01"
aud="http://127.0.0.1/api/hubs/chat/:send"
# the same ~100-byte message everybody sends
body='{"target":"newMessage","arguments":["player42",{"x":12.5,"y":7.25,"hp":87,"state":"running","team":"red"},"0123456789abcde"]}'
printf '%s' "$body" > "$tmp/body"
tok=$(lua5.4 -e "print(require('signalr.core').jwt_sign('{\"aud\":\"$aud\",\"exp\":4102444800}', '$key'))")
cat > "$tmp/wrk.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
wrk_rate() { wrk -t"$1" -c"$2" -d"${secs}s" -s "$tmp/wrk.lua" "$url" | awk '/Requests\/sec/ {print $2}'; }

echo "measuring, ${secs}s each ..." >&2
wrk1=$(wrk_rate 1 1)
wrkn=$(wrk_rate 2 "$conns")
blocking=$(lua5.4 bench/lua_send.lua blocking "$secs" | awk '{print $1}')
async=$(lua5.4 bench/lua_send.lua async "$secs" "$conns" | awk '{print $1}')
py=$(/usr/bin/python3 bench/peer_python.py "$url" "$aud" "$key" "$secs" "$tmp/body")
nd=$(NODE_PATH="$root/bench/node_modules" node bench/peer_node.js "$url" "$aud" "$key" "$secs" "$tmp/body")
cc -O2 -Icore/include bench/bench_build.c build/libsignalr.a -lcurl -lcrypto -lwslay -o "$tmp/bench_build"
cached_us=$("$tmp/bench_build" 300000 | sed -n 's/.*: \([0-9.]*\) us.*/\1/p')
sign_us=$("$tmp/bench_build" 300000 sign | sed -n 's/.*: \([0-9.]*\) us.*/\1/p')
ir() { # instructions per send inside run_loop, by callgrind
  valgrind --tool=callgrind --toggle-collect=run_loop --callgrind-out-file="$tmp/cg" \
    "$tmp/bench_build" 2000 "$1" > /dev/null 2>&1
  callgrind_annotate "$tmp/cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); printf "%d", $1 / 2000}'
}
ir_cached=$(ir cached); ir_sign=$(ir sign)
lua_cost=$(lua5.4 bench/lua_cost.lua 100000)

r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<OUT
| what | requests/s | ratio |
|---|---|---|
| wrk, 1 connection (the limit) | $wrk1 | 1.00 |
| wrk, $conns connections (the limit) | $wrkn | 1.00 |
| lua-signalr blocking hub:broadcast, 1 connection | $blocking | $(r "$blocking" "$wrk1") of wrk 1-conn (target >= 0.60) |
| lua-signalr async, $conns in flight | $async | $(r "$async" "$wrkn") of wrk $conns-conn (target >= 0.85) |
| Python requests + PyJWT, Session | $py | blocking is $(r "$blocking" "$py")x (target >= 5) |
| Node fetch + jsonwebtoken | $nd | blocking is $(r "$blocking" "$nd")x (target >= 2) |

Per-send CPU in the C core (100-byte arguments): build with the cached
token $cached_us us ($ir_cached instructions); sign + build $sign_us us
($ir_sign instructions; target <= 3 us).
In Lua (cjson of the arguments + the core): $(echo "$lua_cost" | sed -n 's/^json + build, cached.*: //p'), with a new signature $(echo "$lua_cost" | sed -n 's/^json + build + sign.*: //p').
$(echo "$lua_cost" | grep -E 'per client|per hub')
OUT
