#!/bin/bash
# SPDX-License-Identifier: MIT
# Adversarial session tests through the real tools (issue 10 item 1;
# docs/decisions.md "Sessions"). Each DEFECT below fails on 14c24d1; the
# C reproducers with the analysis are in tests/test_sessions_adv.c.
. "$(dirname "$0")/lib.sh"
rc=0

# KNOWN LIMITATION (docs/decisions.md, "Sessions"): `get --group` runs
# two sessions together when both ended before a member looked: members
# learn an end only from prod_state, which by then describes session 2
# (END records are not claimed). Reported here, not failed; the broadcast
# reader below must stop at the first session's end.
seq 1 3 | $BOUNDED "$SHMQ" put g.q --create --lines
seq 4 6 | $BOUNDED "$SHMQ" put g.q --lines
$BOUNDED "$SHMQ" get g.q --group g --lines --timeout 2 >out 2>err
note "known limitation: get --group after two ended sessions printed [$(tr '\n' ' ' <out)]"
# The same with a broadcast reader holds.
seq 1 3 | $BOUNDED "$SHMQ" put b.q --create --lines
seq 4 6 | $BOUNDED "$SHMQ" put b.q --lines
$BOUNDED "$SHMQ" get b.q --lines --timeout 2 >out 2>err
expect_status 0 $? "broadcast get after two sessions"
[ "$(tr '\n' ' ' <out)" = "1 2 3 " ] || fail "broadcast: got [$(cat out)]"
$BOUNDED "$SHMQ" get b.q --lines --timeout 2 >out 2>err
expect_status 0 $? "broadcast get, second session"
[ "$(tr '\n' ' ' <out)" = "4 5 6 " ] || fail "broadcast, second: got [$(cat out)]"

# DEFECT: `put q; get q --durable` waits for ever (here: --timeout 2,
# status 4). put's default sync mode leaves the session not durable, and
# the durable reader syncs "the rest" only for an end it owns, which it
# can only own after reading a record it may not read until it is synced.
echo hello | $BOUNDED "$SHMQ" put d.q --create --lines
$BOUNDED "$SHMQ" get d.q --durable --timeout 2 >out 2>err
st=$?
if [ $st -ne 0 ] || [ "$(cat out)" != hello ]; then
	echo "FAIL: put; get --durable: status $st, got [$(cat out)] $(cat err)" >&2
	rc=1
fi

# DEFECT: a killed put, its data read (get exits 3), then a new put that
# stays open a while, and a get started meanwhile: the get exits 3 ("the
# producer died") at once with no output, and the new run's data is left
# for the next reader: the rerun loop of issue 10 shifts by one run from
# then on. The new put's open wrote the END record of the dead session;
# the get found it in the ring when it attached, and the rule "an END
# record already in the ring when the consumer attached is delivered"
# hands it a session that ended, and was read, before it came.
seq 1 100000 >big
"$SHMQ" create r.q
"$SHMQ" put r.q --lines <big &	# not under timeout(1): $! is put
p=$!
track $p
sleep 0.05
kill -KILL $p 2>/dev/null
wait $p 2>/dev/null
$BOUNDED "$SHMQ" get r.q --lines --timeout 5 >/dev/null 2>&1
expect_status 3 $? "get of the killed put's data"
(sleep 1; echo run-2) | $BOUNDED "$SHMQ" put r.q --lines &
p=$!
track $p
sleep 0.5	# the put is open, and has written the dead session's END
$BOUNDED "$SHMQ" get r.q --lines --timeout 5 >out 2>err
st=$?
wait $p
if [ $st -ne 0 ] || [ "$(cat out)" != "run-2" ]; then
	echo "FAIL: get started during the put after a killed put: status $st, got [$(cat out)] $(cat err)" >&2
	rc=1
fi

[ $rc -eq 0 ] && note "sessions_adv: all held"
exit $rc
