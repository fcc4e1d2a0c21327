#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Check the Promela model (tests/model/shmq.pml) exhaustively with spin, one
# run per configuration; one line each, then "model: N passed, N failed".
# A configuration fails on an assertion, an invalid end state (deadlock or
# lost wake-up), or a search that was not exhaustive. Exits non-zero if any
# failed. --old also runs the group with the adoption code group.c had
# before shmqi_member_take_adopted, which must fail (the model found it).
# SHMQ_MODEL_ONLY=TEXT runs only the configurations whose name contains
# TEXT: scripts/extra-checks.sh runs "--old" with "expected to FAIL" as the
# self-test that shows a broken model is rejected.
# The trail of a failure is kept in the printed directory; replay it with
#   spin -t -p -g <the -D options> shmq.pml
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
command -v spin >/dev/null || { echo "model: spin not installed (apt-get install spin)"; exit 1; }

passed=0
failed=0
work=$(mktemp -d)

# run NAME -D...: one configuration.
run() {
	local name=$1 dir t0 out err stored secs
	shift
	[[ $name == *"${SHMQ_MODEL_ONLY:-}"* ]] || return 0
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
	if grep -q 'errors: 0' "$out" && ! grep -qE 'max search depth too small|out of memory|Search not completed' "$out"; then
		printf 'model: PASS %s: %s states, %s s\n' "$name" "$stored" "$secs"
		passed=$((passed + 1))
	else
		printf 'model: FAIL %s: %s (%s states, %s s; trail in %s)\n' \
			"$name" "${err:-no verdict}" "${stored:-?}" "$secs" "$dir"
		failed=$((failed + 1))
	fi
}

run "broadcast: producer, 2 consumers, a joiner, reclaim, 1 crash (ring 2, 3 msgs)" -DC=2 -DN=3 -DMAXCRASH=1
run "group: 2 members, no crash (ring 2, 3 msgs)" -DGROUPS -DC=2 -DN=3 -DMAXCRASH=0
run "group: 2 members, adoption after 1 crash (ring 1, 2 msgs)" -DGROUPS -DC=1 -DN=2 -DMAXCRASH=1
if [ "${1:-}" = --old ]; then
	run "group with the old adoption, 1 crash: expected to FAIL" -DGROUPS -DOLD_ADOPT -DC=1 -DN=2 -DMAXCRASH=1
fi

echo "model: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && rm -rf "$work"
[ "$failed" -eq 0 ]
