#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/nats.sh - the NATS bridge (shmq-nats) against a plain C publisher
# and subscriber of the same client library (bench/bench_nats.c), at 64 B
# and 4 KiB, one nats-server on 127.0.0.1 (file storage, one replica),
# BENCH_REPS (5) runs of each, interleaved. Each figure is the wall time
# of the whole process (connect, stream or consumer set-up, the transfer).
#   export: a queue of N messages (closed) -> shmq-nats export --until-end
#   plain pub: N asynchronous publishes, same window (256), a message id each
#   import: the stream the export filled -> shmq-nats import --until-end
#           into a queue on /dev/shm (its sync is free there), a 16 MiB
#           ring in overwrite mode written through once before (the steady
#           state of a ring that laps; a fresh one would add page faults)
#   plain sub: the same stream, pull fetches of 1024, one ack per batch
# Prints medians and min-max in msgs/s and MB/s, and the ratios bridge/plain.
# Usage: bench/nats.sh [BUILD_DIR]   (default build-bench-nats, made here)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-bench-nats}
REPS=${BENCH_REPS:-5}
[ -d "$B" ] || meson setup "$B" -Dtests=false -Dbuildtype=release >/dev/null
ninja -C "$B" tools/shmq-nats bench/bench_nats >/dev/null
NATSB=$B/tools/shmq-nats
BN=$B/bench/bench_nats
T=$(mktemp -d "${TMPDIR:-/tmp}/shmq-nats-bench.XXXXXX")
Q=$(mktemp -d /dev/shm/shmq-nats-bench.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nats-server -a 127.0.0.1 -p "$port" -js -sd "$T/js" >"$T/server.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || :; rm -rf "$T" "$Q"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
URL=nats://127.0.0.1:$port
ms() { date +%s%N; }
raw=$T/raw
: >"$raw"
for rep in $(seq "$REPS"); do
	for size in 64 4096; do
		n=$([ "$size" = 64 ] && echo 500000 || echo 100000)
		"$BN" fill "$Q/a" "$n" "$size"
		t0=$(ms); "$BN" pub "$URL" "P$rep$size" "$n" "$size" 256 >/dev/null; t1=$(ms)
		echo "plain-pub $size $n $(( t1 - t0 ))" >>"$raw"
		t0=$(ms); "$NATSB" export "$Q/a" --server "$URL" --stream "E$rep$size" --window 256 --until-end; t1=$(ms)
		echo "export $size $n $(( t1 - t0 ))" >>"$raw"
		t0=$(ms); "$BN" sub "$URL" "E$rep$size" "$n" 1024 >/dev/null; t1=$(ms)
		echo "plain-sub $size $n $(( t1 - t0 ))" >>"$raw"
		"$BN" warm "$Q/b"
		t0=$(ms); "$NATSB" import "$Q/b" --server "$URL" --stream "E$rep$size" --durable imp --batch 1024 --until-end; t1=$(ms)
		echo "import $size $n $(( t1 - t0 ))" >>"$raw"
		"$BN" del "$URL" "P$rep$size" >/dev/null
		"$BN" del "$URL" "E$rep$size" >/dev/null
		rm -f "$Q/a" "$Q/b"
	done
done
python3 - "$raw" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
res = {}
for kind, size, n, ns in rows:
    res.setdefault((kind, int(size)), []).append(int(n) / (int(ns) / 1e9))
print("%-10s %6s %14s %22s %10s" % ("side", "size", "median msg/s", "min-max msg/s", "MB/s"))
for size in (64, 4096):
    for kind in ("plain-pub", "export", "plain-sub", "import"):
        v = res[(kind, size)]
        m = st.median(v)
        print("%-10s %6d %14.0f %10.0f-%-11.0f %10.1f" % (kind, size, m, min(v), max(v), m * size / 1e6))
for size in (64, 4096):
    e = st.median(res[("export", size)]) / st.median(res[("plain-pub", size)])
    i = st.median(res[("import", size)]) / st.median(res[("plain-sub", size)])
    print("ratio %4d B: export/plain-pub %.2fx, import/plain-sub %.2fx" % (size, e, i))
PY
