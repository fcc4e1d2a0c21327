#!/bin/bash
# SPDX-License-Identifier: MIT
# `shmq get | head -n 5`: the reader ends quietly when head exits, and the
# producer, whose only consumer it was, stops quietly with status 141.
. "$(dirname "$0")/lib.sh"

($BOUNDED "$SHMQ" get q --create 2>get.err | head -n 5 >out) &
reader=$!
track $reader
wait_consumers q 1
seq 1 100000000 | $BOUNDED "$SHMQ" put q --create 2>put.err
st=("${PIPESTATUS[@]}")
expect_status 141 "${st[1]}" "shmq put"
[ -s put.err ] && { cat put.err >&2; fail "shmq put was not quiet"; }
wait_pid $reader "get | head"
expect_status 141 $WAITED_STATUS "shmq get | head (pipefail: get's status)"
[ -s get.err ] && { cat get.err >&2; fail "shmq get was not quiet"; }
[ "$(cat out)" = "$(seq 1 5)" ] || fail "head did not see 1..5"

# The same with a group member and with an observer as the only consumer:
# every kind of consumer counts for the producer's "all have gone".
for kind in "--group g" "--observe"; do
	rm -f q2 out2
	($BOUNDED "$SHMQ" get q2 --create $kind 2>get.err | head -n 5 >out2) &
	reader=$!
	track $reader
	wait_consumers q2 1
	seq 1 100000000 | $BOUNDED "$SHMQ" put q2 --create 2>put.err
	st=("${PIPESTATUS[@]}")
	expect_status 141 "${st[1]}" "shmq put (consumer: get $kind | head)"
	wait_pid $reader "get $kind | head"
	[ "$(cat out2)" = "$(seq 1 5)" ] || fail "head after get $kind did not see 1..5"
done
exit 0
