#!/bin/bash
# SPDX-License-Identifier: MIT
# The producer is SIGKILLed: `shmq get` drains what was committed and exits
# with the "producer died" status (3) within 2 s.
. "$(dirname "$0")/lib.sh"

mkfifo in
exec 3<>in		# held open: put never sees EOF on its own
"$SHMQ" put q --create --lines <in 3>&- &
putpid=$!
track $putpid
$BOUNDED "$SHMQ" get q --create --lines >out 2>get.err 3>&- &
getpid=$!
track $getpid
seq 1 1000 >&3
for i in $(seq 1 200); do
	[ "$(wc -l <out)" -ge 1000 ] && break
	sleep 0.05
done
[ "$(sha <out)" = "$(seq 1 1000 | sha)" ] || fail "get did not receive 1..1000"
kill -KILL $putpid
t0=$(date +%s%N)
wait $getpid
status=$?
t1=$(date +%s%N)
expect_status 3 $status "get after the producer died"
expect_one_line get.err "get after the producer died"
grep -q "producer died" get.err || fail "no 'producer died' message"
ms=$(((t1 - t0) / 1000000))
note "get noticed the death after $ms ms"
[ $ms -le 2000 ] || fail "get took $ms ms to notice (more than 2 s)"

# A reader that attaches after that session ended and was read waits for
# the next producer, as a FIFO reader waits for a writer (sessions) ...
$BOUNDED "$SHMQ" get q --lines --timeout 0.5 >late 2>/dev/null
expect_status 4 $? "get attached after the dead session was read"
# ... and gets the next session whole, with its end.
$BOUNDED "$SHMQ" get q --lines >late 2>late.err &
getpid=$!
track $getpid
sleep 0.2
seq 1 3 | $BOUNDED "$SHMQ" put q --lines
expect_status 0 $? "the next put"
wait $getpid
expect_status 0 $? "get of the next session"
[ "$(tr '\n' ' ' <late)" = "1 2 3 " ] || fail "next session: $(cat late)"
exit 0
