#!/usr/bin/env bash
# An nginx handler that calls hub:broadcast (cosockets, keep-alive) under
# wrk, against the same handler that answers 202 without the call,
# measured in the same run (the handlers of bench/nginx_locations.conf
# differ only in the call; examples/openresty's /chat/broadcast is checked
# once, it also encodes its answer with cjson).  The "service" is an nginx sink that
# answers 202, so the figure is the library's cost, not a service's.
# The same handler in persistent mode (a server connection to
# bench/ws_sink.c) is measured in the same rounds, and the REST
# handler's floor: the same handler making only the cosocket calls of a
# REST send, with ready-made request bytes (/bench/cosk).  Targets (issue
# 29): persistent >= 0.8 of the bare handler's req/s, REST >= 0.4.
# PIN=1: wrk and the sinks on CPU 0, the measured nginx on CPU 1
# (taskset), to see how much of a ratio is the two processes' scheduling.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
conns=${CONNS:-16}; secs=${SECS:-5}
sink_port=$((21000 + RANDOM % 5000)); app_port=$((26000 + RANDOM % 5000)); ws_port=$((sink_port + 1))
pin0=(); pin1=()
[ "${PIN:-0}" = 1 ] && pin0=(taskset -c 0) && pin1=(taskset -c 1)
. "$root/bench/nginx_sinks.sh"
cleanup() {
  stop_sinks
  nginx -p "$tmp/app" -c "$tmp/app/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
start_sinks
"${pin1[@]}" "$root/examples/openresty/run.sh" "$tmp/app" "$app_port" /etc/ssl/certs/ca-certificates.crt \
  "$tmp/locations.conf"
sleep 0.5
body='{"target":"newMessage","arguments":["hello",{"x":1}]}'
cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
LUA
curl -sf --data-binary "$body" "http://127.0.0.1:$app_port/chat/broadcast" > /dev/null
curl -sf --data-binary "$body" "http://127.0.0.1:$app_port/bench/rest" > /dev/null
curl -sf --data-binary "$body" "http://127.0.0.1:$app_port/bench/pers" > /dev/null
curl -sf --data-binary "$body" "http://127.0.0.1:$app_port/bench/cosk" > /dev/null
master=$(cat "$tmp/app/logs/nginx.pid"); worker=$(pgrep -P "$master" | head -1)
sink=$(cat "$tmp/ws_sink.pid")
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # clock ticks
# run PATH -> "req/s cpu_us_per_request sink_us_per_request" (the app
# worker's user+sys; bench/ws_sink.c's, the persistent "service")
run() {
  local c0 c1 s0 s1 out n r
  c0=$(cpu "$worker"); s0=$(cpu "$sink")
  out=$("${pin0[@]}" wrk -t1 -c"$conns" -d"${secs}s" -s "$tmp/post.lua" "http://127.0.0.1:$app_port$1")
  c1=$(cpu "$worker"); s1=$(cpu "$sink")
  n=$(awk '/requests in/ {print $1}' <<< "$out"); r=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
  awk -v r="$r" -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s %.1f %.2f", r, c / hz / n * 1e6, s / hz / n * 1e6 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
  printf "%.2f (%.2f-%.2f)", m, a[1], a[NR] }'; }
rounds=${ROUNDS:-5}
for f in r_rate r_cpu p_rate p_cpu p_sink f_rate rf_rate; do : > "$tmp/$f"; done
echo "measuring: $rounds rounds, ${secs}s per handler ..." >&2
# Each round runs the four in another of six orders (0 without the
# call, 1 REST, 2 persistent, 3 the cosocket calls alone; each handler
# takes each place at least once), each after a pause of $settle s: what
# a run leaves behind (the REST run keeps the sink busy too, and the
# machine takes a while to settle after it) falls on every handler
# alike, not always on the one after REST.
settle=${SETTLE:-1}
orders=("0 1 2 3" "3 2 1 0" "1 3 0 2" "2 0 3 1" "0 3 1 2" "2 1 3 0")
measure() { sleep "$settle"; run "$1"; }
for i in $(seq 1 "$rounds"); do
  for k in ${orders[$(( (i - 1) % 6 ))]}; do
    case $k in
      0) read -r noop noopc _ <<< "$(measure /bench/noop)" ;;
      1) read -r bcast bcastc _ <<< "$(measure /bench/rest)" ;;
      2) read -r pers persc perss <<< "$(measure /bench/pers)" ;;
      3) read -r floor _ _ <<< "$(measure /bench/cosk)" ;;
    esac
  done
  awk -v a="$bcast" -v b="$noop" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/r_rate"
  awk -v a="$noopc" -v b="$bcastc" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/r_cpu"
  awk -v a="$pers" -v b="$noop" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/p_rate"
  awk -v a="$noopc" -v b="$persc" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/p_cpu"
  echo "$perss" >> "$tmp/p_sink"
  awk -v a="$floor" -v b="$noop" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/f_rate"
  awk -v a="$bcast" -v b="$floor" 'BEGIN { printf "%.3f\n", a / b }' >> "$tmp/rf_rate"
  echo "  round $i: without the call $noop req/s, ${noopc} us CPU/req;" \
    "REST hub:broadcast $bcast req/s, ${bcastc} us CPU/req;" \
    "persistent hub:broadcast $pers req/s, ${persc} us CPU/req;" \
    "the cosocket calls alone $floor req/s" >&2
done
errors=$(grep -c '\[error\]' "$tmp/app/logs/error.log" || true)
echo "nginx handler, wrk -t1 -c$conns -d${secs}s, 1 worker, median of $rounds rounds (spread):"
echo "  req/s persistent hub:broadcast / without the call: $(median < "$tmp/p_rate")   target >= 0.8"
echo "  CPU per request of the worker, without / persistent: $(median < "$tmp/p_cpu")"
echo "  CPU per request of the WebSocket sink (the persistent \"service\"), us: $(median < "$tmp/p_sink")"
echo "  req/s REST hub:broadcast / without the call: $(median < "$tmp/r_rate")   target >= 0.4"
echo "  CPU per request of the worker, without / REST: $(median < "$tmp/r_cpu")"
echo "  req/s the cosocket calls alone / without the call: $(median < "$tmp/f_rate")   (REST's floor here)"
echo "  req/s REST hub:broadcast / the cosocket calls alone: $(median < "$tmp/rf_rate")"
echo "  errors logged: $errors"
