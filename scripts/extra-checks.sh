#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The security checks that need their own builds (docs/security.md):
#  1. fuzz: clang + libFuzzer + ASan/UBSan build; replay the seed corpus,
#     then a short fresh fuzz of each target (SHMQ_FUZZ_SECONDS, 25 s);
#  2. tsan: the threaded stress harness under ThreadSanitizer, 0 reports;
#  3. model: spin checks tests/model/shmq.pml exhaustively, one run per
#     configuration (tests/model/check.sh; docs/concurrency.md, "The model").
# Ends with "extra: N passed, N failed"; exits non-zero if any failed.
# A longer fuzz: SHMQ_FUZZ_SECONDS=3600 scripts/extra-checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds=${SHMQ_FUZZ_SECONDS:-25}
passed=0
failed=0

ok() { echo "extra: PASS $1"; passed=$((passed + 1)); }
ko() { echo "extra: FAIL $1"; failed=$((failed + 1)); }

# check NAME COMMAND...: run it, count it.
check() {
	local name=$1 t0=$SECONDS
	shift
	if "$@"; then ok "$name ($((SECONDS - t0)) s)"; else ko "$name ($((SECONDS - t0)) s)"; fi
}

fuzz_build() {
	rm -rf build-sec-fuzz
	CC=clang meson setup build-sec-fuzz -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link >/dev/null &&
	ninja -C build-sec-fuzz tests/fuzz/fuzz_attach \
		tests/fuzz/fuzz_consume >/dev/null
}

# fuzz_run TARGET MAX_LEN: replay the seeds, then fuzz from them into a
# scratch corpus (the checked-in seeds are never modified).
fuzz_run() {
	local t=$1 len=$2 bin=build-sec-fuzz/tests/fuzz/fuzz_$1 scratch
	scratch=$(mktemp -d)
	"$bin" -runs=0 tests/fuzz/corpus/"$t" >/dev/null 2>&1 || {
		echo "fuzz_$t: a seed fails; rerun: $bin tests/fuzz/corpus/$t/*"
		rm -rf "$scratch"; return 1; }
	"$bin" -max_total_time="$fuzz_seconds" -max_len="$len" -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$scratch/" -print_final_stats=1 \
		"$scratch" tests/fuzz/corpus/"$t" 2>&1 | grep -E '^(stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' ||
		true
	if ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* >/dev/null 2>&1; then
		mkdir -p build-sec-fuzz/artifacts
		cp "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* build-sec-fuzz/artifacts/ 2>/dev/null
		echo "fuzz_$t: reproducer kept in build-sec-fuzz/artifacts/"
		rm -rf "$scratch"; return 1
	fi
	rm -rf "$scratch"
}

tsan_run() {
	rm -rf build-sec-tsan
	meson setup build-sec-tsan -Db_sanitize=thread -Db_lundef=false >/dev/null &&
	ninja -C build-sec-tsan tests/tsan/tsan_stress >/dev/null 2>&1 &&
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
		timeout 600 build-sec-tsan/tests/tsan/tsan_stress 1000000
}

if command -v clang >/dev/null && fuzz_build; then
	check "fuzz_attach (seeds + ${fuzz_seconds} s)" fuzz_run attach 12288
	check "fuzz_consume (seeds + ${fuzz_seconds} s)" fuzz_run consume 4793
else
	ko "fuzz build (clang, libclang-rt-14-dev)"
fi
check "tsan_stress (1 producer, 3 consumers, 10^6 messages)" tsan_run
if command -v spin >/dev/null; then
	check "spin model (tests/model/check.sh)" tests/model/check.sh
else
	ko "spin model (apt-get install spin)"
fi

echo "extra: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
