#!/usr/bin/env bash
# Installs what the tests need (Debian's chromium, redis-server, postgresql and certutil, npm packages) and runs every test:
# formatting, lints, the Rust workspace, and the TypeScript client (unit, against the real
# fixture, and in Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)  # the server's outbox tests
# certutil: the server's browser test trusts its test CA in an NSS database, as Chromium does.
command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# psycopg 3 from PyPI in target/pyvenv (ignored): the server's test of the Python outbox example
# (examples/python-backend/outbox_publish.py, crates/switchboard-server/tests/outbox_python.rs).
echo "==> pip install psycopg[binary] (target/pyvenv)"
python3 -m venv target/pyvenv
target/pyvenv/bin/pip install -q --disable-pip-version-check "psycopg[binary]==3.*"

echo "==> npm ci (clients/typescript)"
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> layering: no module imports from a layer above it, no import circle (docs/architecture.md)"
python3 scripts/check-layers.py

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo build (binaries the client tests spawn)"
cargo build --workspace --bins --locked

echo "==> cargo test"
cargo test --workspace --locked

echo "==> the conformance suite again, against two fixtures on one Redis (docs/cluster.md)"
SWITCHBOARD_FIXTURE_NODES=2 cargo test --locked -p switchboard-fixture

echo "==> TypeScript client tests"
(cd clients/typescript && npm test)
