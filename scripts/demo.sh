#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what is missing, build, and run the demo: the seed's student-record
# writer with two readers on one queue, then a throughput line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
shmq_install_deps

[ -d build-demo ] || meson setup build-demo -Dtests=false -Dbuildtype=release >/dev/null
ninja -C build-demo >/dev/null
bin=$PWD/build-demo/tools
dir=$(mktemp -d /tmp/shmq-demo.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
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

echo "== throughput: 512 MiB file through 'shmq put | shmq get' and through a FIFO"
now() { date +%s%N; }
head -c 512M /dev/urandom >"$dir/data"
t0=$(now)
"$bin/shmq" put "$dir/pipe.q" --create <"$dir/data" |
	"$bin/shmq" get "$dir/pipe.q" --create >/dev/null
t1=$(now)
mkfifo "$dir/fifo"
cat "$dir/fifo" >/dev/null &
cat "$dir/data" >"$dir/fifo"
wait
t2=$(now)
awk -v a=$((t1 - t0)) -v b=$((t2 - t1)) 'BEGIN {
	printf "throughput: shmq %.2f GB/s, FIFO %.2f GB/s (%.2fx); one run, see bench/run.sh for medians\n",
		536870912 / a, 536870912 / b, b / a }'
