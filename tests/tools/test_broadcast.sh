#!/bin/bash
# SPDX-License-Identifier: MIT
# Three broadcast `shmq get`s attached before the producer each receive
# every message, in order.
. "$(dirname "$0")/lib.sh"

pids=
for i in 1 2 3; do
	$BOUNDED "$SHMQ" get q --create --lines >out$i &
	pids="$pids $!"
	track $!
done
wait_consumers q 3
seq 1 300000 | $BOUNDED "$SHMQ" put q --create --lines
expect_status 0 $? "put"
want=$(seq 1 300000 | sha)
i=0
for p in $pids; do
	i=$((i + 1))
	wait $p
	expect_status 0 $? "get $i"
	[ "$(sha <out$i)" = "$want" ] || fail "get $i: output differs"
done
exit 0
