#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The soak run, outside CI: the random stresses of the test suites for as
# long as asked, then one line of counts per part and "soak: PASS/FAIL".
#
#   tests/soak.sh DURATION [BUILD_DIR]
#
# DURATION is seconds, or with a unit: 90s, 30m, 1h. It is split between
# four parts: member SIGKILLs every 1 to 5 ms in groups of two and three
# on a 4 KiB ring (nothing lost, no unflagged duplicate, never stuck) and
# observers attaching one after another on a ring a producer laps as fast
# as it can (no error, exact loss counts), both from test_group_faults
# (SHMQ_SOAK_S); producer SIGKILLs (test_torture, repeated); simulated
# power losses (test_powerloss, repeated, each crash image recovered and
# read back: nothing acknowledged lost, nothing torn or stale delivered). With
# SHMQ_SOAK_MODEL=1 the Promela model also runs with its larger bounds
# (tests/model/check.sh, SHMQ_MODEL_BIG=1), which takes a while of its own.
# BUILD_DIR (default build) must have the tests built.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: tests/soak.sh DURATION[s|m|h] [BUILD_DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in
*h) total=$((${1%h} * 3600)) ;;
*m) total=$((${1%m} * 60)) ;;
*s) total=${1%s} ;;
*) total=$1 ;;
esac
[[ $total =~ ^[0-9]+$ ]] && [ "$total" -gt 0 ] || usage
build=${2:-build}
bin=$build/tests/test_group_faults
[ -x "$bin" ] || { echo "soak: $bin not built (meson setup $build && ninja -C $build)" >&2; exit 2; }

# Four parts share the time: group member kills and observer attaches
# (test_group_faults), producer kills (test_torture, again and again:
# SIGKILL at random moments and at every white-box kill point, with
# consumers that count every message) and simulated power losses
# (test_powerloss's random runs: each checked crash image is one power
# loss, recovered and read back).
parts=("members_sigkilled*" "observers_attaching*" torture powerloss)
share=$((total / ${#parts[@]}))
[ "$share" -gt 0 ] || share=1
failed=0
summary=()

# Run test BIN (a filter) until SHARE seconds are spent; sum the counts its
# lines matching PATTERN carry (sed expression printing one number).
repeat() {
	local what=$1 bin=$2 pattern=$3 sum=0 runs=0 t_end=$((SECONDS + share)) log n
	shift 3
	while [ "$SECONDS" -lt "$t_end" ] || [ "$runs" -eq 0 ]; do
		log=$(mktemp)
		if ! "$@" "$bin" --jobs 1 >"$log" 2>&1; then
			grep -v '^\[peer' "$log" | tail -n 20
			rm -f "$log"
			summary+=("soak: $what: runs=$runs total=$sum (FAIL)")
			failed=$((failed + 1))
			return
		fi
		n=$(sed -n "$pattern" "$log" | awk '{ s += $1 } END { print s + 0 }')
		sum=$((sum + n))
		runs=$((runs + 1))
		rm -f "$log"
	done
	summary+=("soak: $what: runs=$runs total=$sum, nothing lost, duplicated, stale, hung or falsely reported (PASS)")
}

for p in "${parts[@]}"; do
	echo "soak: $p for $share s"
	case $p in
	torture)
		repeat "producer kills" "$build/tests/test_torture" \
			's/^torture: \([0-9]*\) producer kills.*/\1/p' \
			env SHMQ_TEST_SCALE=4 \
			SHMQ_XPROC_PEER="$build/tests/torture_peer"
		continue ;;
	powerloss)
		repeat "simulated power losses (crash images recovered)" \
			"$build/tests/test_powerloss" \
			's/^powerloss .*: \([0-9]*\) images checked.*/\1/p' \
			env SHMQ_TEST_SCALE=4
		continue ;;
	esac
	log=$(mktemp)
	# The test prints its counts on stdout as "soak: PART: k=v ...".
	if SHMQ_SOAK_S=$share "$bin" --jobs 1 --timeout $((share + 600)) \
		--filter "gfaults/$p" >"$log" 2>&1; then
		res=PASS
	else
		res=FAIL
		failed=$((failed + 1))
		grep -v '^\[peer' "$log" | tail -n 20
	fi
	line=$(grep -m1 '^soak: ' "$log" || echo "soak: $p: no counts")
	summary+=("$line ($res)")
	rm -f "$log"
done
if [ -n "${SHMQ_SOAK_MODEL:-}" ]; then
	if SHMQ_MODEL_BIG=1 tests/model/check.sh; then
		summary+=("soak: model: larger bounds (PASS)")
	else
		summary+=("soak: model: larger bounds (FAIL)")
		failed=$((failed + 1))
	fi
fi
printf '%s\n' "${summary[@]}"
if [ "$failed" -eq 0 ]; then echo "soak: PASS ($total s)"; else echo "soak: FAIL ($failed parts)"; fi
[ "$failed" -eq 0 ]
