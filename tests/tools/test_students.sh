#!/bin/bash
# SPDX-License-Identifier: MIT
# shmq-producer --count 100 with two shmq-consumers: each prints ids 1..100
# once, in order, in the seed's line format.
. "$(dirname "$0")/lib.sh"

$BOUNDED "$CONSUMER" s --create >c1 &
c1=$!
track $c1
$BOUNDED "$CONSUMER" s --create >c2 &
c2=$!
track $c2
wait_consumers s 2
$BOUNDED "$PRODUCER" s --create --count 100 --interval 0
expect_status 0 $? "shmq-producer"
wait $c1
expect_status 0 $? "first shmq-consumer"
wait $c2
expect_status 0 $? "second shmq-consumer"
for i in $(seq 1 100); do
	echo "id = $i, name = wangrui, age = 18"
done >want
cmp -s want c1 || { diff want c1 | head >&2; fail "first consumer's output"; }
cmp -s want c2 || { diff want c2 | head >&2; fail "second consumer's output"; }

# The other flags, the default one-second interval, and --count on a
# consumer that attaches late (oldest start: it still sees every record).
t0=$(date +%s%N)
$BOUNDED "$PRODUCER" s2 --create --count 2 --first-id 41 --name "li lei" --age 20
expect_status 0 $? "shmq-producer with flags"
ms=$((($(date +%s%N) - t0) / 1000000))
[ $ms -ge 900 ] || fail "two records took $ms ms: the interval is not 1 s"
$BOUNDED "$CONSUMER" s2 --count 1 >c3
expect_status 0 $? "shmq-consumer --count 1"
[ "$(cat c3)" = "id = 41, name = li lei, age = 20" ] || fail "flags: got '$(cat c3)'"

# A named consumer resumes after the last record it printed.
$BOUNDED "$PRODUCER" s3 --create --count 10 --interval 0
$BOUNDED "$CONSUMER" s3 --name n --count 4 >n1
expect_status 0 $? "named consumer, first run"
$BOUNDED "$CONSUMER" s3 --name n >n2
expect_status 0 $? "named consumer, second run"
[ "$(cut -d, -f1 n1 | tr -d 'id =' | xargs)" = "1 2 3 4" ] || fail "named 1st: $(cat n1)"
[ "$(cut -d, -f1 n2 | tr -d 'id =' | xargs)" = "5 6 7 8 9 10" ] || fail "named 2nd: $(cat n2)"

# SIGTERM closes the producer cleanly: the consumer sees the end (0).
$BOUNDED "$CONSUMER" s4 --create >c4 &
c4=$!
track $c4
wait_consumers s4 1
# The producer runs without timeout(1) and gets the TERM itself: after
# passing a signal on, timeout sends SIGCONT, which can cancel the SIGSTOP
# of LeakSanitizer's exit-time tracer and hang the ASan build (lib.sh,
# run_for). wait_pid is the watchdog, with a long grace: the close runs in
# an ASan build on a loaded machine.
"$PRODUCER" s4 --interval 50 &
p4=$!
track $p4
# Signal it once it is open: its open syncs the ring, which a loaded disk
# can stretch.
wait_producer s4
sleep 0.3
kill -TERM $p4
wait_pid $p4 "shmq-producer after SIGTERM" 120
expect_status 0 $WAITED_STATUS "shmq-producer after SIGTERM"
wait $c4
expect_status 0 $? "shmq-consumer after the producer's SIGTERM"
[ "$(head -n 1 c4)" = "id = 1, name = wangrui, age = 18" ] || fail "SIGTERM run: $(head -n 1 c4)"
exit 0
