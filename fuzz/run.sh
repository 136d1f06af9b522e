#!/usr/bin/env bash
# fuzz/run.sh SECONDS [BUILD]: build every libFuzzer harness (clang, ASan +
# UBSan) and run each for SECONDS over its committed seeds, FUZZ_JOBS (2)
# at a time (new inputs go
# to BUILD/fuzz/corpus-*, not into the repository).  Prints one line per
# harness ("fuzz_x: N runs, cov C, ok") and a closing "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-5}; build=${2:-$root/build}
out="$build/fuzz"; mkdir -p "$out"
cd "$root"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c99 -O1 -g -Wall -Wextra -Werror -Icore/include -Icore/src -D_POSIX_C_SOURCE=200809L"
pass=0; fail=0
# the core once, instrumented for coverage
objs=()
for src in core/src/*.c; do
  o="$out/$(basename "$src" .c).o"
  if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ core/include/signalr.h -nt "$o" ]; then
    clang $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$src" -o "$o" || { echo "fuzz: cannot build $src"; exit 1; }
  fi
  objs+=("$o")
done
# one harness: build, run; its report line(s) in $out/<name>.result,
# "ok" or not in $out/<name>.status
one() {
  local h=$1 name short bin log
  name=$(basename "$h" .c); short=${name#fuzz_}
  bin="$out/$name"; log="$out/$name.log"
  # the binding's JSON text (a parser of outside bytes) needs no Lua
  local extra=(); [ "$short" = json_text ] && extra=(-Ibinding binding/json_text.c)
  if ! clang $CFLAGS $SAN -fsanitize=fuzzer "$h" "${extra[@]}" "${objs[@]}" -lcurl -lcrypto -lwslay -o "$bin" 2> "$out/$name.build.log"; then
    { echo "$name: does not build"; cat "$out/$name.build.log"; } > "$out/$name.result"
    echo failed > "$out/$name.status"; return
  fi
  mkdir -p "$out/corpus-$short"
  local dict=(); [ -f "fuzz/$short.dict" ] && dict=(-dict="fuzz/$short.dict")
  [ "$short" = json_mp ] && dict=(-dict=fuzz/json.dict)
  if ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$out/$name-" "${dict[@]}" "$out/corpus-$short" "fuzz/corpus/$short" > "$log" 2>&1; then
    local runs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    echo "$name: ${runs:-?} runs, cov ${cov:-?}, ok" > "$out/$name.result"
    echo ok > "$out/$name.status"
  else
    { echo "$name: FAILED (reproducer and trace in $log)"; grep -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | head -n 8; } \
      > "$out/$name.result"
    echo failed > "$out/$name.status"
  fi
}
# FUZZ_JOBS harnesses at a time (2: the machines have 2 cores)
jobs_max=${FUZZ_JOBS:-2}
for h in fuzz/fuzz_*.c; do
  rm -f "$out/$(basename "$h" .c).status"
  one "$h" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
done
wait
for h in fuzz/fuzz_*.c; do
  name=$(basename "$h" .c)
  cat "$out/$name.result" 2>/dev/null || echo "$name: no result"
  if [ "$(cat "$out/$name.status" 2>/dev/null)" = ok ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
