#!/usr/bin/env bash
# bench/persistent.sh (make bench): persistent mode (server connections,
# one WebSocket frame per message) against the REST async mode, in one
# run on loopback: sends/s and CPU per send of the sending process, the
# median of ROUNDS rounds with the spread, to two kinds of peer:
#   - lean sinks that do the least each protocol needs (nginx answering
#     202 for REST; bench/ws_sink.c for the server connection);
#   - the bundled emulator, which delivers to no client here.
# Targets (issue 16): persistent >= 5x REST async sends/s, <= 1/3 of its
# CPU per send.
#
# Then persistent mode against its limits, in the same rounds, for
# hub:broadcast, hub:to_group and hub:to_user (the same message), CPU per
# send of the sending process:
#   (a) the wire limit: bench/ws_wire.c writes the same frame, encoded
#       and masked once, 64 WebSocket messages per write;
#   (b) the floor: bench/persistent_floor.lua does only a send's
#       unavoidable work on the binding (encode the Lua arguments, the
#       core's frame encoder, masking, one write per 64 sends);
# target (issue 29): the library <= 1.5x (b); its ratio to (a) printed.
#
# Then memory (bench/persistent_mem.lua, resident set): 10k sends queued
# while the connection waits for its handshake, 10k sends on an open
# connection the network does not take (the sink stopped), medians of
# MEM_ROUNDS (3); and a soak of SOAK (1,000,000) hub:broadcast sends with
# the RSS sampled every tenth.
# COMPARE=0 skips the REST comparison; LIMITS=0 the limits; MEM=0 memory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECS:-3}; rounds=${ROUNDS:-5}
tmp=$(mktemp -d); port=$((26000 + RANDOM % 3000)); wport=$((port + 1)); eport=$((port + 2))
cleanup() {
  nginx -p "$tmp" -c "$tmp/nginx.conf" -s stop 2>/dev/null || true
  [ -f "$tmp/sink.pid" ] && kill "$(cat "$tmp/sink.pid")" 2>/dev/null || true
  [ -f "$tmp/emu.pid" ] && kill "$(cat "$tmp/emu.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/logs"
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $tmp;
  server { listen 127.0.0.1:$port; keepalive_requests 1000000; location / { return 202; } } }
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf"
cc -O2 -std=c99 bench/ws_sink.c -lcrypto -o "$tmp/ws_sink"
cc -O2 -std=c99 bench/ws_wire.c -o "$tmp/ws_wire"
"$tmp/ws_sink" "$wport" & echo $! > "$tmp/sink.pid"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/emulator/?.lua;$root/emulator/?/init.lua;;"
export LUA_CPATH="$root/build/lua5.4/?.so;;"
lua5.4 bin/signalr-emulator --port "$eport" --log-level error > "$tmp/emu.out" 2>&1 & echo $! > "$tmp/emu.pid"
for _ in $(seq 1 50); do grep -q "Connection string" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
key=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH
# ours MODE PORT [OP] -> "sends/s cpu_us_per_send"
ours() {
  AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$2;AccessKey=$key;Version=1.0;" \
    lua5.4 bench/lua_send.lua "$1" "$secs" 16 "${3:-broadcast}"
}
ops="broadcast to_group to_user"
for op in $ops; do lua5.4 bench/persistent_floor.lua frame "$op" > "$tmp/frame_$op"; done
# median [FORMAT]: the median of the numbers read, with their spread
median() { sort -g | awk -v f="${1:-%.2f}" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
  printf f " (" f "-" f ")", m, a[1], a[NR] }'; }
for f in lean_rate lean_cpu emu_rate emu_cpu; do : > "$tmp/$f"; done
: > "$tmp/lines"; : > "$tmp/limit_lines"
for op in $ops; do for f in floor wire lib_floor lib_wire lib_cpu floor_cpu wire_cpu; do : > "$tmp/${f}_$op"; done; done
echo "measuring: $rounds rounds, ${secs}s per line ..." >&2
for i in $(seq 1 "$rounds"); do
  if [ "${LIMITS:-1}" != 0 ]; then
    for op in $ops; do
      read -r wr wc <<< "$("$tmp/ws_wire" "$wport" "$secs" "$tmp/frame_$op")"
      read -r fr fc <<< "$(lua5.4 bench/persistent_floor.lua floor "$op" "$secs" "$wport")"
      read -r lr lc <<< "$(ours persistent "$wport" "$op")"
      awk -v a="$lc" -v b="$fc" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/lib_floor_$op"
      awk -v a="$lc" -v b="$wc" 'BEGIN { printf "%.1f\n", a / b }' >> "$tmp/lib_wire_$op"
      echo "$lc" >> "$tmp/lib_cpu_$op"; echo "$fc" >> "$tmp/floor_cpu_$op"; echo "$wc" >> "$tmp/wire_cpu_$op"
      printf '| %d | %s | %s / %s | %s / %s | %s / %s |\n' "$i" "$op" "$wr" "$wc" "$fr" "$fc" "$lr" "$lc" >> "$tmp/limit_lines"
    done
  fi
  [ "${COMPARE:-1}" = 0 ] && continue
  read -r ra rac <<< "$(ours async "$port")"
  read -r pa pac <<< "$(ours persistent "$wport")"
  read -r re rec <<< "$(ours async "$eport")"
  read -r pe pec <<< "$(ours persistent "$eport")"
  awk -v a="$pa" -v b="$ra" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/lean_rate"
  awk -v a="$pac" -v b="$rac" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/lean_cpu"
  awk -v a="$pe" -v b="$re" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/emu_rate"
  awk -v a="$pec" -v b="$rec" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/emu_cpu"
  printf '| %d | %s / %s | %s / %s | %s / %s | %s / %s |\n' "$i" \
    "$ra" "$rac" "$pa" "$pac" "$re" "$rec" "$pe" "$pec" >> "$tmp/lines"
done
if [ "${LIMITS:-1}" != 0 ]; then
cat <<OUT
Persistent mode against its limits (sends/s / CPU µs per send of the
sending process; $rounds rounds of ${secs}s per line):

| round | send | (a) wire limit, C | (b) floor, binding only | the library |
|---|---|---|---|---|
$(cat "$tmp/limit_lines")

| median of $rounds (min-max) | broadcast | to_group | to_user | target |
|---|---|---|---|---|
| library CPU µs per send | $(median < "$tmp/lib_cpu_broadcast") | $(median < "$tmp/lib_cpu_to_group") | $(median < "$tmp/lib_cpu_to_user") | |
| (b) floor CPU µs per send | $(median < "$tmp/floor_cpu_broadcast") | $(median < "$tmp/floor_cpu_to_group") | $(median < "$tmp/floor_cpu_to_user") | |
| (a) wire CPU µs per send | $(median %.3f < "$tmp/wire_cpu_broadcast") | $(median %.3f < "$tmp/wire_cpu_to_group") | $(median %.3f < "$tmp/wire_cpu_to_user") | |
| **library / (b) floor** | $(median < "$tmp/lib_floor_broadcast") | $(median < "$tmp/lib_floor_to_group") | $(median < "$tmp/lib_floor_to_user") | <= 1.5 |
| library / (a) wire | $(median %.0f < "$tmp/lib_wire_broadcast") | $(median %.0f < "$tmp/lib_wire_to_group") | $(median %.0f < "$tmp/lib_wire_to_user") | (printed) |

OUT
fi
if [ "${MEM:-1}" != 0 ]; then
  mem_rounds=${MEM_ROUNDS:-3}; soak=${SOAK:-1000000}
  pmem() { SINK_PID=$(cat "$tmp/sink.pid") \
    AzureSignalRConnectionString="Endpoint=http://127.0.0.1;Port=$wport;AccessKey=$key;Version=1.0;" \
    lua5.4 bench/persistent_mem.lua "$@"; }
  echo "measuring memory: $mem_rounds rounds, a soak of $soak sends ..." >&2
  : > "$tmp/m_wait"; : > "$tmp/m_unw"
  for _ in $(seq 1 "$mem_rounds"); do
    pmem waiting >> "$tmp/m_wait"
    pmem unwritten >> "$tmp/m_unw"
  done
  samples=$(pmem soak "$soak")
  cat <<OUT
Persistent mode's memory (resident set; median of $mem_rounds, min-max):

| what | value |
|---|---|
| 10k sends queued while the connection waits for its handshake | $(median %.0f < "$tmp/m_wait") KiB |
| 10k sends on an open connection the network does not take | $(median %.0f < "$tmp/m_unw") KiB |
| soak of $soak hub:broadcast sends: RSS after the first / the last tenth | $(awk '{ print $1 " / " $NF }' <<< "$samples") KiB |
| (every tenth) | $samples |

OUT
fi
[ "${COMPARE:-1}" = 0 ] && exit 0
cat <<OUT
Rounds (sends/s / CPU µs per send of the sending process):

| round | REST async, 16 in flight, lean sink | persistent, lean sink | REST async, emulator | persistent, emulator |
|---|---|---|---|---|
$(cat "$tmp/lines")

| ratio (median of $rounds, min-max) | value | target |
|---|---|---|
| sends/s persistent / REST async, lean sinks | $(median < "$tmp/lean_rate") | >= 5 |
| CPU per send persistent / REST async, lean sinks | $(median < "$tmp/lean_cpu") | <= 0.33 |
| sends/s persistent / REST async, emulator | $(median < "$tmp/emu_rate") | >= 5 |
| CPU per send persistent / REST async, emulator | $(median < "$tmp/emu_cpu") | <= 0.33 |
OUT
