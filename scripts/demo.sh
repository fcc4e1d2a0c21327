#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what is missing, build, and run the demo: the seed's student-record
# writer with two readers on one queue, then a throughput line. It exits 0
# and leaves nothing behind in $TMPDIR (/tmp by default).
# For tests (tests/tools/test_demo.sh): SHMQ_DEMO_BIN=DIR uses the tools in
# DIR instead of installing and building; SHMQ_DEMO_SIZE=BYTES (default
# 512M, head -c syntax) is the size of the throughput file.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SHMQ_DEMO_BIN:-}" ]; then
	bin=$(realpath "$SHMQ_DEMO_BIN")
else
	. scripts/deps.sh
	shmq_install_deps
	[ -d build-demo ] || meson setup build-demo -Dtests=false -Dbuildtype=release >/dev/null
	ninja -C build-demo >/dev/null
	bin=$PWD/build-demo/tools
fi
size=${SHMQ_DEMO_SIZE:-512M}
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmq-demo.XXXXXX")

# An EXIT trap runs under set -e too: one failing command in it would end
# it before the rm (a `kill` of jobs that already finished did, and left
# the 512 MiB file behind). Nothing in it may fail, and the status the
# script had is kept.
cleanup() {
	local status=$? j
	for j in $(jobs -p); do
		kill "$j" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$dir" || true
	exit "$status"
}
trap cleanup EXIT
q=$dir/students.q

echo "== one producer, two consumers on $q"
"$bin/shmq" create "$q" --size 1M
"$bin/shmq-consumer" "$q" --count 5 | sed 's/^/[consumer A] /' &
"$bin/shmq-consumer" "$q" --count 5 | sed 's/^/[consumer B] /' &
sleep 0.3
"$bin/shmq-producer" "$q" --count 5 --interval 200
wait
"$bin/shmq" stat "$q"
"$bin/shmq" rm "$q"

echo "== throughput: a $size file through 'shmq put | shmq get' and through a FIFO"
now() { date +%s%N; }
head -c "$size" /dev/urandom >"$dir/data"
bytes=$(stat -c %s "$dir/data")
t0=$(now)
"$bin/shmq" put "$dir/pipe.q" --create <"$dir/data" |
	"$bin/shmq" get "$dir/pipe.q" --create >/dev/null
t1=$(now)
"$bin/shmq" rm "$dir/pipe.q"
mkfifo "$dir/fifo"
cat "$dir/fifo" >/dev/null &
cat "$dir/data" >"$dir/fifo"
wait
t2=$(now)
awk -v n="$bytes" -v a=$((t1 - t0)) -v b=$((t2 - t1)) 'BEGIN {
	printf "throughput: shmq %.2f GB/s, FIFO %.2f GB/s (%.2fx); one run, see bench/run.sh for medians\n",
		n / a, n / b, b / a }'
