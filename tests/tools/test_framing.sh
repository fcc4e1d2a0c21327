#!/bin/bash
# SPDX-License-Identifier: MIT
# The queue records each session's framing: get without a framing flag
# follows it; a flag that contradicts it is an error; a last line without
# its newline comes back byte for byte; a line longer than the maximum
# message ends the session as aborted after everything before it.
. "$(dirname "$0")/lib.sh"

seq 1 5 | $BOUNDED "$SHMQ" put m.q --create --lines
[ "$($BOUNDED "$SHMQ" get m.q | tr '\n' ' ')" = "1 2 3 4 5 " ] ||
	fail "get without --lines does not follow the lines session"

printf 'a\0b\0' | $BOUNDED "$SHMQ" put m.q --null
[ "$($BOUNDED "$SHMQ" get m.q | od -An -c | tr -s ' ')" = " a \\0 b \\0" ] ||
	fail "get without --null does not follow the NUL session"

# A byte stream read with --lines: a clear error, nothing written.
printf 'xyz' | $BOUNDED "$SHMQ" put m.q
$BOUNDED "$SHMQ" get m.q --lines >out 2>err
expect_status 1 $? "get --lines of a byte stream"
grep -q "sent as a byte stream" err || fail "contradiction message: $(cat err)"
[ ! -s out ] || fail "get --lines of a stream wrote: $(cat out)"
[ "$($BOUNDED "$SHMQ" get m.q)" = "xyz" ] || fail "the stream after the refusal"

# --lines input without a final newline comes out byte for byte.
printf 'one\ntwo' | $BOUNDED "$SHMQ" put m.q --lines
$BOUNDED "$SHMQ" get m.q >out
[ "$(od -An -c out | tr -s ' ')" = " o n e \\n t w o" ] ||
	fail "unterminated last line: $(od -An -c out)"
printf 'one\ntwo' | $BOUNDED "$SHMQ" put m.q --lines
$BOUNDED "$SHMQ" get m.q --lines >out
[ "$(od -An -c out | tr -s ' ')" = " o n e \\n t w o" ] ||
	fail "unterminated last line with --lines: $(od -An -c out)"

# A line longer than the max message: the lines before it arrive, then
# the session ends as aborted (get: status 9); put says why, exits 1.
$BOUNDED "$SHMQ" create l.q --max-message 100
$BOUNDED "$SHMQ" get l.q --lines >got 2>get.err &
g=$!
track $g
wait_consumers l.q 1
{ seq 1 768; head -c 200 /dev/zero | tr '\0' x; echo; seq 769 1000; } |
	$BOUNDED "$SHMQ" put l.q --lines 2>put.err
expect_status 1 $? "put of a line longer than the max message"
grep -q "longer than the max message size" put.err || fail "put: $(cat put.err)"
wait $g
expect_status 9 $? "get of an aborted session"
grep -q "aborted" get.err || fail "get: $(cat get.err)"
[ "$(sha <got)" = "$(seq 1 768 | sha)" ] || fail "the 768 lines before the long one"
exit 0
