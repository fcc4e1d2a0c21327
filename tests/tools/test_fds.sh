#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 10 item 2: the standard descriptors never become the queue file.
# With stdin, stdout or stderr closed, the tools leave the queue file as
# it was (no error message over the header, no header sent as messages);
# a command that needs the closed stream fails with status 1 before it
# attaches. The library never keeps a descriptor on 0-2 (fdcheck).
# Usage: test_fds.sh SHMQ PRODUCER CONSUMER FDCHECK
FDCHECK=$(realpath "$4")	# before lib.sh changes directory
. "$(dirname "$0")/lib.sh"

# The header and the ring: everything but the slot table, which a
# consumer's attach and detach rewrite (its pid and times).
valid_and_same() {
	local q=$1 before=$2 what=$3
	$BOUNDED "$SHMQ" stat "$q" >/dev/null 2>stat.err ||
		fail "$what: the queue no longer opens: $(cat stat.err)"
	[ "$(head -c 320 "$q" | sha)" = "$before" ] ||
		fail "$what: the header changed"
	grep -q "no message within\|shmq drop" "$q" &&
		fail "$what: a tool message went into the file"
	return 0
}

# 1. shmq get with stderr closed: its timeout message went over the magic.
$BOUNDED "$SHMQ" create c.q
before=$(head -c 320 c.q | sha)
$BOUNDED "$SHMQ" get c.q --timeout 0.1 2>&-
expect_status 4 $? "get --timeout 0.1 2>&-"
valid_and_same c.q "$before" "get 2>&-"
# The same for errors of other commands, which open the queue first.
$BOUNDED "$SHMQ" drop c.q nobody 2>&-
expect_status 1 $? "drop of a missing name 2>&-"
valid_and_same c.q "$before" "drop 2>&-"
# And for a whole pipeline run with stderr closed: data goes through.
seq 1 1000 | $BOUNDED "$SHMQ" put p.q --create --lines 2>&- &
track $!
$BOUNDED "$SHMQ" get p.q --create --lines >p.out 2>&-
expect_status 0 $? "put | get with stderr closed"
cmp -s p.out <(seq 1 1000) || fail "put | get 2>&-: data differs"

# 2. put with stdin closed: it sent its own header as messages. Now it
# fails like `cat <&-` and leaves the queue (here: every byte) alone.
$BOUNDED "$SHMQ" create q
hash=$(sha <q)
$BOUNDED "$SHMQ" put q --create <&- 2>err
expect_status 1 $? "put <&-"
expect_one_line err "put <&-"
grep -q "reading stdin: Bad file descriptor" err || fail "put <&-: $(cat err)"
[ "$(sha <q)" = "$hash" ] || fail "put <&- changed the queue file"
$BOUNDED "$SHMQ" put fresh.q --create <&- 2>/dev/null
expect_status 1 $? "put --create <&- on a missing queue"
[ -e fresh.q ] && fail "put --create <&- created the queue"
# No producer ever attached: a reader sees nothing and times out.
$BOUNDED "$SHMQ" stat q --json | grep -q '"producer":{"state":"none"' ||
	fail "put <&- attached a producer"

# 3. get with stdout closed: "position 3200 outside the ring" and a
# corrupt queue. Now status 1 before attaching; the messages stay.
seq 1 3 | $BOUNDED "$SHMQ" put q --lines
expect_status 0 $? "put 1 2 3"
hash=$(sha <q)
$BOUNDED "$SHMQ" get q --lines >&- 2>err
expect_status 1 $? "get >&-"
expect_one_line err "get >&-"
grep -q "writing stdout: Bad file descriptor" err || fail "get >&-: $(cat err)"
[ "$(sha <q)" = "$hash" ] || fail "get >&- changed the queue file"
$BOUNDED "$CONSUMER" q >&- 2>err
expect_status 1 $? "shmq-consumer >&-"
[ "$(sha <q)" = "$hash" ] || fail "shmq-consumer >&- changed the queue file"
# stat has nothing to write to either; create and rm need no stream.
$BOUNDED "$SHMQ" stat q >&- 2>/dev/null
expect_status 1 $? "stat >&-"
[ "$(sha <q)" = "$hash" ] || fail "stat >&- changed the queue file"
$BOUNDED "$SHMQ" get q --lines >out
expect_status 0 $? "get after the refusals"
cmp -s out <(seq 1 3) || fail "the messages did not survive: $(cat out)"
$BOUNDED "$SHMQ" create all.q <&- >&- 2>&-
expect_status 0 $? "create with 0-2 closed"
$BOUNDED "$SHMQ" rm all.q <&- >&- 2>&-
expect_status 0 $? "rm with 0-2 closed"
[ -e all.q ] && fail "rm with 0-2 closed left the file"

# 4. The library on its own: with 0-2 closed, no descriptor of a queue
# lands there, and all are close-on-exec.
mkdir lib
$BOUNDED "$FDCHECK" lib 2>fdcheck.out
expect_status 0 $? "fdcheck: $(cat fdcheck.out)"
grep -q "fdcheck: ok" fdcheck.out || fail "fdcheck: $(cat fdcheck.out)"
exit 0
