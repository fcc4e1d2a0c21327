#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Check the Promela model (tests/model/shmq.pml) exhaustively with spin, one
# run per configuration; one line each, then "model: N passed, N failed".
# A configuration fails on an assertion, an invalid end state (deadlock or
# lost wake-up), or a search that was not exhaustive. Exits non-zero if any
# failed. The bounds keep the whole run to a few minutes (CI); larger ones
# run with SHMQ_MODEL_BIG=1 (tests/soak.sh).
#   --old        also runs the protocol as it was before each fix the model
#                found or checks (each must FAIL), and exits non-zero
#   --self-test  runs only those old protocols and passes when the model
#                catches every one of them: proof that the checks can fail
# The trail of a failure is kept in the printed directory; replay it with
#   spin -t -p -g <the -D options> shmq.pml
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
command -v spin >/dev/null || { echo "model: spin not installed (apt-get install spin)"; exit 1; }

passed=0
failed=0
work=$(mktemp -d)

# run NAME -D...: one configuration. expect_fail NAME -D...: one that
# must find a violation (a model of the code before a fix).
expect=pass
expect_fail() {
	expect=fail
	run "$@"
	expect=pass
}

run() {
	local name=$1 dir t0 out err stored secs ok
	shift
	dir=$work/$(echo "$name" | tr -c 'a-z0-9\n' '_')
	mkdir -p "$dir"
	cp "$here/shmq.pml" "$dir/"
	t0=$(date +%s%N)
	if ! (cd "$dir" && spin -a "$@" shmq.pml >spin.log 2>&1 &&
	      gcc -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=8192 -o pan pan.c >gcc.log 2>&1); then
		echo "model: FAIL $name: spin or gcc failed, see $dir"
		failed=$((failed + 1))
		return
	fi
	(cd "$dir" && timeout 600 ./pan -m2000000 >pan.out 2>&1)
	secs=$((($(date +%s%N) - t0) / 100000000))	# tenths
	secs=$((secs / 10)).$((secs % 10))
	out=$dir/pan.out
	stored=$(awk '/states, stored/ { print $1 }' "$out")
	err=$(grep -m1 -E '^pan:1?:? ?(assertion violated|invalid end state)|^pan: .*(out of memory|max search depth)' "$out")
	ok=0
	grep -q 'errors: 0' "$out" && ! grep -qE 'max search depth too small|out of memory|Search not completed' "$out" && ok=1
	if [ "$expect" = fail ]; then
		# Caught: an assertion or end state, not a resource limit.
		if [ $ok = 0 ] && [ -n "$err" ] && ! grep -qE 'out of memory|max search depth too small' "$out"; then
			printf 'model: PASS %s: caught, %s (%s s)\n' "$name" "$err" "$secs"
			passed=$((passed + 1))
		else
			printf 'model: FAIL %s: the old protocol was not caught (%s states, %s s; see %s)\n' \
				"$name" "${stored:-?}" "$secs" "$dir"
			failed=$((failed + 1))
		fi
	elif [ $ok = 1 ]; then
		printf 'model: PASS %s: %s states, %s s\n' "$name" "$stored" "$secs"
		passed=$((passed + 1))
	else
		printf 'model: FAIL %s: %s (%s states, %s s; trail in %s)\n' \
			"$name" "${err:-no verdict}" "${stored:-?}" "$secs" "$dir"
		failed=$((failed + 1))
	fi
}

# The protocol before each fix; each must be caught.
old_protocols() {
	local how=$1
	$how "old claim (d167bc0): a stale claim pins the group" -DGROUPS -DOLD_CLAIM -DC=2 -DN=3 -DMAXCRASH=0
	$how "old adoption: a claim never won is redelivered" -DGROUPS -DOLD_ADOPT -DC=1 -DN=2 -DMAXCRASH=1
	$how "old advance (issue 11): a member dies before its advance" -DGROUPS -DOLD_ADVANCE -DC=1 -DN=2 -DMAXCRASH=1
	$how "old eviction (issue 11): a false -EBADMSG" -DGROUPS -DEVICT -DOLD_EVICT -DC=1 -DN=2 -DMAXCRASH=0
	$how "old learn_seq (issue 11): a lapped observer's loss" -DOBSERVER -DOLD_LEARN -DC=2 -DN=5
	$how "old restart (issue 11, defect 4): a handshake below the tail overwritten" -DRESTART -DOLD_RESTART -DC=2 -DN=3 -DMAXCRASH=1
	$how "old restart, half fixed: recovery lifts a live handshake" -DRESTART -DOLD_LIFT -DC=2 -DN=3 -DMAXCRASH=1
	$how "old restart, half fixed: the open's limit at the tail" -DRESTART -DOLD_OPEN -DC=2 -DN=3 -DMAXCRASH=1
}

finish() {
	echo "model: $passed passed, $failed failed"
	[ "$failed" -eq 0 ] && rm -rf "$work"
	[ "$failed" -eq 0 ]
	exit
}

if [ "${1:-}" = --self-test ]; then
	old_protocols expect_fail
	finish
fi

run "broadcast: producer, 2 consumers, a joiner, reclaim, 1 crash (ring 2, 3 msgs)" -DC=2 -DN=3 -DMAXCRASH=1
run "group: 2 members, no crash (ring 2, 3 msgs)" -DGROUPS -DC=2 -DN=3 -DMAXCRASH=0
run "group: 2 members, 1 crash anywhere: adoption, frontier never stuck (ring 1, 2 msgs)" -DGROUPS -DC=1 -DN=2 -DMAXCRASH=1
run "group evicted: members delayed anywhere (ring 1, 2 msgs)" -DGROUPS -DEVICT -DC=1 -DN=2 -DMAXCRASH=0
run "observer attaching while the ring is lapped (ring 2, 5 msgs)" -DOBSERVER -DC=2 -DN=5
run "restart: the producer dies anywhere, a new one recovers, a consumer attaching; 2 crashes (ring 2, 3 msgs)" -DRESTART -DC=2 -DN=3 -DMAXCRASH=2
if [ -n "${SHMQ_MODEL_BIG:-}" ]; then
	run "group: 2 members, 1 crash (ring 1, 3 msgs)" -DGROUPS -DC=1 -DN=3 -DMAXCRASH=1
	run "group evicted (ring 2, 3 msgs)" -DGROUPS -DEVICT -DC=2 -DN=3 -DMAXCRASH=0
	run "observer (ring 3, 9 msgs)" -DOBSERVER -DC=3 -DN=9
	run "restart, 2 crashes (ring 3, 5 msgs)" -DRESTART -DC=3 -DN=5 -DMAXCRASH=2
fi
if [ "${1:-}" = --old ]; then
	old_protocols run
fi
finish
