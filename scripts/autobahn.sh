#!/usr/bin/env bash
# Autobahn|Testsuite, cases 1–10, against a raw echo over Switchboard's own WebSocket on both
# upgrade paths: `serve()`'s HTTP/1.1 upgrade and the `router()` path (axum + hyper). The cases
# are Autobahn's own, run on Python 3 by the PyPI package `kosoku` (installed in a virtualenv
# under target/). Every case must be OK, or NON-STRICT/INFORMATIONAL with the reason given
# below; anything else (FAILED, UNIMPLEMENTED, a case that did not run) fails the script.
#
#   scripts/autobahn.sh            # reports in target/autobahn/{serve,router}/index.html
set -euo pipefail
cd "$(dirname "$0")/.."

KOSOKU_VERSION=0.1.0
venv=target/kosoku-venv
if ! "$venv/bin/kosoku" -h >/dev/null 2>&1; then
  echo "==> installing kosoku $KOSOKU_VERSION (PyPI) in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
fi

echo "==> building the echo (crates/switchboard/examples/autobahn_echo.rs)"
cargo build --locked --quiet -p switchboard --features autobahn --example autobahn_echo

out=$(mktemp)
target/debug/examples/autobahn_echo >"$out" 2>&1 &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do
  grep -q '^router ' "$out" && break
  sleep 0.1
done

for path in serve router; do
  address=$(awk -v p="$path" '$1 == p { print $2 }' "$out")
  [ -n "$address" ] || { cat "$out"; echo "the echo did not start"; exit 1; }
  reports="target/autobahn/$path"
  rm -rf "$reports"
  echo "==> Autobahn cases 1–10 against $path ($address)"
  "$venv/bin/kosoku" -p 2 -o "$reports" \
    -i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '9.*' -i '10.*' "$address" >/dev/null
  python3 - "$reports/index.json" "$path" <<'PY'
import json, sys
from collections import Counter

# Cases that may differ from OK, and why (docs/deploying.md, "RFC 6455").
ALLOWED = {
    "6.4.3": ("NON-STRICT", "invalid UTF-8 in a frame whose bytes arrive in pieces: the text is "
              "checked once the frame (or fragment) is complete, not byte by byte; still 1007"),
    "6.4.4": ("NON-STRICT", "as 6.4.3"),
    "7.1.6": ("INFORMATIONAL", "a large message right before the close: whether it is echoed "
              "first is informational"),
    "7.13.1": ("INFORMATIONAL", "close code 5000 is not valid: answered 1002"),
    "7.13.2": ("INFORMATIONAL", "close code 65535 is not valid: answered 1002"),
}
# Autobahn's cases 1–10 (8 has none): how many kosoku runs.
EXPECTED = 301

index, path = sys.argv[1], sys.argv[2]
(cases,) = json.load(open(index)).values()
counts = Counter(c["behavior"] for c in cases.values())
bad = []
for case, c in sorted(cases.items()):
    for key in ("behavior", "behaviorClose"):
        got = c[key]
        if got == "OK":
            continue
        allowed = ALLOWED.get(case)
        if allowed and got == allowed[0]:
            continue
        bad.append(f"{case}: {key} {got} (close code {c.get('remoteCloseCode')})")
if len(cases) != EXPECTED:
    bad.append(f"{len(cases)} cases ran, {EXPECTED} expected")
print(f"{path}: {len(cases)} cases: " + ", ".join(f"{n} {b}" for b, n in counts.most_common()))
for case, (behavior, why) in ALLOWED.items():
    if cases.get(case, {}).get("behavior") == behavior:
        print(f"  {case} {behavior}: {why}")
if bad:
    print("\n".join(["NOT CONFORMING:"] + bad))
    sys.exit(1)
PY
done
