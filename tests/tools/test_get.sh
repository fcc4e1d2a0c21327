#!/bin/bash
# SPDX-License-Identifier: MIT
# shmq get's options: --count, --timeout, --name (resume), --from latest,
# a killed get loses nothing for a named consumer, --sync modes of put.
. "$(dirname "$0")/lib.sh"

$BOUNDED "$SHMQ" create q
seq 1 100 | $BOUNDED "$SHMQ" put q --lines --sync every
expect_status 0 $? "put --sync every"

$BOUNDED "$SHMQ" get q --name a --lines --count 10 >o1
expect_status 0 $? "get --count 10"
[ "$(cat o1)" = "$(seq 1 10)" ] || fail "--count 10: $(cat o1 | xargs)"
$BOUNDED "$SHMQ" get q --name a --lines >o2
expect_status 0 $? "named get, second run"
[ "$(cat o2)" = "$(seq 11 100)" ] || fail "named resume: $(head -3 o2 | xargs)..."

# --timeout: nothing arrives, status 4 after about the timeout, one line.
$BOUNDED "$SHMQ" create idle
t0=$(date +%s%N)
$BOUNDED "$SHMQ" get idle --timeout 0.3 2>err
expect_status 4 $? "get --timeout 0.3"
ms=$((($(date +%s%N) - t0) / 1000000))
[ $ms -ge 250 ] && [ $ms -lt 5000 ] || fail "--timeout 0.3 took $ms ms"
expect_one_line err "get --timeout"
$BOUNDED "$SHMQ" get idle --timeout 0 2>err
expect_status 4 $? "get --timeout 0"

# --from latest sees only what is sent after it attached.
mkfifo in
exec 3<>in
$BOUNDED "$SHMQ" put l --create --lines --sync batch <in 3>&- &
p=$!
track $p
echo before >&3
wait_producer l
for i in $(seq 1 100); do
	"$SHMQ" stat l --json | grep -q '"messages":1,' && break
	sleep 0.05
done
$BOUNDED "$SHMQ" get l --from latest --lines >latest 3>&- &
g=$!
track $g
wait_consumers l 1
echo after >&3
exec 3>&-
wait $p
expect_status 0 $? "put --sync batch"
wait $g
expect_status 0 $? "get --from latest"
[ "$(cat latest)" = after ] || fail "--from latest got '$(cat latest | xargs)'"

# A named get killed while it cannot write its message out loses nothing:
# the message was not released, so the next run gets it again, whole.
$BOUNDED "$SHMQ" create k --size 4M --max-message 256K
head -c 200000 /dev/urandom >big
$BOUNDED "$SHMQ" put k <big
expect_status 0 $? "put of one 200000-byte message"
mkfifo stuck
exec 4<>stuck		# a reader that never reads: get blocks in write()
"$SHMQ" get k --name n >stuck 4>&- &
g=$!
track $g
sleep 0.5
kill -KILL $g
wait $g 2>/dev/null
exec 4<&-
$BOUNDED "$SHMQ" get k --name n >rest
expect_status 0 $? "named get after a killed run"
cmp -s big rest || fail "the message held by the killed get was lost"
# Stream mode reads into the ring and publishes before a read() that would
# block: data reaches the consumer while put still waits on stdin, both
# after a short read and after one that filled a whole message (64 KiB).
mkfifo sin
exec 3<>sin
$BOUNDED "$SHMQ" put sq --create <sin 3>&- &
sp=$!
track $sp
wait_producer sq
$BOUNDED "$SHMQ" get sq >sout 3>&- &
track $!
wait_consumers sq 1
wait_size() {	# FILE BYTES: up to 10 s
	local i
	for i in $(seq 1 200); do
		[ "$(wc -c <"$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
printf hello >&3
wait_size sout 5 || fail "stream: a short write did not reach the consumer"
dd if=/dev/zero bs=65536 count=1 status=none >&3
wait_size sout 65541 || fail "stream: a full 64 KiB read did not reach the consumer"
exec 3>&-
wait $sp
expect_status 0 $? "stream put"
exit 0
