#!/bin/bash
# SPDX-License-Identifier: MIT
# --version and -h / --help on every command: shmq, each subcommand,
# shmq-producer and shmq-consumer. Each prints to stdout, exits 0, touches
# no queue, and wins over a missing PATH.
. "$(dirname "$0")/lib.sh"

VERSION='^shmq(-producer|-consumer)? [0-9]+\.[0-9]+\.[0-9]+$'

check() {	# WHAT USAGE-PREFIX CMD...
	local what=$1 usage=$2 flag
	shift 2
	for flag in -h --help; do
		$BOUNDED "$@" $flag >out 2>err </dev/null
		expect_status 0 $? "$what $flag"
		grep -q "^Usage: $usage" out || fail "$what $flag: $(head -n 2 out)"
		[ -s err ] && fail "$what $flag wrote to stderr: $(cat err)"
	done
	$BOUNDED "$@" --version >out 2>err </dev/null
	expect_status 0 $? "$what --version"
	grep -Eq "$VERSION" out || fail "$what --version: '$(cat out)'"
	[ "$(wc -l <out)" -eq 1 ] || fail "$what --version: more than one line"
	[ -s err ] && fail "$what --version wrote to stderr: $(cat err)"
}

check "shmq" "shmq COMMAND" "$SHMQ"
check "shmq-producer" "shmq-producer PATH" "$PRODUCER"
check "shmq-consumer" "shmq-consumer PATH" "$CONSUMER"
for cmd in create put get stat policy drop sync rm ls bench; do
	check "shmq $cmd" "shmq $cmd" "$SHMQ" $cmd
	# After a PATH too, as any option.
	check "shmq $cmd q" "shmq $cmd" "$SHMQ" $cmd q
done
[ -e q ] && fail "--help or --version created a queue"
# The version is the same everywhere.
[ "$("$SHMQ" put --version)" = "$("$SHMQ" --version)" ] || fail "versions differ"
[ "$("$PRODUCER" --version | cut -d' ' -f2)" = "$("$SHMQ" --version | cut -d' ' -f2)" ] ||
	fail "shmq-producer's version differs"

# Short options: put -l and -0 as --lines and --null; get -n, -f.
seq 1 5 | $BOUNDED "$SHMQ" put s.q --create -l
expect_status 0 $? "put -l"
[ "$($BOUNDED "$SHMQ" get s.q -l -n 2 | tr '\n' ' ')" = "1 2 " ] || fail "get -l -n 2"
printf 'x\0y\0' | $BOUNDED "$SHMQ" put z.q --create -0
expect_status 0 $? "put -0"
[ "$($BOUNDED "$SHMQ" get z.q -0 | tr '\0' ' ')" = "x y " ] || fail "put -0 | get -0"
$BOUNDED "$SHMQ" put s.q -l -0 </dev/null 2>err
expect_status 2 $? "put -l -0"
expect_one_line err "put -l -0"
exit 0
