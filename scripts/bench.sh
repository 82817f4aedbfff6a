#!/usr/bin/env bash
# Benchmarks of issue #7: Switchboard vs the reference server and the peers, every scenario,
# interleaved rounds, medians. Rewrites docs/benchmarks.md and docs/benchmarks.svg.
#
#   scripts/bench.sh            # full sizes (about 20–30 minutes on 2 cores)
#   scripts/bench.sh --quick    # smaller sizes, under 5 minutes
#   scripts/bench.sh --quick s1 s2     # only some scenarios (the document still gets rewritten)
#   scripts/bench.sh --quick s1tls s2tls s4tls   # S1, S2, S4 over TLS (wss; switchboard,
#                                                # reference and bun; certificates made per run)
#
# Loopback only. Peers are installed by scripts/install-peers.sh into bench/peers/ (ignored);
# a peer that is not installed is reported as such. Needs redis-server for S5, S8 and S9
# (S8: fan-out across two nodes; S9: a recovery storm; Switchboard only), and PostgreSQL
# (Debian postgresql: /usr/lib/postgresql/*/bin) for S11, which runs the standalone server.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
rest=()
for a in "$@"; do
  case "$a" in
    --quick) quick=(--quick) ;;
    *) rest+=("$a") ;;
  esac
done
command_line="scripts/bench.sh $*"

echo "== build (release)" >&2
cargo build --release --locked -p switchboard-bench -p switchboard-server --bins >&2

echo "== peers" >&2
if [[ -x scripts/install-peers.sh ]]; then
  scripts/install-peers.sh >&2 || echo "scripts/install-peers.sh failed: peers that did not install are reported as not installed" >&2
else
  echo "scripts/install-peers.sh not found: peers are reported as not installed" >&2
fi

ulimit -n "$(ulimit -Hn)" || true
mkdir -p target/bench-logs
exec target/release/switchboard-bench "${quick[@]}" \
  --doc docs/benchmarks.md \
  --results target/bench-logs/results.json \
  --command "${command_line% }" \
  "${rest[@]:-all}"
