#!/usr/bin/env bash
# spec/secrets_scan.sh DIR...: search everything the suite wrote (busted
# output with every error message, emulator logs at debug level, nginx
# error logs) for the secrets the suite uses: its access keys and client
# secrets, any PEM private key, and anything shaped like an issued token.
# Prints the hits; the last line is "N passed, N failed" (one check per
# secret kind).
set -uo pipefail
pass=0; fail=0
secrets=(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"   # the suite's access key (also given
                                                   # as the command: spec/unit/secrets_echo_spec.lua)
  "WRONGKEYWRONGKEYWRONGKEYWRONGKEYWRONGKEY1234"   # spec/e2e/cli_spec.lua
  "SECRETSECRET"                                   # spec/e2e/c_library_spec.lua
  "not-the-key"                                    # spec/unit/errors_spec.lua
  "entra-client-secret-Q7vX2mP9kL4t"               # spec/e2e/entra_spec.lua, spec/nginx
  "federated-assertion-Z8nW3qR6yH1c"               # spec/e2e/entra_spec.lua
  "identity-header-K5bT9sV2xJ7d"                   # spec/e2e/entra_spec.lua
  "multi-endpoint-secret-8Hq2"                     # spec/e2e/endpoints_spec.lua
  "entra-persistent-secret-W4pZ"                   # spec/e2e/persistent_spec.lua
  "pfx-password-Tq4Lm8Zc2Wn6"                      # spec/e2e/entra_spec.lua (a PFX's password)
  "on-log-client-secret-W4eR7tY1uI9o"              # spec/e2e/on_log_spec.lua
  "proxy-client-secret-H3jK8lM2nB5v"               # spec/e2e/proxy_spec.lua
)
files=$(find "$@" -type f 2>/dev/null)
[ -n "$files" ] || { echo "secrets scan: nothing to scan"; echo "0 passed, 1 failed"; exit 1; }
n=$(echo "$files" | wc -l)
for s in "${secrets[@]}"; do
  # 16 characters of a secret are enough to count as a leak
  probe=${s:0:16}
  hits=$(echo "$files" | xargs grep -l -F -- "$probe" 2>/dev/null)
  if [ -z "$hits" ]; then pass=$((pass + 1))
  else fail=$((fail + 1)); echo "secret '${probe:0:4}...' found in:"; echo "$hits" | head -n 5
       echo "$hits" | head -n 1 | xargs grep -n -F -- "$probe" | head -n 3 | cut -c1-200; fi
done
# private keys: a PEM block of any key type (a PEM pasted where a file
# name belongs, e.g. ClientCert, must never be echoed; see
# spec/unit/secrets_echo_spec.lua)
pem='-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----'
hits=$(echo "$files" | xargs grep -l -E -- "$pem" 2>/dev/null)
if [ -z "$hits" ]; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "a PEM private key found in:"; echo "$hits" | head -n 5
     echo "$hits" | head -n 1 | xargs grep -n -o -E -- "$pem" | head -n 3; fi
# issued tokens: three base64url segments whose first two decode to JSON
jwt='eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{20,}'
hits=$(echo "$files" | xargs grep -l -E -- "$jwt" 2>/dev/null)
if [ -z "$hits" ]; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "a token found in:"; echo "$hits" | head -n 5
     echo "$hits" | head -n 1 | xargs grep -n -o -E -- "$jwt" | head -n 3 | cut -c1-60; fi
echo "secrets scan: $n files"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
