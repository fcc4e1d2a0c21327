#!/bin/bash
# SPDX-License-Identifier: MIT
# --group members share the stream, each message once in all; an observer
# that was lapped reports the exact loss and exits 5.
. "$(dirname "$0")/lib.sh"

$BOUNDED "$CONSUMER" s --create --group workers >w1 &
c1=$!
track $c1
$BOUNDED "$CONSUMER" s --create --group workers >w2 &
c2=$!
track $c2
wait_members s 2
$BOUNDED "$PRODUCER" s --create --count 1000 --interval 0
expect_status 0 $? "shmq-producer"
wait $c1
expect_status 0 $? "first member"
wait $c2
expect_status 0 $? "second member"
for i in $(seq 1 1000); do
	echo "id = $i, name = wangrui, age = 18"
done | sort >want
sort w1 w2 >got
cmp -s want got || fail "the group did not get each record exactly once"
note "members got $(wc -l <w1) and $(wc -l <w2) records"

$BOUNDED "$SHMQ" get g --create --group gg --lines >g1 &
g1=$!
track $g1
$BOUNDED "$SHMQ" get g --create --group gg --lines >g2 &
g2=$!
track $g2
wait_members g 2
seq 1 100000 | $BOUNDED "$SHMQ" put g --create --lines
expect_status 0 $? "put to a group"
wait $g1
expect_status 0 $? "get --group (1)"
wait $g2
expect_status 0 $? "get --group (2)"
[ "$(sort -n g1 g2 | sha)" = "$(seq 1 100000 | sha)" ] || fail "get --group: not each line once"

# An observer stopped while the producer laps it: exact loss, status 5.
# It reads one message first: the library counts losses from the last
# sequence an observer saw.
$BOUNDED "$SHMQ" create o --when-full overwrite --size 64K --max-message 1K
mkfifo in
exec 3<>in
$BOUNDED "$SHMQ" put o --lines <in 3>&- &
p=$!
track $p
"$SHMQ" get o --observe --lines >obs 2>obs.err 3>&- &
ob=$!
track $ob
wait_consumers o 1
echo 0 >&3
for i in $(seq 1 200); do
	[ -s obs ] && break
	sleep 0.05
done
[ "$(cat obs)" = 0 ] || fail "observer: first message '$(cat obs)'"
kill -STOP $ob
seq 1 100000 >&3
exec 3>&-
wait $p
expect_status 0 $? "put past a stopped observer"
kill -CONT $ob
wait_pid $ob "observer"
expect_status 5 $WAITED_STATUS "lapped observer"
grep -q "overrun: [0-9]* messages* lost before seq" obs.err || fail "observer: $(cat obs.err)"
[ "$(tail -n 1 obs)" = 100000 ] || fail "observer: last line $(tail -n 1 obs)"
lost=$(sed -n 's/.*overrun: \([0-9]*\) message.*/\1/p' obs.err | awk '{ s += $1 } END { print s + 0 }')
got=$(wc -l <obs)
[ $((lost + got)) -eq 100001 ] || fail "observer: $got read + $lost lost != 100001"
sort -n -c obs || fail "observer: out of order"
note "observer read $got, lost $lost"
exit 0
