#!/bin/bash
# SPDX-License-Identifier: MIT
# put --wait: several writers on one queue take turns as producer; each
# delivers its stream whole, one session after another, and one
# get --follow --count reads them all. Without --wait the writers that
# find the role taken exit 8; --timeout bounds the wait (status 4).
. "$(dirname "$0")/lib.sh"

N=3
LINES=20000
$BOUNDED "$SHMQ" create w.q --size 64K --max-message 1K
$BOUNDED "$SHMQ" get w.q -l -f -n $((N * LINES)) >out &
g=$!
track $g
wait_consumers w.q 1
pids=""
for i in $(seq 1 $N); do
	seq -f "w$i-%.0f" 1 $LINES | $BOUNDED "$SHMQ" put w.q --wait -l 2>put$i.err &
	pids="$pids $!"
	track $!
done
for p in $pids; do
	wait $p
	expect_status 0 $? "put --wait ($(cat put*.err))"
done
wait $g
expect_status 0 $? "get --follow --count"
[ "$(wc -l <out)" -eq $((N * LINES)) ] || fail "got $(wc -l <out) lines"
# Whole streams, one after another: N runs of LINES lines, each in order.
awk -F- -v lines=$LINES '
	$1 != w { if (w != "" && n != lines) exit 1; if (seen[$1]++) exit 2; w = $1; n = 0 }
	{ if ($2 != ++n) exit 3 }
	END { if (n != lines) exit 4 }' out ||
	fail "the streams were mixed or cut (awk status $?): $(awk -F- '{print $1}' out | uniq -c)"
note "sessions in order: $(awk -F- '{print $1}' out | uniq | tr '\n' ' ')"

# Without --wait, a second writer while the first holds the role: 8.
mkfifo in
exec 3<>in
$BOUNDED "$SHMQ" put w.q -l <in 3>&- &
p=$!
track $p
wait_producer w.q
echo x | $BOUNDED "$SHMQ" put w.q -l 2>busy.err
expect_status 8 $? "put without --wait while the role is taken"
# --timeout bounds the wait: status 4, and one line that says why.
echo x | $BOUNDED "$SHMQ" put w.q -l --wait --timeout 0.3 2>timeout.err
expect_status 4 $? "put --wait --timeout while the role is taken"
expect_one_line timeout.err "put --wait --timeout"
grep -q 'no producer role within 0.3 seconds: queue already has a producer (pid [0-9]*)' timeout.err ||
	fail "put --wait --timeout: $(cat timeout.err)"
# With --wait it waits, and goes once the holder closes.
echo late | $BOUNDED "$SHMQ" put w.q --wait -l 2>wait.err 3>&- &
w=$!
track $w
sleep 0.3
kill -0 $w 2>/dev/null || fail "put --wait did not wait: $(cat wait.err)"
echo first >&3
exec 3>&-
wait $p
expect_status 0 $? "the first put"
wait $w
expect_status 0 $? "put --wait after the holder closed"
[ "$($BOUNDED "$SHMQ" get w.q -l -f -n 2 --timeout 5 | tr '\n' ' ')" = "first late " ] ||
	fail "the waiting put's line should follow the holder's"
exit 0
