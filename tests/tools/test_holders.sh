#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 10 item 4: a producer blocked by someone says who. After about a
# second on a full ring, put names the holder once on stderr (kind, name,
# pid, alive or dead, how far behind) and how to release it; put
# --timeout gives up with status 4; a consumer that finds every slot taken
# is told which holders are gone and how to free them.
. "$(dirname "$0")/lib.sh"

# Wait up to 10 s for a line matching PATTERN in FILE.
wait_line() {
	local file=$1 pattern=$2 i
	for i in $(seq 1 200); do
		grep -q -- "$pattern" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "never printed '$pattern': $(cat "$file")"
}

$BOUNDED "$SHMQ" put q --timeout soon </dev/null 2>err
expect_status 2 $? "put --timeout soon"

# The trap of the docs' --name audit example: audit read two messages and
# exited; it keeps its position, so a put of more than the ring blocks.
$BOUNDED "$SHMQ" create q --size 64K --max-message 1K
seq 1 5 | $BOUNDED "$SHMQ" put q --lines
$BOUNDED "$SHMQ" get q --name audit --lines --count 2 >/dev/null
seq 1 100000 | $BOUNDED "$SHMQ" put q --lines 2>put.err &
p=$!
track $p
wait_line put.err "held by named consumer audit"
line=$(grep "held by" put.err)
case $line in
*"shmq put: q: waiting "*" s for room in the ring, held by named consumer audit (slot 0, pid "[0-9]*", dead), "[0-9]*" messages ("[0-9]*" bytes) behind; 'shmq drop q audit' releases it") ;;
*) fail "holder message: $line" ;;
esac
# Once: still one line a while later, and put still waits.
sleep 1.5
expect_one_line put.err "the holder message"
kill -0 $p 2>/dev/null || fail "put stopped waiting"
# Dropping audit releases put, which then delivers everything it has.
$BOUNDED "$SHMQ" drop q audit
$BOUNDED "$SHMQ" get q --lines --follow --count 100003 >got
expect_status 0 $? "get after the drop"
wait_pid $p "put after the drop"
expect_status 0 $WAITED_STATUS "put after the drop"
cmp -s got <(seq 3 5; seq 1 100000) || fail "data after the drop differs"

# put --timeout: status 4 and one line that names the holder.
$BOUNDED "$SHMQ" get q --name audit --lines --count 1 --timeout 5 >/dev/null
expect_status 0 $? "audit reads one"
seq 1 100000 | $BOUNDED "$SHMQ" put q --lines --timeout 0.3 2>err
expect_status 4 $? "put --timeout 0.3 held by a dead consumer"
expect_one_line err "put --timeout"
grep -q "timed out after 0.3 s waiting for room in the ring, held by named consumer audit (.*dead).*'shmq drop q audit' releases it" err ||
	fail "put --timeout: $(cat err)"
# Stream mode too (one reservation at a time).
head -c 1M /dev/zero | $BOUNDED "$SHMQ" put q --timeout 0.3 2>err
expect_status 4 $? "stream put --timeout 0.3"
grep -q "held by named consumer audit" err || fail "stream put: $(cat err)"
$BOUNDED "$SHMQ" drop q audit

# Nobody attached: the data waits for the first consumer, and put says so.
$BOUNDED "$SHMQ" create n.q --size 64K --max-message 1K
seq 1 100000 | $BOUNDED "$SHMQ" put n.q --lines --timeout 0.3 2>err
expect_status 4 $? "put --timeout 0.3 with no consumer"
grep -q "no consumer holds it: the unread messages wait for the first consumer" err ||
	fail "no consumer: $(cat err)"

# A live holder, stopped: alive, its pid, and the eviction policy named.
$BOUNDED "$SHMQ" create a.q --size 64K --max-message 1K
$BOUNDED "$SHMQ" get a.q --name slow --lines >/dev/null &
g=$!
track $g
wait_consumers a.q 1
gpid=$(pgrep -P $g shmq || echo $g)
kill -STOP $gpid
seq 1 100000 | $BOUNDED "$SHMQ" put a.q --lines --timeout 3 2>err
expect_status 4 $? "put --timeout held by a stopped consumer"
grep -q "held by named consumer slow (slot 0, pid $gpid, alive)" err ||
	fail "stopped holder (pid $gpid): $(cat err)"
grep -q "it is alive: it must read on, or be stopped; 'shmq policy a.q --evict-after SECONDS'" err ||
	fail "stopped holder, the remedy: $(cat err)"
# The word after a second, then the timeout: two lines at most.
[ "$(wc -l <err)" -le 2 ] || fail "put --timeout 3: $(cat err)"
kill -CONT $gpid

# Every slot taken by consumers that are gone: named, with the remedy.
$BOUNDED "$SHMQ" create s.q --slots 4
seq 1 3 | $BOUNDED "$SHMQ" put s.q --lines
for n in c1 c2 c3 c4; do
	$BOUNDED "$SHMQ" get s.q --name $n --lines --count 1 >/dev/null
done
$BOUNDED "$SHMQ" get s.q --lines --timeout 1 2>err >/dev/null
expect_status 1 $? "get with every slot taken"
expect_one_line err "get with every slot taken"
grep -q "all 4 consumer slots are taken; 4 by consumers that are gone and keep their slot: named consumer c1 (pid [0-9]*, dead), named consumer c2 .*c4 (pid [0-9]*, dead); 'shmq drop s.q c1' frees one" err ||
	fail "every slot taken: $(cat err)"
$BOUNDED "$SHMQ" drop s.q c1
$BOUNDED "$SHMQ" get s.q --lines --count 1 >/dev/null
expect_status 0 $? "get after the drop freed a slot"
exit 0
