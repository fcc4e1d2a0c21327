#!/bin/bash
# SPDX-License-Identifier: MIT
# A queue file truncated under the tools: no signal death, the one-line
# error "queue file truncated" and status 7 (docs/tools.md).
. "$(dirname "$0")/lib.sh"

# The producer is attached and sending when the file shrinks.
mkfifo in
exec 3<>in
"$SHMQ" put q --create --lines <in 2>put.err 3>&- &
p=$!
track $p
echo one >&3
wait_producer q
truncate -s 4096 q
seq 1 200000 >&3 &
w=$!
track $w
wait_pid $p "put on a truncated queue"
expect_status 7 $WAITED_STATUS "put on a truncated queue"
expect_one_line put.err "put on a truncated queue"
grep -q "queue file truncated" put.err || fail "put: $(cat put.err)"
kill $w 2>/dev/null
exec 3>&-

# A consumer attached and waiting when the file shrinks.
$BOUNDED "$SHMQ" create r
mkfifo in2
exec 3<>in2
"$SHMQ" put r --lines <in2 3>&- &
p=$!
track $p
"$SHMQ" get r --lines >/dev/null 2>get.err 3>&- &
g=$!
track $g
wait_consumers r 1
echo x >&3
sleep 0.2
truncate -s 4096 r
seq 1 200000 >&3 &
w=$!
track $w
wait_pid $g "get on a truncated queue"
[ $WAITED_STATUS -lt 128 ] || fail "get died of signal $((WAITED_STATUS - 128))"
[ $WAITED_STATUS -ne 0 ] || fail "get exited 0 on a truncated queue"
expect_one_line get.err "get on a truncated queue"
grep -q "truncated" get.err || fail "get: $(cat get.err)"
kill $w 2>/dev/null
exec 3>&-

# Attaching to a file that is already truncated is a clear error too.
$BOUNDED "$SHMQ" create s
truncate -s 4096 s
for cmd in get stat put; do
	$BOUNDED "$SHMQ" $cmd s </dev/null >/dev/null 2>err
	st=$?
	[ $st -ne 0 ] && [ $st -lt 128 ] || fail "$cmd on a truncated file: status $st"
	expect_one_line err "$cmd on a truncated file"
done
# A SIGBUS that is no fault in the queue mapping (here: sent by kill) is
# not explained as truncation: the tool dies of it as it would without a
# handler.
ulimit -c 0
$BOUNDED "$SHMQ" create b
"$SHMQ" get b >/dev/null 2>bus.err &
g=$!
track $g
wait_consumers b 1
kill -BUS $g
wait_pid $g "get sent SIGBUS"
expect_status 135 $WAITED_STATUS "get sent SIGBUS (128 + SIGBUS)"
grep -q truncated bus.err && fail "a SIGBUS from kill reported as truncation"
exit 0
