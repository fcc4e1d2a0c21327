#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 10 item 9: scripts/demo.sh exits 0 and leaves nothing in its
# temporary directory (its EXIT trap ran `kill` on finished jobs under
# set -e, exited 1 and left a 514 MiB file in /tmp on every run). Run
# with the tools under test and a 1 MiB file instead of building.
# Usage: test_demo.sh SHMQ PRODUCER CONSUMER DEMO_SH
DEMO=$(realpath "$4")	# before lib.sh changes directory
. "$(dirname "$0")/lib.sh"

mkdir tmp
SHMQ_DEMO_BIN="$TOOLDIR" SHMQ_DEMO_SIZE=1M TMPDIR="$T/tmp" \
	$BOUNDED bash "$DEMO" >demo.out 2>demo.err
status=$?
[ "$status" -eq 0 ] || { cat demo.out demo.err >&2; fail "demo.sh: exit status $status"; }
grep -q '^\[consumer A\] id = 5, name = wangrui, age = 18$' demo.out ||
	fail "demo.sh: consumer A did not print its five records"
grep -q '^throughput: shmq ' demo.out || fail "demo.sh: no throughput line"
left=$(ls -A tmp)
[ -z "$left" ] || fail "demo.sh left in TMPDIR: $left"

# Killed half-way, it still removes what it made.
SHMQ_DEMO_BIN="$TOOLDIR" SHMQ_DEMO_SIZE=1M TMPDIR="$T/tmp" \
	bash "$DEMO" >/dev/null 2>&1 &
pid=$!
track $pid
for i in $(seq 1 100); do
	[ -n "$(ls -A tmp)" ] && break
	sleep 0.02
done
kill -TERM $pid
# bash runs its EXIT trap once the foreground command ends: the producer
# (1 s of records) and its open's sync, which a loaded disk stretches.
wait_pid $pid "demo.sh after SIGTERM" 60
left=$(ls -A tmp)
[ -z "$left" ] || fail "demo.sh killed with SIGTERM left in TMPDIR: $left"
exit 0
