#!/bin/bash
# SPDX-License-Identifier: MIT
# Consumers that hold the producer back: `shmq drop` removes a dead named
# consumer or group (and refuses a live one with status 8); `shmq policy
# --evict-after` on a running queue makes the producer evict a SIGSTOPped
# `shmq get`, which exits 6 ("evicted") once it runs again.
. "$(dirname "$0")/lib.sh"

json_consumer() {	# PATH NAME -> that consumer's JSON object
	"$SHMQ" stat "$1" --json | grep -o "{\"slot\":[0-9]*,\"kind\":\"[a-z]*\",\"name\":\"$2\"[^}]*}"
}

# --- drop ------------------------------------------------------------
# The producer stays open, so that a live consumer waits instead of
# reaching EOF.
mkfifo din
exec 4<>din
$BOUNDED "$SHMQ" put d --create --lines <din &
dp=$!
track $dp
seq 1 10 >&4
wait_producer d
[ "$($BOUNDED "$SHMQ" get d --name audit --lines --count 3 | tr '\n' ' ')" = "1 2 3 " ] ||
	fail "named consumer: first three"
$BOUNDED "$SHMQ" get d --group gg --lines --count 1 >/dev/null
expect_status 0 $? "a group member"
json_consumer d audit | grep -q '"alive":false,"holding":true,"evicted":false,"state":"dead"' ||
	fail "audit is not dead and holding: $(json_consumer d audit)"
"$SHMQ" stat d | grep -Eq '^ +[0-9]+ named +audit +[0-9]+ dead +yes ' ||
	fail "stat table: $("$SHMQ" stat d)"

# Not under timeout(1): it ends by our TERM (lib.sh, run_for, says why).
"$SHMQ" get d --name busy --lines >/dev/null &
b=$!
track $b
wait_consumers d 1
$BOUNDED "$SHMQ" drop d busy 2>err
expect_status 8 $? "drop of a live consumer"
expect_one_line err "drop of a live consumer"
grep -q "cannot drop busy: it is alive" err || fail "drop busy: $(cat err)"

$BOUNDED "$SHMQ" drop d audit
expect_status 0 $? "drop of a dead named consumer"
json_consumer d audit && fail "audit still listed after drop"
$BOUNDED "$SHMQ" drop d gg
expect_status 0 $? "drop of a group without members"
json_consumer d gg && fail "gg still listed after drop"
$BOUNDED "$SHMQ" drop d audit 2>err
expect_status 1 $? "drop of a name that is gone"
expect_one_line err "drop of a name that is gone"
$BOUNDED "$SHMQ" drop d 2>err
expect_status 2 $? "drop without NAME"
kill $b
wait_pid $b "the busy consumer after SIGTERM" 30
exec 4>&-

# --- eviction ----------------------------------------------------------
$BOUNDED "$SHMQ" create e --size 64K --max-message 1K
[ "$("$SHMQ" policy e | tail -n 1)" = "evict after  never" ] ||
	fail "policy of a new queue: $("$SHMQ" policy e)"
mkfifo in
exec 3<>in
$BOUNDED "$SHMQ" put e --lines <in 3>&- &
p=$!
track $p
$BOUNDED "$SHMQ" get e --lines >fast 3>&- &
f=$!
track $f
"$SHMQ" get e --name slow --lines >slow 2>slow.err 3>&- &
s=$!
track $s
wait_consumers e 2
echo 1 >&3
for i in $(seq 1 200); do
	[ -s slow ] && break
	sleep 0.05
done
[ "$(cat slow)" = 1 ] || fail "slow consumer: first line '$(cat slow)'"
kill -STOP $s

# The producer reads the delay each time it waits: no restart needed.
$BOUNDED "$SHMQ" policy e --evict-after 0.5
expect_status 0 $? "policy --evict-after"
[ "$("$SHMQ" policy e | tail -n 1)" = "evict after  0.500 s" ] ||
	fail "policy after the change: $("$SHMQ" policy e)"
seq 2 50000 >&3 &
w=$!
track $w
exec 3>&-
wait_pid $p "put held back by a stopped consumer"
expect_status 0 $WAITED_STATUS "put after the eviction"
wait $f
expect_status 0 $? "the fast consumer"
[ "$(sha <fast)" = "$(seq 1 50000 | sha)" ] || fail "fast consumer: not 1..50000"
json_consumer e slow | grep -q '"evicted":true,"state":"evicted"' ||
	fail "slow is not evicted: $(json_consumer e slow)"
"$SHMQ" stat e | grep -Eq '^ +[0-9]+ named +slow +[0-9]+ evicted ' ||
	fail "stat table: $("$SHMQ" stat e)"

kill -CONT $s
wait_pid $s "the evicted get"
cat slow.err >&2; expect_status 6 $WAITED_STATUS "the evicted get"
expect_one_line slow.err "the evicted get"
grep -q "evicted" slow.err || fail "evicted get: $(cat slow.err)"
[ "$(head -n 1 slow)" = 1 ] || fail "evicted get: lost its first line"

# An evicted named consumer cannot come back until it is dropped.
$BOUNDED "$SHMQ" get e --name slow --lines >/dev/null 2>err
expect_status 6 $? "reattaching an evicted name"
expect_one_line err "reattaching an evicted name"
$BOUNDED "$SHMQ" drop e slow
expect_status 0 $? "drop of the evicted consumer"
# The name attaches again; that session ended and was read (by fast), so
# it waits for the next producer (sessions): a timeout, not a refusal.
$BOUNDED "$SHMQ" get e --name slow --lines --count 1 --timeout 0.3 >/dev/null
expect_status 4 $? "the name after drop"

# create --evict-after sets the policy from the start.
$BOUNDED "$SHMQ" create e2 --evict-after 2
[ "$("$SHMQ" policy e2 | tail -n 1)" = "evict after  2.000 s" ] ||
	fail "create --evict-after: $("$SHMQ" policy e2)"
"$SHMQ" stat e2 --json | grep -q '"evict_after_ms":2000' || fail "stat: evict_after_ms"
$BOUNDED "$SHMQ" policy e2 --evict-after never
[ "$("$SHMQ" policy e2 | tail -n 1)" = "evict after  never" ] || fail "policy never"
$BOUNDED "$SHMQ" policy e2 --evict-after soon 2>/dev/null
expect_status 2 $? "policy with a bad value"
exit 0
