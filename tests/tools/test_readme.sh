#!/bin/bash
# SPDX-License-Identifier: MIT
# Every example in README.md runs: each ```sh block (except the
# `bash scripts/...` set-up commands, which install packages) with the
# built tools first in PATH, in a fresh directory that stands in for
# /dev/shm; and the ```c fragment, wrapped in a main() and compiled
# against the built library, then run.
# Usage: test_readme.sh SHMQ PRODUCER CONSUMER README INCLUDE_DIR LIBSHMQ_SO
# lib.sh moves into a temporary directory: resolve the paths first.
readme=$(realpath "$4")
incdir=$(realpath "$5")
libso=$(realpath "$6")
. "$(dirname "$0")/lib.sh"
[ -r "$readme" ] || fail "cannot read $readme"

# Blocks by language: example01.sh, example02.c, ...
awk -v dir="$T" '
	/^```[a-z]+$/ { n++; lang = substr($0, 4)
			f = sprintf("%s/example%02d.%s", dir, n, lang); inblk = 1; next }
	/^```/ { inblk = 0; next }
	inblk { print > f }
' "$readme"

nsh=0
for ex in "$T"/example*.sh; do
	[ -e "$ex" ] || fail "no sh examples in $readme"
	# Set-up commands install packages: not for a test to run.
	if ! grep -vqE '^[[:space:]]*(bash scripts/|#|$)' "$ex"; then
		note "skipped $(basename "$ex"): set-up commands"
		continue
	fi
	nsh=$((nsh + 1))
	d=$(mktemp -d "$T/run.XXXXXX")
	sed "s|/dev/shm/|$d/|g" "$ex" >"$ex.run"
	(cd "$d" && $BOUNDED bash -e -o pipefail "$ex.run") >"$ex.out" 2>&1
	st=$?
	if [ $st -ne 0 ]; then
		cat "$ex.run" "$ex.out" >&2
		fail "example $(basename "$ex") from $readme: status $st"
	fi
	# A trailing "# VALUE" comment on the last command is its expected output.
	want=$(sed -n 's/.*#[[:space:]]*\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$ex" | tail -n 1)
	if [ -n "$want" ]; then
		[ "$(tail -n 1 "$ex.out")" = "$want" ] ||
			fail "example $(basename "$ex"): printed '$(tail -n 1 "$ex.out")', README says $want"
	fi
done
[ $nsh -ge 1 ] || fail "no runnable sh example in $readme"

# The C fragment: its #include lines on top, the rest as the body of main.
nc=0
for ex in "$T"/example*.c; do
	[ -e "$ex" ] || fail "no C example in $readme"
	nc=$((nc + 1))
	d=$(mktemp -d "$T/c.XXXXXX")
	{
		grep '^#include' "$ex"
		echo 'int main(void)'
		echo '{'
		grep -v '^#include' "$ex" | sed "s|/dev/shm/|$d/|g"
		echo 'return 0;'
		echo '}'
	} >"$d/main.c"
	# A sanitizer build of the library needs its runtime linked in first.
	san=
	# grep reads all of nm's output: -q would end the pipe early, and with
	# pipefail nm's SIGPIPE would make the test false.
	if nm -D "$libso" 2>/dev/null | grep __asan_ >/dev/null; then
		san="-fsanitize=address,undefined"
	fi
	${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Werror -Wno-unused-result $san \
		-I"$incdir" -o "$d/main" "$d/main.c" "$libso" \
		-Wl,-rpath,"$(dirname "$libso")" 2>"$d/cc.err"
	st=$?
	if [ $st -ne 0 ]; then
		cat -n "$d/main.c" >&2
		cat "$d/cc.err" >&2
		fail "the C example of $readme does not compile (wrapped as above)"
	fi
	(cd "$d" && $BOUNDED ./main) >"$d/out" 2>&1
	st=$?
	[ $st -eq 0 ] || { cat "$d/out" >&2; fail "the C example: status $st"; }
	grep -q ': hello$' "$d/out" || fail "the C example printed: $(cat "$d/out")"
	# Issue 17 #9: the example leaves no consumer that would hold a
	# producer back for ever (the loop's consumer is anonymous, the
	# named one is removed), so a producer can fill the ring and go on.
	q=$(sed -n 's|.*shmq_open("\([^"]*\)".*|\1|p' "$d/main.c" | head -n 1)
	[ -n "$q" ] && [ -e "$q" ] || fail "the C example made no queue ($q)"
	"$SHMQ" stat --json "$q" | grep -q '"consumers":\[\]' ||
		fail "the C example left a consumer in $q: $("$SHMQ" stat "$q")"
	head -c $((3 << 20)) /dev/zero | timeout -k 5 30 "$SHMQ" put "$q" &
	pp=$!
	track $pp
	for i in $(seq 200); do
		"$SHMQ" stat --json "$q" | grep -q '"state":"open"' && break
		sleep 0.05
	done
	n=$(timeout -k 5 30 "$SHMQ" get "$q" | wc -c)
	wait $pp || fail "a producer blocked on what the C example left"
	[ "$n" -eq $((3 << 20)) ] || fail "got $n bytes of 3 MiB through $q"
	grep -q 'shmq_consumer_open(q, NULL, &c)' "$ex" ||
		fail "the C example's consumer loop is not an anonymous consumer"
done
note "$nsh sh examples ran, $nc C example compiled and ran"
exit 0
