#!/usr/bin/env bash
# bench/hub_server.sh (make bench): a Lua hub server (signalr.server,
# bench/hub_server_app.lua: Add(a, b) returns a + b) answering 100 clients'
# invocations, on loopback, in one run:
#   - through bench/hub_sim.c, a lean service simulator in C that speaks
#     the service protocol to the hub server itself and simulates the
#     clients (so no emulator cost is in the figures): closed loop (each
#     client keeps one invocation in flight) and open loop at RATE
#     invocations/s (a fixed schedule, round trips counted from it);
#   - the floor: the same open loop against a trivial hub server in C
#     (hub_sim echo), to take the simulator's, the kernel's and the
#     scheduler's share out of the round trip; both open loops again at
#     LOW_RATE, well below saturation;
#   - the reference: persistent-mode hub:broadcast("newMessage",
#     {"hello", 42}) against bench/ws_sink.c, as bench/persistent.sh sends;
#   - 100 real @microsoft/signalr clients (node) through the bundled
#     emulator in Default mode, closed loop (the emulator, a Lua program,
#     is the limit there, and most of each round trip).
# Invocations/s, round trip p50/p99/max, and CPU per invocation of the hub
# server (/proc/PID/schedstat: user+sys, read at the measured window's
# ends), median of ROUNDS rounds with the spread (min-max).
# Targets (the hub server issue): CPU per invocation <= 2x a persistent
# send; p99 round trip added by the library (hub server minus the C floor,
# open loop) <= 1 ms at 10k invocations/s.
# Knobs: ROUNDS (5), SECS measured per line (3), WARMUP s (1), CLIENTS
# (100), CONNS (server connections, 2), RATE (10000), LOW_RATE (2000; 0
# skips those lines), EMULATOR (1; 0 skips
# the emulator line), SIGNALR_BUILD (the build directory whose
# lua5.4/signalr/core.so is measured; default build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECS:-3}; rounds=${ROUNDS:-5}; warm=${WARMUP:-1}; clients=${CLIENTS:-100}
conns=${CONNS:-2}; rate=${RATE:-10000}; low=${LOW_RATE:-2000}; with_emu=${EMULATOR:-1}
build=${SIGNALR_BUILD:-$root/build}
tmp=$(mktemp -d); port=$((29000 + RANDOM % 3000))
key=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH
cleanup() {
  for f in "$tmp"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
cc -O2 -std=c99 -Wall bench/hub_sim.c -lcrypto -o "$tmp/hub_sim"
cc -O2 -std=c99 bench/ws_sink.c -lcrypto -o "$tmp/ws_sink"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/emulator/?.lua;$root/emulator/?/init.lua;;"
export LUA_CPATH="$build/lua5.4/?.so;;"
cs_for() { echo "Endpoint=http://127.0.0.1;Port=$1;AccessKey=$key;Version=1.0;"; }
next_port() { port=$((port + 1)); }

# sim_run WHO(lua|echo) RATE(0: closed loop) PORT -> the simulator's line:
# "inv/s p50_us p99_us max_us server_cpu_us sim_cpu_us samples"
sim_run() {
  local p=$3
  rm -f "$tmp/sim.out" "$tmp/sim.err"
  "$tmp/hub_sim" sim "$p" -n "$clients" -c "$conns" -r "$2" -s "$secs" -w "$warm" \
    -P "$tmp/srv.pid" > "$tmp/sim.out" 2> "$tmp/sim.err" &
  local sim=$!
  for _ in $(seq 1 100); do grep -q listening "$tmp/sim.err" 2>/dev/null && break; sleep 0.05; done
  if [ "$1" = lua ]; then
    AzureSignalRConnectionString=$(cs_for "$p") lua5.4 bench/hub_server_app.lua serve "$conns" \
      > "$tmp/srv.out" 2>&1 & echo $! > "$tmp/srv.pid"
  else
    "$tmp/hub_sim" echo "$p" -c "$conns" > "$tmp/srv.out" 2>&1 & echo $! > "$tmp/srv.pid"
  fi
  local rc=0
  wait "$sim" || rc=$?
  kill "$(cat "$tmp/srv.pid")" 2>/dev/null || true
  wait "$(cat "$tmp/srv.pid")" 2>/dev/null || true
  rm -f "$tmp/srv.pid"
  if [ "$rc" != 0 ] || [ ! -s "$tmp/sim.out" ]; then
    echo "hub_sim ($1, rate $2) failed:" >&2; cat "$tmp/sim.err" "$tmp/srv.out" >&2; exit 1
  fi
  cat "$tmp/sim.out"
}

# ref -> "sends/s cpu_us_per_send" (persistent mode against ws_sink)
next_port; sink_port=$port
"$tmp/ws_sink" "$sink_port" & echo $! > "$tmp/sink.pid"
ref() { AzureSignalRConnectionString=$(cs_for "$sink_port") lua5.4 bench/hub_server_app.lua send "$secs"; }

# ---- the emulator line: 100 real clients (node) ----
cat > "$tmp/clients.js" <<'JS'
// argv: url token clients warmup_s secs hub_pid emu_pid.  Each client
// invokes Add(2, 3) again as soon as the last one answered; prints
// "inv/s p50_us p99_us max_us hub_cpu_us emu_cpu_us samples" for the
// window (CPU from /proc/PID/schedstat at its ends).
"use strict";
const signalR = require("@microsoft/signalr");
const fs = require("fs");
const [url, token, nc, warm, secs, hubPid, emuPid] = process.argv.slice(2);
const cpu = (pid) => +fs.readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0];
const logger = { log(level, m) { if (level >= signalR.LogLevel.Error) process.stderr.write(m + "\n"); } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let measuring = false, stopping = false, done = 0, bad = 0;
const lat = [];
async function loop(conn) {
  while (!stopping) {
    const s = process.hrtime.bigint();
    const r = await conn.invoke("Add", 2, 3);
    if (r !== 5) bad++;
    if (measuring) { done++; lat.push(Number(process.hrtime.bigint() - s) / 1e3); }
  }
}
(async () => {
  const conns = [];
  for (let i = 0; i < +nc; i++) {
    conns.push(new signalR.HubConnectionBuilder()
      .withUrl(url, { accessTokenFactory: () => token, transport: signalR.HttpTransportType.WebSockets })
      .configureLogging(logger).build());
  }
  await Promise.all(conns.map((c) => c.start()));
  const loops = conns.map(loop);
  await sleep(+warm * 1000);
  const h0 = cpu(hubPid), e0 = cpu(emuPid), t0 = process.hrtime.bigint();
  measuring = true;
  await sleep(+secs * 1000);
  measuring = false;
  const h1 = cpu(hubPid), e1 = cpu(emuPid), t1 = process.hrtime.bigint();
  stopping = true;
  await Promise.all(loops);
  await Promise.all(conns.map((c) => c.stop()));
  if (bad || !done) { process.stderr.write(`${bad} wrong results, ${done} done\n`); process.exit(1); }
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
  console.log([(done / (Number(t1 - t0) / 1e9)).toFixed(1), q(0.5).toFixed(1), q(0.99).toFixed(1),
    lat[lat.length - 1].toFixed(1), ((h1 - h0) / 1e3 / done).toFixed(2),
    ((e1 - e0) / 1e3 / done).toFixed(2), lat.length].join(" "));
  process.exit(0);
})().catch((e) => { process.stderr.write(String((e && e.stack) || e) + "\n"); process.exit(1); });
JS
if [ "$with_emu" = 1 ] && [ ! -d spec/e2e/node_modules/@microsoft/signalr ]; then
  echo "spec/e2e/node_modules missing (npm ci in spec/e2e): no emulator line" >&2; with_emu=0
fi
if [ "$with_emu" = 1 ]; then
  next_port; eport=$port
  SIGNALR_BUILD=$build lua5.4 bin/signalr-emulator --port "$eport" --log-level error \
    --service-mode default > "$tmp/emu.out" 2>&1 & echo $! > "$tmp/emu.pid"
  for _ in $(seq 1 100); do grep -q "Connection string" "$tmp/emu.out" 2>/dev/null && break; sleep 0.1; done
  ecs=$(cs_for "$eport")
  AzureSignalRConnectionString=$ecs lua5.4 bench/hub_server_app.lua serve "$conns" \
    > "$tmp/ehub.out" 2>&1 & echo $! > "$tmp/ehub.pid"
  for _ in $(seq 1 100); do
    n=$(curl -s "http://127.0.0.1:$eport/_emulator/servers" | grep -o '"carries_clients":true' | wc -l || true)
    [ "${n:-0}" -ge "$conns" ] && break; sleep 0.1
  done
  read -r eurl etok <<< "$(AzureSignalRConnectionString=$ecs lua5.4 -e '
    local n = assert(assert(require("signalr").new(os.getenv("AzureSignalRConnectionString"))):hub("chat"):negotiate {})
    print(n.url, n.accessToken)')"
fi
emu_run() {
  NODE_PATH="$root/spec/e2e/node_modules" timeout $((secs + warm + 60)) node "$tmp/clients.js" \
    "$eurl" "$etok" "$clients" "$warm" "$secs" "$(cat "$tmp/ehub.pid")" "$(cat "$tmp/emu.pid")"
}

median() { sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
  printf "%.2f (%.2f-%.2f)", m, a[1], a[NR] }'; }
ms() { awk '{ printf "%.2f\n", $1 / 1000 }'; }
for f in ref_cpu c_rate c_cpu c_ratio c_p50 c_p99 o_rate o_cpu o_ratio o_p99 f_p99 f_cpu added \
    l_p99 lf_p99 l_added l_cpu e_rate e_cpu e_emu e_p99; do
  : > "$tmp/$f"
done
: > "$tmp/lines"; : > "$tmp/elines"
echo "measuring: $rounds rounds, ${secs}s per line (+${warm}s warm-up), $clients clients, $conns server connections ..." >&2
for i in $(seq 1 "$rounds"); do
  l=$(ref); read -r rs rc <<< "$l"
  base=$((port + 10 + 5 * i))
  l=$(sim_run lua 0 "$base"); read -r cr c50 c99 _ ccpu _ <<< "$l"
  l=$(sim_run lua "$rate" $((base + 1))); read -r or o50 o99 _ ocpu _ <<< "$l"
  l=$(sim_run echo "$rate" $((base + 2))); read -r fr f50 f99 _ fcpu _ <<< "$l"
  echo "$rc" >> "$tmp/ref_cpu"
  echo "$cr" >> "$tmp/c_rate"; echo "$ccpu" >> "$tmp/c_cpu"; echo "$c50" | ms >> "$tmp/c_p50"; echo "$c99" | ms >> "$tmp/c_p99"
  echo "$or" >> "$tmp/o_rate"; echo "$ocpu" >> "$tmp/o_cpu"; echo "$o99" | ms >> "$tmp/o_p99"
  echo "$f99" | ms >> "$tmp/f_p99"; echo "$fcpu" >> "$tmp/f_cpu"
  awk -v a="$ccpu" -v b="$rc" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/c_ratio"
  awk -v a="$ocpu" -v b="$rc" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/o_ratio"
  awk -v a="$o99" -v b="$f99" 'BEGIN { printf "%.3f\n", (a - b) / 1000 }' >> "$tmp/added"
  printf '| %d | %s / %s | %s / %s / %s / %s | %s / %s / %s / %s | %s / %s / %s / %s |' "$i" \
    "$rs" "$rc" "$cr" "$c50" "$c99" "$ccpu" "$or" "$o50" "$o99" "$ocpu" "$fr" "$f50" "$f99" "$fcpu" \
    >> "$tmp/lines"
  if [ "$low" != 0 ]; then
    l=$(sim_run lua "$low" $((base + 3))); read -r lr l50 l99 _ lcpu _ <<< "$l"
    l=$(sim_run echo "$low" $((base + 4))); read -r lfr lf50 lf99 _ lfcpu _ <<< "$l"
    echo "$l99" | ms >> "$tmp/l_p99"; echo "$lf99" | ms >> "$tmp/lf_p99"; echo "$lcpu" >> "$tmp/l_cpu"
    awk -v a="$l99" -v b="$lf99" 'BEGIN { printf "%.3f\n", (a - b) / 1000 }' >> "$tmp/l_added"
    printf ' %s / %s / %s / %s | %s / %s / %s / %s |' "$lr" "$l50" "$l99" "$lcpu" "$lfr" "$lf50" "$lf99" "$lfcpu" \
      >> "$tmp/lines"
  fi
  echo >> "$tmp/lines"
  if [ "$with_emu" = 1 ]; then
    l=$(emu_run); read -r er e50 e99 emax ecpu eemu _ <<< "$l"
    echo "$er" >> "$tmp/e_rate"; echo "$ecpu" >> "$tmp/e_cpu"; echo "$eemu" >> "$tmp/e_emu"; echo "$e99" | ms >> "$tmp/e_p99"
    printf '| %d | %s | %s / %s / %s | %s | %s |\n' "$i" "$er" "$e50" "$e99" "$emax" "$ecpu" "$eemu" >> "$tmp/elines"
  fi
done
cat <<OUT
Rounds ($clients clients, $conns server connections; round trips in µs; CPU in µs per invocation,
or per send for the reference):

| round | reference: persistent sends/s / CPU | hub server, closed loop: inv/s / p50 / p99 / CPU | hub server, open loop $rate/s: inv/s / p50 / p99 / CPU | C floor, open loop $rate/s: inv/s / p50 / p99 / CPU |$([ "$low" != 0 ] && echo " hub server, open loop $low/s | C floor, open loop $low/s |")
|---|---|---|---|---|$([ "$low" != 0 ] && echo "---|---|")
$(cat "$tmp/lines")
OUT
if [ "$with_emu" = 1 ]; then
  cat <<OUT

Through the emulator ($clients @microsoft/signalr clients, node, closed loop):

| round | inv/s | round trip p50 / p99 / max µs | hub server CPU µs per invocation | emulator CPU µs per invocation |
|---|---|---|---|---|
$(cat "$tmp/elines")
OUT
fi
cat <<OUT

| figure (median of $rounds, min-max) | value | target |
|---|---|---|
| persistent send, CPU µs per send (the reference) | $(median < "$tmp/ref_cpu") | |
| hub server, closed loop: invocations/s | $(median < "$tmp/c_rate") | |
| hub server, closed loop: CPU µs per invocation | $(median < "$tmp/c_cpu") | |
| CPU per invocation / per persistent send, closed loop | $(median < "$tmp/c_ratio") | <= 2 |
| hub server, closed loop: round trip p50 / p99 ms | $(median < "$tmp/c_p50") / $(median < "$tmp/c_p99") | |
| hub server, open loop $rate/s: invocations/s | $(median < "$tmp/o_rate") | |
| hub server, open loop $rate/s: CPU µs per invocation | $(median < "$tmp/o_cpu") | |
| CPU per invocation / per persistent send, open loop $rate/s | $(median < "$tmp/o_ratio") | <= 2 |
| round trip p99 ms, hub server, open loop $rate/s | $(median < "$tmp/o_p99") | |
| round trip p99 ms, C floor, open loop $rate/s | $(median < "$tmp/f_p99") | |
| p99 added by the library ms (hub server - floor, per round) | $(median < "$tmp/added") | <= 1 |
| C floor: CPU µs per invocation | $(median < "$tmp/f_cpu") | |
OUT
if [ "$low" != 0 ]; then
  cat <<OUT
| hub server, open loop $low/s: CPU µs per invocation | $(median < "$tmp/l_cpu") | |
| round trip p99 ms, hub server / C floor, open loop $low/s | $(median < "$tmp/l_p99") / $(median < "$tmp/lf_p99") | |
| p99 added by the library ms, open loop $low/s | $(median < "$tmp/l_added") | |
OUT
fi
if [ "$with_emu" = 1 ]; then
  cat <<OUT
| emulator: invocations/s | $(median < "$tmp/e_rate") | |
| emulator: hub server CPU µs per invocation | $(median < "$tmp/e_cpu") | |
| emulator: its own CPU µs per invocation | $(median < "$tmp/e_emu") | |
| emulator: round trip p99 ms | $(median < "$tmp/e_p99") | |
OUT
fi
