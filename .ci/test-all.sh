#!/usr/bin/env bash
# Run every suite; print each suite's result and one closing line
# "N passed, N failed" summing them all.  Exit 1 when anything failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log=$(mktemp -d)
# every log of the run lands here too, for the secrets scan at the end
export SIGNALR_SCAN_DIR="$log/scan"
mkdir -p "$SIGNALR_SCAN_DIR"
pass=0; fail=0

add() { pass=$((pass + $1)); fail=$((fail + $2)); }

# C unit tests: "name: N passed, N failed"
for t in build/test/test_*; do
  out=$("$t" 2>&1); rc=$?
  echo "$out" | tail -n 1
  p=$(echo "$out" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -n1)
  f=$(echo "$out" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -n1)
  if [ -z "$p" ]; then echo "$out"; add 0 1; else add "$p" "$f"; [ $rc -eq 0 ] || [ "$f" -gt 0 ] || add 0 1; fi
done

# the C tests once more under valgrind, then ASan + UBSan (C tests and the
# 5.4 unit specs), the libFuzzer harnesses briefly, and cppcheck
# (two at a time: the machines have 2 cores)
for t in build/test/test_*; do
  ( valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
      "$t" > "$log/vg-$(basename "$t").out" 2>&1; echo $? > "$log/vg-$(basename "$t").rc" ) &
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
done
wait
for t in build/test/test_*; do
  if [ "$(cat "$log/vg-$(basename "$t").rc" 2>/dev/null)" = 0 ]; then
    echo "valgrind $(basename "$t"): clean"; add 1 0
  else
    echo "valgrind $(basename "$t"): FAILED"; tail -n 30 "$log/vg-$(basename "$t").out"; add 0 1
  fi
done
out=$(make -s asan 2>&1); rc=$?
# LeakSanitizer's own stop-the-world tracer sometimes crashes at a
# process's exit on a loaded machine ("Tracer caught signal 11", then
# "LeakSanitizer has encountered a fatal error"): a crash of the checker,
# not a leak report (google/sanitizers#1353).  Only that signature, and
# only when no sanitizer reported anything, runs the step once more.
if [ $rc -ne 0 ] && echo "$out" | grep -q 'LeakSanitizer has encountered a fatal error' &&
   ! echo "$out" | grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error'; then
  echo "asan+ubsan: LeakSanitizer's tracer crashed (not a leak report); running the step again"
  out=$(make -s asan 2>&1); rc=$?
fi
sum=$(echo "$out" | grep -E '^[0-9]+ success' | tail -n1)
cfails=$(echo "$out" | grep -cE ': [0-9]+ passed, [1-9][0-9]* failed|ERROR: (Address|Leak)Sanitizer|runtime error')
if [ $rc -eq 0 ] && [ -n "$sum" ] && [ "$cfails" -eq 0 ]; then
  echo "asan+ubsan: C tests and 5.4 unit specs clean ($sum)"; add 1 0
else
  echo "asan+ubsan: FAILED"; echo "$out" | grep -E -A8 'ERROR|runtime error|^(Failure|Error) |failed' | head -n 60; add 0 1
fi
out=$(bash fuzz/run.sh "${FUZZ_SECONDS:-6}" 2>&1); rc=$?
echo "$out" | grep -E '^fuzz_' -A6 | grep -vE '^--$' | head -n 40
p=$(echo "$out" | tail -n1 | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
f=$(echo "$out" | tail -n1 | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$p" ]; then echo "fuzz: no summary"; echo "$out" | tail -n 20; add 0 1; else add "$p" "$f"; fi
if out=$(make -s static 2>&1); then echo "cppcheck: clean"; add 1 0
else echo "cppcheck: FAILED"; echo "$out" | head -n 30; add 0 1; fi

# busted: "N successes / N failures / N errors / N pending"
run_busted() { # version suite
  local name="busted lua$1 $2" out p f e
  out=$(bash spec/run.sh "$1" "$2" 2>&1); rc=$?
  echo "$out" > "$log/$1-$2.log"
  local sum
  sum=$(echo "$out" | grep -E '^[0-9]+ success' | tail -n1)
  if [ -z "$sum" ]; then
    echo "$name: no summary (exit $rc)"; echo "$out" | tail -n 30; add 0 1; return
  fi
  p=$(echo "$sum" | sed -E 's/^([0-9]+) success.*/\1/')
  f=$(echo "$sum" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
  e=$(echo "$sum" | sed -E 's/.* ([0-9]+) errors?.*/\1/')
  echo "$name: $sum"
  if [ "$f" -gt 0 ] || [ "$e" -gt 0 ]; then
    echo "$out" | grep -A 12 -E '^(Failure|Error) ' | head -n 80
  fi
  add "$p" $((f + e))
  [ $rc -eq 0 ] || [ $((f + e)) -gt 0 ] || add 0 1
}
for v in ${LUAS:-5.4 5.1 5.3 jit}; do run_busted "$v" unit; done
run_busted 5.4 emulator
run_busted 5.4 conformance
run_busted 5.4 e2e
run_busted 5.4 faults
run_busted 5.4 nginx

# the rocks: spec/rock/check.sh (each Lua version into an empty tree, the
# installed files, require from that tree, the emulator rock, make dist)
out=$(bash spec/rock/check.sh 2>&1); rc=$?
echo "$out" | grep -E '^not ok' -A 12
sum=$(echo "$out" | tail -n 1)
p=$(echo "$sum" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
f=$(echo "$sum" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$p" ]; then echo "rocks: no summary"; echo "$out" | tail -n 20; add 0 1
else echo "rocks: $sum"; add "$p" "$f"; [ $rc -eq 0 ] || [ "$f" -gt 0 ] || add 0 1; fi

# the API reference: LDoc with no warning, every hub method documented, and
# every one of them in the LuaLS annotations too
docs_out=$(ldoc . 2>&1 | grep -v -E '^(reading configuration|output written)')
missing=""
for m in $(grep -oE '^function Hub:[a-z][a-z_]+|^Hub\.[a-z][a-z_]+ = |^    [a-z_]+ = \{ "' lua/signalr/hub.lua \
           | sed -E 's/^function Hub://; s/^Hub\.([a-z_]+) = .*/\1/; s/^    ([a-z_]+) = .*/\1/'); do
  grep -q "Hub:$m" build/docs/modules/signalr.hub.html 2>/dev/null || missing="$missing $m(ldoc)"
  grep -q "function Hub:$m(" types/signalr.lua || missing="$missing $m(LuaLS)"
done
if [ -z "$docs_out" ] && [ -z "$missing" ]; then echo "docs: LDoc clean, every hub method documented"; add 1 0
else echo "docs: FAILED"; echo "$docs_out"; echo "undocumented:$missing"; add 0 1; fi

# luacheck: each clean file counts as passed, each file with warnings failed
out=$(luacheck --formatter plain --codes lua spec emulator bin examples 2>&1)
files=$(luacheck --formatter TAP lua spec emulator bin examples 2>/dev/null | grep -cE '^(ok|not ok)')
bad=$(echo "$out" | grep -E '^[^ ]+:[0-9]+:[0-9]+' | cut -d: -f1 | sort -u | wc -l)
echo "luacheck: $((files - bad)) files clean, $bad with warnings"
[ "$bad" -gt 0 ] && echo "$out" | head -n 40
add $((files - bad)) "$bad"

# the secrets scan over everything the suite wrote
out=$(bash spec/secrets_scan.sh "$log" 2>&1)
echo "$out" | grep -v -E '^[0-9]+ passed' | sed 's/^/  /' | tail -n 12
p=$(echo "$out" | tail -n1 | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
f=$(echo "$out" | tail -n1 | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$p" ]; then echo "secrets scan: no summary"; add 0 1; else echo "secrets scan: $p passed, $f failed"; add "$p" "$f"; fi

echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
