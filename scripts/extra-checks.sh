#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The security checks that need their own builds (docs/security.md):
#  1. fuzz: clang + libFuzzer + ASan/UBSan build; replay the seed corpus,
#     then a short fresh fuzz of each target (SHMQ_FUZZ_SECONDS, 25 s);
#  2. tsan: the threaded stress harness under ThreadSanitizer, 0 reports;
#  3. model: spin checks tests/model/shmq.pml exhaustively, one run per
#     configuration (tests/model/check.sh; docs/concurrency.md, "The model").
# Each check first runs as a self-test on a planted bug and must fail
# there: a crashing seed for the replays, a crash, leak, signed overflow
# and hang the fuzzer must find (tests/fuzz/fuzz.h, SHMQ_FUZZ_PLANT), a
# data race (SHMQ_TSAN_PLANT) and the model variants that must fail
# (check.sh --self-test). A check that cannot fail is reported as failed.
# Ends with "extra: N passed, N failed"; exits non-zero if any failed.
# A longer fuzz: SHMQ_FUZZ_SECONDS=3600 scripts/extra-checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds=${SHMQ_FUZZ_SECONDS:-25}
passed=0
failed=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# UBSan only prints by default: make every report fatal, so that libFuzzer
# keeps it as a crash-* artifact and the run exits non-zero.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
unset ASAN_OPTIONS TSAN_OPTIONS

ok() { echo "extra: PASS $1"; passed=$((passed + 1)); }
ko() { echo "extra: FAIL $1"; failed=$((failed + 1)); }

# check NAME COMMAND...: run it, count it.
check() {
	local name=$1 t0=$SECONDS
	shift
	if "$@"; then ok "$name ($((SECONDS - t0)) s)"; else ko "$name ($((SECONDS - t0)) s)"; fi
}

# selftest NAME SIGN COMMAND...: COMMAND runs a check on a planted bug.
# It passes when the check fails and its output matches the extended
# regular expression SIGN (the plant, not something else, was caught).
selftest() {
	local name=$1 sign=$2 t0=$SECONDS log=$scratch/selftest.log
	shift 2
	if "$@" >"$log" 2>&1; then
		ko "self-test: $name: not detected, the check passed ($((SECONDS - t0)) s)"
	elif ! grep -qE "$sign" "$log"; then
		ko "self-test: $name: failed without /$sign/ ($((SECONDS - t0)) s)"
		tail -n 20 "$log"
	else
		ok "self-test: $name ($((SECONDS - t0)) s)"
	fi
}

# report LOG: the lines of a sanitizer or libFuzzer report worth reading.
report() {
	grep -E '==[0-9]+== ?ERROR|^SUMMARY|runtime error|WARNING: ThreadSanitizer|fuzz: (planted|impossible)|#[0-9]+ 0x[0-9a-f]+ in (fz_|shmq|LLVMFuzzer|fill|drain|produce)' \
		"$1" | head -n 30
}

fuzz_build() {
	rm -rf build-sec-fuzz
	CC=clang meson setup build-sec-fuzz -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link >/dev/null &&
	ninja -C build-sec-fuzz tests/fuzz/fuzz_attach \
		tests/fuzz/fuzz_consume >/dev/null
}

# fuzz_replay TARGET DIR: run every input in DIR once (libFuzzer -runs=0);
# fails when one crashes, leaks, hangs or trips UBSan.
fuzz_replay() {
	local t=$1 dir=$2 bin=build-sec-fuzz/tests/fuzz/fuzz_$1 run
	run=$(mktemp -d -p "$scratch")
	if TMPDIR=$run timeout 600 "$bin" -runs=0 -timeout=10 -artifact_prefix="$run/" \
		"$dir" >"$run/log" 2>&1; then
		return 0
	fi
	report "$run/log"
	echo "fuzz_$t: an input in $dir fails; rerun: $bin $dir/*"
	return 1
}

# fuzz_fresh TARGET MAX_LEN SEEDS KEEP: fuzz from SEEDS into a scratch
# corpus (the seeds are never modified). Fails when libFuzzer exits
# non-zero or leaves any artifact (crash, leak, timeout, oom); the
# reproducers are copied into KEEP.
fuzz_fresh() {
	local t=$1 len=$2 seeds=$3 keep=$4 bin=build-sec-fuzz/tests/fuzz/fuzz_$1
	local run status found
	run=$(mktemp -d -p "$scratch")
	mkdir "$run/corpus" "$run/artifacts"
	# TMPDIR: the image directory a crashed input leaves (fz_path).
	TMPDIR=$run timeout $((fuzz_seconds + 600)) "$bin" -max_total_time="$fuzz_seconds" \
		-max_len="$len" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$run/artifacts/" -print_final_stats=1 \
		"$run/corpus" "$seeds" >"$run/log" 2>&1
	status=$?
	grep -E '^stat::number_of_executed_units' "$run/log"
	found=$(find "$run/artifacts" -maxdepth 1 -type f \( -name 'crash-*' \
		-o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
	[ "$status" -eq 0 ] && [ -z "$found" ] && return 0
	report "$run/log"
	echo "fuzz_$t: libFuzzer exit $status, artifacts:" $found
	if [ -n "$found" ]; then
		mkdir -p "$keep"
		cp $found "$keep/"
		echo "fuzz_$t: reproducers kept in $keep/"
	fi
	return 1
}

# fuzz_selftests TARGET MAX_LEN: a seed with the marker must fail the
# replay; fuzzing from the real seeds must find the planted bugs.
fuzz_selftests() {
	local t=$1 len=$2 seeds=$scratch/planted-seeds/$1 keep=$scratch/planted-artifacts
	local kind sign
	mkdir -p "$seeds"
	cp tests/fuzz/corpus/"$t"/empty "$seeds/"
	printf 'PLNT' >"$seeds/planted"
	SHMQ_FUZZ_PLANT=crash selftest "fuzz_$t replay of a planted crashing seed" \
		'ERROR: AddressSanitizer: heap-buffer-overflow' fuzz_replay "$t" "$seeds"
	for kind in crash leak ub hang; do
		# Only the attach target for the other kinds: they test the
		# detection, which both targets share.
		[ "$t" = attach ] || [ "$kind" = crash ] || continue
		case $kind in
		crash) sign='ERROR: AddressSanitizer: heap-buffer-overflow' ;;
		leak) sign='ERROR: LeakSanitizer' ;;
		ub) sign='runtime error: signed integer overflow' ;;
		hang) sign='ERROR: libFuzzer: timeout' ;;
		esac
		SHMQ_FUZZ_PLANT=$kind fuzz_seconds=120 selftest \
			"fuzz_$t finds a planted $kind" "$sign" \
			fuzz_fresh "$t" "$len" tests/fuzz/corpus/"$t" "$keep"
	done
}

tsan_build() {
	rm -rf build-sec-tsan
	meson setup build-sec-tsan -Db_sanitize=thread -Db_lundef=false >/dev/null &&
	ninja -C build-sec-tsan tests/tsan/tsan_stress >/dev/null 2>&1
}

# tsan_run N: N messages; fails on any ThreadSanitizer report.
tsan_run() {
	TMPDIR=$scratch TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
		timeout 600 build-sec-tsan/tests/tsan/tsan_stress "$1"
}

# The self-test of the model: the protocols as they were before each fix
# (check.sh --self-test) run alone; each must be caught on an assertion or
# an invalid end state (check.sh prints "caught"), or the check fails.
model_selftest() {
	local name="self-test: spin rejects the planted model variants" t0=$SECONDS
	local log=$scratch/model-planted.log
	if TMPDIR=$scratch tests/model/check.sh --self-test >"$log" 2>&1 &&
	   grep -q '^model: PASS .*caught' "$log"; then
		ok "$name ($(grep -c 'caught' "$log") caught, $((SECONDS - t0)) s)"
	else
		ko "$name ($((SECONDS - t0)) s)"
		cat "$log"
	fi
}

if command -v clang >/dev/null && fuzz_build; then
	fuzz_selftests attach 12288
	fuzz_selftests consume 4793
	check "fuzz_attach seeds" fuzz_replay attach tests/fuzz/corpus/attach
	check "fuzz_consume seeds" fuzz_replay consume tests/fuzz/corpus/consume
	check "fuzz_attach (${fuzz_seconds} s)" fuzz_fresh attach 12288 \
		tests/fuzz/corpus/attach build-sec-fuzz/artifacts
	check "fuzz_consume (${fuzz_seconds} s)" fuzz_fresh consume 4793 \
		tests/fuzz/corpus/consume build-sec-fuzz/artifacts
else
	ko "fuzz build (clang, libclang-rt-14-dev)"
fi
if tsan_build; then
	SHMQ_TSAN_PLANT=race selftest "tsan_stress with a planted data race" \
		'WARNING: ThreadSanitizer: data race' tsan_run 100000
	check "tsan_stress (1 producer, 3 consumers, 10^6 messages)" tsan_run 1000000
else
	ko "tsan build"
fi
if command -v spin >/dev/null; then
	model_selftest
	check "spin model (tests/model/check.sh)" tests/model/check.sh
else
	ko "spin model (apt-get install spin)"
fi

echo "extra: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
