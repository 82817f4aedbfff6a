#!/usr/bin/env bash
# Installs what the tests need (Debian's chromium, redis-server, postgresql and certutil, npm packages) and runs every test:
# formatting, lints, the Rust workspace, and the TypeScript client (unit, against the real
# fixture, and in Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean build of every test target is large: without incremental state and with line tables
# only (backtraces keep file and line) target/debug took 6.5 GB instead of more than 35 GB, and
# this whole script 14 minutes from a clean clone on 2 cores (CI runs on a clean clone).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
export CARGO_PROFILE_TEST_DEBUG="${CARGO_PROFILE_TEST_DEBUG:-line-tables-only}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)  # the server's outbox tests
# certutil: the server's browser test trusts its test CA in an NSS database, as Chromium does.
command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
# python3-venv: the checks below run PyPI tools from a virtual environment under target/
# (Autobahn|Testsuite from PyPI's kosoku, scripts/autobahn.sh, among them).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> npm ci (clients/typescript)"
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)

# Python tools from PyPI, in target/pyvenv (ignored): openapi-spec-validator checks the API
# description; prometheus_client's parser reads /metrics in the server's tests/metrics.rs;
# psycopg 3 runs the Python outbox example (examples/python-backend/outbox_publish.py) in the
# server's tests/outbox_python.rs.
echo "==> pip install openapi-spec-validator prometheus_client psycopg (target/pyvenv)"
python3 -m venv target/pyvenv
target/pyvenv/bin/pip install -q --disable-pip-version-check "openapi-spec-validator==0.9.*" "prometheus_client==0.26.*" "psycopg[binary]==3.*"
echo "==> openapi-spec-validator docs/http-api.openapi.yaml"
target/pyvenv/bin/openapi-spec-validator docs/http-api.openapi.yaml

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> layering: no module imports from a layer above it, no import circle (docs/architecture.md)"
python3 scripts/check-layers.py

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo build (binaries the client tests spawn)"
cargo build --workspace --bins --locked

echo "==> cargo test"
# (The hostile-input suite runs in a step of its own, below.) --no-fail-fast: one failing test
# target does not hide the others' results.
cargo test --workspace --locked --no-fail-fast -- --skip hostile_

echo "==> the conformance suite again, against two fixtures on one Redis (docs/cluster.md)"
# Not again: the targets that start their own nodes on their own Redis (they ran in the step
# above) and the hostile-input suite (its own step below).
own_nodes=" cluster faults fault_suite redis_cluster hostile "
targets=()
for file in crates/switchboard-fixture/tests/*.rs; do
  name=$(basename "$file" .rs)
  [[ "$own_nodes" == *" $name "* ]] || targets+=(--test "$name")
done
SWITCHBOARD_FIXTURE_NODES=2 cargo test --locked --no-fail-fast -p switchboard-fixture "${targets[@]}"

echo "==> the hostile-input suite (issue 16): floods, slow clients, bad frames; memory and descriptors from /proc, a bystander's p99"
cargo test --locked -p switchboard-server --test hostile -- --nocapture --test-threads=1
cargo test --locked -p switchboard-fixture --test hostile -- --nocapture --test-threads=1

echo "==> Autobahn|Testsuite, cases 1–10, on serve() and router() (scripts/autobahn.sh)"
scripts/autobahn.sh

echo "==> TypeScript client tests"
(cd clients/typescript && npm test)
