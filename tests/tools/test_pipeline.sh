#!/bin/bash
# SPDX-License-Identifier: MIT
# seq 1 2000000 | shmq put -> shmq get is byte-identical, in MODE (stream,
# lines or null), with the consumer started before and after the producer.
. "$(dirname "$0")/lib.sh"

mode=${1:-stream}
case $mode in
stream) flags= ;;
lines) flags=--lines ;;
null) flags=--null ;;
*) fail "unknown mode $mode" ;;
esac

gen() {
	if [ "$mode" = null ]; then
		seq 1 2000000 | tr '\n' '\0'
	else
		seq 1 2000000
	fi
}

want=$(gen | sha)

note "$mode: consumer first"
$BOUNDED "$SHMQ" get q1 --create $flags >out1 &
getpid=$!
track $getpid
wait_consumers q1 1
gen | $BOUNDED "$SHMQ" put q1 --create $flags
expect_status 0 $? "put (consumer first)"
wait $getpid
expect_status 0 $? "get (consumer first)"
[ "$(sha <out1)" = "$want" ] || fail "$mode, consumer first: output differs"

note "$mode: producer first"
gen | $BOUNDED "$SHMQ" put q2 --create $flags &
putpid=$!
track $putpid
wait_producer q2
sleep 0.2
$BOUNDED "$SHMQ" get q2 $flags >out2
expect_status 0 $? "get (producer first)"
wait $putpid
expect_status 0 $? "put (producer first)"
[ "$(sha <out2)" = "$want" ] || fail "$mode, producer first: output differs"
exit 0
