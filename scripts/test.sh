#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what is missing, build, and run every test suite: once with the
# normal build, once more under ASan+UBSan. Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
shmq_install_deps

passed=0
failed=0

# Every test's temporary files go under one directory of our own, removed
# at exit whatever happens: a test killed by its timeout (or one that
# swaps directories on purpose) cannot leave anything in /tmp.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmq-ci.XXXXXX")
chmod 0711 "$run_tmp"	# other users in the sharing tests traverse it
trap 'rm -rf "$run_tmp"' EXIT
export TMPDIR=$run_tmp

# run_suites BUILD_DIR [meson setup options...]
run_suites() {
	local dir=$1 log ok fail
	shift
	rm -rf "$dir"
	meson setup "$dir" "$@" >/dev/null
	ninja -C "$dir" >/dev/null
	log=$(mktemp)
	set +e
	meson test -C "$dir" --print-errorlogs --num-processes 2 2>&1 | tee "$log"
	set -e
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log")
	fail=$(awk '/^(Fail|Timeout|Unexpected Pass):/ { n += $2 } END { print n + 0 }' "$log")
	passed=$((passed + ${ok:-0}))
	failed=$((failed + fail))
	[ -n "$ok" ] || failed=$((failed + 1))
	rm -f "$log"
}

echo "== build and test (debugoptimized)"
run_suites build-test -Dnats=enabled
echo "== build and test under ASan+UBSan"
# handle_segv=0: tests that expect SIGSEGV (writing into the read-only
# ring) must see the signal, not ASan's report of it.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:handle_segv=0 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	run_suites build-asan -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debug -Dnats=enabled

echo "== meson install: library, header, shmq.pc, tools, man pages (1 and 3)"
inst=$(mktemp -d)
if DESTDIR="$inst" meson install -C build-test >/dev/null &&
   pc=$(find "$inst" -name shmq.pc) && [ -n "$pc" ] &&
   [ -n "$(find "$inst" -name shmq.h)" ] &&
   [ -n "$(find "$inst" -name 'libshmq.so*')" ] &&
   [ -n "$(find "$inst" -name libshmq.a)" ] &&
   [ -n "$(find "$inst" -name shmq.1)" ] &&
   [ -n "$(find "$inst" -path '*/share/man/man3/shmq_recv.3')" ] &&
   [ -n "$(find "$inst" -path '*/share/man/man3/shmq.3')" ] &&
   printf '#include <shmq.h>\nint main(void){return shmq_strerror(0)[0]==0;}\n' >"$inst/t.c" &&
   cc "$inst/t.c" -o "$inst/t" $(PKG_CONFIG_SYSROOT_DIR="$inst" PKG_CONFIG_PATH="$(dirname "$pc")" \
	pkg-config --cflags --libs --static shmq) &&
   LD_LIBRARY_PATH="$(dirname "$(find "$inst" -name 'libshmq.so' | head -n 1)")" "$inst/t"; then
	echo "install: PASS"
	passed=$((passed + 1))
else
	echo "install: FAIL"
	failed=$((failed + 1))
fi
rm -rf "$inst"

echo "== extra checks: fuzz, TSan, spin (scripts/extra-checks.sh)"
log=$(mktemp)
set +e
scripts/extra-checks.sh 2>&1 | tee "$log"
set -e
ok=$(sed -n 's/^extra: \([0-9]*\) passed, [0-9]* failed$/\1/p' "$log")
fail=$(sed -n 's/^extra: [0-9]* passed, \([0-9]*\) failed$/\1/p' "$log")
passed=$((passed + ${ok:-0}))
failed=$((failed + ${fail:-1}))
rm -f "$log"

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
