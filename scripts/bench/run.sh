#!/usr/bin/env bash
# hostbgp benchmarks (issue 6). Usage (as root):
#   scripts/bench/run.sh [all|bulk|memory|latency|kernel|restart|peers|bfd|lxd]
# Env: N (prefixes, default 100000), N6 (IPv6 prefixes in bulk, default 100000),
#      EVENTS (latency events per kind, default 200), BENCH_EXABGP=0 to skip exabgp,
#      BENCH_GOBGP=0 to skip gobgpd (bulk; preloaded from an MRT file, ~80 s at 1M),
#      PEERS (routers in `peers`, default 50), PEER_N (prefixes to each, default 10000),
#      LAT_ROUTES (latency: instance routes in the kernel beside the events, both speakers),
#      LAT_EXTRA (latency: an OVN table advertised by hostbgp beside the events),
#      BENCH_KEEP=1 keeps the temp dir (configs, logs, pcaps), NO_BUILD=1 skips the build,
#      BFD_PEERS (bfd: routers with BFD, default 10), BFD_MS (their interval, default 100),
#      BFD_SECS (bfd: CPU sampled over, default 30), BFD_TRIALS (bfd: blackholes, default 10),
#      BENCH_SETS (bulk: also a hostbgp run over that many attribute sets, default 4; 1 = off),
#      BENCH_SMOKE=1 marks the output as a smoke run (CI's tiny sizes: not measurements).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [[ -z "${NO_BUILD:-}" ]]; then cargo build --release -q; fi
export HOSTBGP_BIN="${HOSTBGP_BIN:-$CARGO_TARGET_DIR/release/hostbgp}"
for p in bird tcpdump; do command -v "$p" >/dev/null || { echo "missing $p: apt-get install -y bird2 tcpdump" >&2; exit 1; }; done
# lxd: LXD 5.0.2's own speaker vs hostbgp following it (LXD_CYCLES, default 20); not in `all`.
if [[ "${1:-}" == lxd ]]; then exec python3 scripts/bench/lxd.py; fi
exec python3 scripts/bench/bench.py "${1:-all}"
