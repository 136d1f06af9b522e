#!/usr/bin/env bash
# bench/cpu.sh (make bench): CPU per send of the sending process against
# wrk's CPU per request on the same route, in one run on loopback, as the
# median of ROUNDS rounds with the spread.  Ratio = wrk's CPU per request
# / ours (1.00: as lean as wrk).  Also sends/s against wrk on a sink that
# answers after 10 ms (latency-bound), and the same sends made through
# the C API alone (no Lua), which tells the transport's share from the Lua
# layer's.  Targets: the lean send path
# issue's (>= 0.6 CPU ratio blocking and async, >= 0.95 latency-bound).
# Then memory (resident set, /proc/self/statm): per idle client (one send
# made, its keep-alive connection kept), per 10k async requests queued,
# and 100k-send soaks (blocking and async) sampled on the way.
# Knobs: ROUNDS (5), SECS per line (3), MEM_ROUNDS (3), SOAK sends (100000),
# SIGNALR_BUILD (the build directory whose lua5.4/signalr/core.so is
# measured; default build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECS:-3}; rounds=${ROUNDS:-5}; mem_rounds=${MEM_ROUNDS:-3}; soak=${SOAK:-100000}
tmp=$(mktemp -d); port=$((21000 + RANDOM % 5000)); sport=$((port + 1))
trap 'nginx -p "$tmp" -c "$tmp/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"
cat > "$tmp/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $tmp;
  server { listen 127.0.0.1:$port; keepalive_requests 1000000; location / { return 202; } }
  server { listen 127.0.0.1:$sport; keepalive_requests 1000000;
    location / { content_by_lua_block { ngx.sleep(0.01) ngx.exit(202) } } } }
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf"
key=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH
build=${SIGNALR_BUILD:-$root/build}
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$build/lua5.4/?.so;;"
body='{"target":"newMessage","arguments":["player42",{"x":12.5,"y":7.25,"hp":87,"state":"running","team":"red"},"0123456789abcde"]}'
tok=$(lua5.4 -e "print(require('signalr.core').jwt_sign('{\"aud\":\"x\",\"exp\":4102444800}', '$key'))")
cat > "$tmp/wrk.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
lean="http://127.0.0.1:$port/api/hubs/chat/:send?api-version=2022-06-01"
slow="http://127.0.0.1:$sport/api/hubs/chat/:send?api-version=2022-06-01"
# wrk THREADS CONNS URL -> "req/s cpu_us_per_request"
wrk_cpu() {
  /usr/bin/time -f "%U %S" -o "$tmp/time" wrk -t"$1" -c"$2" -d"${secs}s" -s "$tmp/wrk.lua" "$3" > "$tmp/wrk.out"
  local n rate
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out"); rate=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
  awk -v n="$n" -v r="$rate" '{ printf "%s %.2f", r, ($1 + $2) / n * 1e6 }' "$tmp/time"
}
# ours MODE INFLIGHT PORT -> "sends/s cpu_us_per_send"
ours() {
  AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$3;AccessKey=$key;Version=1.0;" \
    lua5.4 bench/lua_send.lua "$1" "$secs" "$2"
}
# The same sends through the C API alone (no Lua): what the transport
# costs, apart from the Lua layer above it.  csend MODE -> "sends/s cpu_us"
cc -O2 -I"$root/core/include" bench/csend.c "$build/libsignalr.a" -lcurl -lcrypto -lwslay -o "$tmp/csend"
csend() {
  AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$port;AccessKey=$key;Version=1.0;" \
    "$tmp/csend" "$1" "$secs"
}
median() { sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
  printf "%.2f (%.2f-%.2f)", m, a[1], a[NR] }'; }
: > "$tmp/r_async"; : > "$tmp/r_block"; : > "$tmp/r_slow"; : > "$tmp/lines"
: > "$tmp/r_casync"; : > "$tmp/r_cblock"
echo "measuring: $rounds rounds, ${secs}s per line ..." >&2
for i in $(seq 1 "$rounds"); do
  read -r w16 w16c <<< "$(wrk_cpu 1 16 "$lean")"
  read -r a16 a16c <<< "$(ours async 16 "$port")"
  read -r w1 w1c <<< "$(wrk_cpu 1 1 "$lean")"
  read -r b1 b1c <<< "$(ours blocking 1 "$port")"
  read -r ca16 ca16c <<< "$(csend async)"
  read -r cb1 cb1c <<< "$(csend blocking)"
  read -r w64 _ <<< "$(wrk_cpu 1 64 "$slow")"
  read -r a64 _ <<< "$(ours async 64 "$sport")"
  awk -v a="$w16c" -v b="$a16c" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/r_async"
  awk -v a="$w16c" -v b="$ca16c" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/r_casync"
  awk -v a="$w1c" -v b="$cb1c" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/r_cblock"
  awk -v a="$w1c" -v b="$b1c" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/r_block"
  awk -v a="$a64" -v b="$w64" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/r_slow"
  printf '| %d | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s | %s | %s |\n' "$i" \
    "$w16" "$w16c" "$a16" "$a16c" "$ca16" "$ca16c" "$w1" "$w1c" "$b1" "$b1c" "$cb1" "$cb1c" \
    "$w64" "$a64" >> "$tmp/lines"
done
cat <<OUT
Rounds (req/s / CPU µs per request or send):

| round | wrk -t1 -c16 | async, 16 in flight | C API async | wrk -t1 -c1 | blocking | C API blocking | wrk -t1 -c64, 10 ms sink (req/s) | async, 64 in flight, 10 ms sink (sends/s) |
|---|---|---|---|---|---|---|---|---|
$(cat "$tmp/lines")

| ratio (median of $rounds, min-max) | value | target |
|---|---|---|
| CPU per request, wrk -c16 / CPU per send, async 16 in flight | $(median < "$tmp/r_async") | >= 0.6 |
| CPU per request, wrk -c1 / CPU per send, blocking | $(median < "$tmp/r_block") | >= 0.6 |
| sends/s async 64 in flight / wrk -c64, 10 ms sink | $(median < "$tmp/r_slow") | >= 0.95 |
| (no Lua) wrk -c16 / the C API, async 16 in flight | $(median < "$tmp/r_casync") | |
| (no Lua) wrk -c1 / the C API, blocking | $(median < "$tmp/r_cblock") | |
OUT

# ---- memory ----
cat > "$tmp/mem.lua" <<'LUA'
-- argv: what (idle | queued | soak-blocking | soak-async) [n]
local signalr = require "signalr"
local what, n = arg[1], tonumber(arg[2] or "0")
local cs = os.getenv("AzureSignalRConnectionString")
local ARGS = { "player42", { x = 12.5, y = 7.25, hp = 87, state = "running", team = "red" }, "0123456789abcde" }
local function rss_kb()
    local f = assert(io.open("/proc/self/statm"))
    f:read("*n")
    local pages = f:read("*n")
    f:close()
    return pages * 4
end
local function settle() collectgarbage() collectgarbage() end
if what == "idle" then
    -- n clients, each after one send: its connection open and idle
    local keep = {}
    local c = assert(signalr.new { connection_string = cs, retries = 0 })
    assert(c:hub("chat"):broadcast("newMessage", ARGS)) -- the first one's set-up is not counted
    settle()
    local r0 = rss_kb()
    for i = 1, n do
        keep[i] = assert(signalr.new { connection_string = cs, retries = 0 })
        assert(keep[i]:hub("chat"):broadcast("newMessage", ARGS))
    end
    settle()
    print(string.format("%.1f", (rss_kb() - r0) / n))
elseif what == "queued" then
    -- 10k requests queued at once (16 connections carry them as they can)
    local c = assert(signalr.new { connection_string = cs, async = true, retries = 0,
        queue_size = 20000, max_connections = 16 })
    local hub = c:hub("chat")
    for _ = 1, 64 do assert(hub:broadcast("newMessage", ARGS)) end
    assert(c:flush(10)) -- connections open, buffers grown
    settle()
    local r0 = rss_kb()
    for _ = 1, 10000 do assert(hub:broadcast("newMessage", ARGS)) end
    local r1 = rss_kb()
    assert(c:flush(30))
    print(string.format("%.0f", r1 - r0))
else
    -- n sends; RSS after 10%, 50% and all of them
    local marks, out = { [n // 10] = true, [n // 2] = true, [n] = true }, {}
    if what == "soak-blocking" then
        local hub = assert(signalr.new { connection_string = cs, retries = 0 }):hub("chat")
        for i = 1, n do
            assert(hub:broadcast("newMessage", ARGS))
            if marks[i] then settle(); out[#out + 1] = rss_kb() end
        end
    else
        local c = assert(signalr.new { connection_string = cs, async = true, retries = 0,
            max_connections = 16, queue_size = 32 })
        local hub = c:hub("chat")
        local i = 0
        while i < n do
            while c:pending() < 32 and i < n do
                assert(hub:broadcast("newMessage", ARGS))
                i = i + 1
                if marks[i] then assert(c:flush(10)); settle(); out[#out + 1] = rss_kb() end
            end
            c:poll(0.01)
        end
        assert(c:flush(10))
    end
    print(table.concat(out, " "))
end
LUA
mem() { AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$port;AccessKey=$key;Version=1.0;" \
    lua5.4 "$tmp/mem.lua" "$@"; }
echo "measuring memory: $mem_rounds rounds, soaks of $soak sends ..." >&2
: > "$tmp/m_idle"; : > "$tmp/m_queued"
for _ in $(seq 1 "$mem_rounds"); do
  mem idle 200 >> "$tmp/m_idle"
  mem queued >> "$tmp/m_queued"
done
read -r sb1 sb5 sb10 <<< "$(mem soak-blocking "$soak")"
read -r sa1 sa5 sa10 <<< "$(mem soak-async "$soak")"
cat <<OUT

Memory (resident set; median of $mem_rounds, min-max):

| what | value |
|---|---|
| per idle client, after one send (connection kept), 200 clients | $(median < "$tmp/m_idle") KiB |
| per 10k async requests queued at once (Lua request objects included) | $(median < "$tmp/m_queued") KiB |
| blocking soak, RSS after $((soak / 10)) / $((soak / 2)) / $soak sends | $sb1 / $sb5 / $sb10 KiB |
| async soak (16 in flight), RSS after $((soak / 10)) / $((soak / 2)) / $soak sends | $sa1 / $sa5 / $sa10 KiB |
OUT
