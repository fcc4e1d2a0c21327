#!/bin/bash
# SPDX-License-Identifier: MIT
# Rerunning a pipeline on the same path works like a FIFO (sessions): N
# runs in a row, the consumer first or the producer first, each consumer
# gets exactly its run's data and its end of stream; an empty session
# still delivers its end; get --follow reads across sessions; nothing
# hangs (every command is bounded).
. "$(dirname "$0")/lib.sh"
N=${RERUNS:-50}

# Consumer first: get waits for the producer, as a FIFO reader does.
for i in $(seq 1 "$N"); do
	$BOUNDED "$SHMQ" get r.q --create --lines >out &
	g=$!
	track $g
	[ "$i" -eq 1 ] && wait_consumers r.q 1
	echo "run-$i" | $BOUNDED "$SHMQ" put r.q --create --lines
	expect_status 0 $? "put, run $i (consumer first)"
	wait $g
	expect_status 0 $? "get, run $i (consumer first)"
	[ "$(cat out)" = "run-$i" ] || { "$SHMQ" stat r.q >&2; fail "consumer first, run $i: got [$(cat out)]"; }
done
note "consumer first: $N runs"

# Producer first: the data waits in the queue for the next reader.
for i in $(seq 1 "$N"); do
	printf 'a-%s\nb-%s\n' "$i" "$i" | $BOUNDED "$SHMQ" put p.q --create --lines
	expect_status 0 $? "put, run $i (producer first)"
	$BOUNDED "$SHMQ" get p.q --create --lines >out
	expect_status 0 $? "get, run $i (producer first)"
	[ "$(tr '\n' ' ' <out)" = "a-$i b-$i " ] || fail "producer first, run $i: got [$(cat out)]"
done
note "producer first: $N runs"

# More data than the ring, rerun: the new put never blocks for ever.
$BOUNDED "$SHMQ" create big.q --size 64K --max-message 1K
for i in 1 2 3; do
	$BOUNDED "$SHMQ" get big.q --lines >out &
	g=$!
	track $g
	seq 1 20000 | $BOUNDED "$SHMQ" put big.q --lines
	expect_status 0 $? "put larger than the ring, run $i"
	wait $g
	expect_status 0 $? "get larger than the ring, run $i"
	[ "$(sha <out)" = "$(seq 1 20000 | sha)" ] || fail "larger than the ring, run $i"
done

# An empty session still delivers its end, to a reader that comes later.
true | $BOUNDED "$SHMQ" put e.q --create --lines
$BOUNDED "$SHMQ" get e.q --lines --timeout 2 >out
expect_status 0 $? "get of an empty session"
[ ! -s out ] || fail "empty session: got [$(cat out)]"
# ... and a reader after that one waits for the next session.
$BOUNDED "$SHMQ" get e.q --lines --timeout 0.3 >out
expect_status 4 $? "get after the empty session was read"

# get --follow reads three sessions, then stops at --count.
$BOUNDED "$SHMQ" get f.q --create --lines --follow --count 6 >out &
g=$!
track $g
wait_consumers f.q 1
for s in 1 2 3; do
	printf '%s-1\n%s-2\n' "$s" "$s" | $BOUNDED "$SHMQ" put f.q --lines
done
wait $g
expect_status 0 $? "get --follow --count 6"
[ "$(tr '\n' ' ' <out)" = "1-1 1-2 2-1 2-2 3-1 3-2 " ] || fail "follow: [$(cat out)]"
# -f with --timeout: idle for the timeout, then status 4.
$BOUNDED "$SHMQ" get f.q -l -f --timeout 0.3 >out
expect_status 4 $? "get -f --timeout"
exit 0
