#!/bin/bash
# SPDX-License-Identifier: MIT
# get --durable reads only what is below the durable watermark: nothing of
# an unsynced queue while the producer is open, everything once `shmq
# sync` ran; with put --sync every, everything as it comes.
. "$(dirname "$0")/lib.sh"

$BOUNDED "$SHMQ" create q
mkfifo in
exec 3<>in
$BOUNDED "$SHMQ" put q --lines <in 3>&- &
p=$!
track $p
seq 1 3 >&3
for i in $(seq 1 200); do
	"$SHMQ" stat q --json | grep -q '"messages":3,' && break
	sleep 0.05
done
"$SHMQ" stat q --json | grep -q '"messages":3,' || fail "put did not send 3 messages"

$BOUNDED "$SHMQ" get q --durable --lines --timeout 0.5 >d1 2>err
expect_status 4 $? "get --durable before any sync"
[ ! -s d1 ] || fail "get --durable read unsynced messages: $(cat d1)"

$BOUNDED "$SHMQ" sync q
expect_status 0 $? "sync"
[ "$($BOUNDED "$SHMQ" get q --durable --lines --count 3 | tr '\n' ' ')" = "1 2 3 " ] ||
	fail "get --durable after sync"
exec 3>&-
wait $p
expect_status 0 $? "put"

# Each message durable before the next: a durable reader keeps up.
$BOUNDED "$SHMQ" get e --create --durable --lines >d2 &
g=$!
track $g
wait_consumers e 1
seq 1 200 | $BOUNDED "$SHMQ" put e --create --lines --sync every
expect_status 0 $? "put --sync every"
wait $g
expect_status 0 $? "get --durable"
cmp -s d2 <(seq 1 200) || fail "get --durable: not 1..200"

$BOUNDED "$SHMQ" get e --durable --group g 2>err
expect_status 2 $? "--durable with --group"
exit 0
