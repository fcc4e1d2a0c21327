# SPDX-License-Identifier: MIT
# Sourced by every tools test: the binaries under test, a private temporary
# directory, bounded commands and cleanup of everything the test started.
# Usage: test_x.sh SHMQ SHMQ_PRODUCER SHMQ_CONSUMER [ARGS...]

set -u
set -o pipefail

SHMQ=$(realpath "$1")
PRODUCER=$(realpath "$2")
CONSUMER=$(realpath "$3")
shift 3
TOOLDIR=$(dirname "$SHMQ")
export PATH="$TOOLDIR:$PATH"

T=$(mktemp -d "${TMPDIR:-/tmp}/shmq-tools.XXXXXX") || exit 1
BGPIDS=""

# TERM first: timeout(1) passes it on to the command it runs.
cleanup() {
	local p
	for p in $BGPIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	sleep 0.1
	for p in $BGPIDS; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() {
	echo "# $*" >&2
}

# Every command that could block runs under a watchdog (default 60 s):
# `$BOUNDED cmd args &` leaves timeout(1)'s own pid in $!, which passes
# SIGTERM on to the command.
BOUNDED="timeout -k 5 ${WATCHDOG:-60}"


# run_for SECS SIG CMD [ARGS...]: run CMD for SECS seconds, send it SIG
# once, and return its status (it must end within 20 s of the signal).
# Not `timeout -s SIG`: right after its signal timeout(1) sends SIGCONT,
# and when the command has by then reached exit, a SIGCONT cancels the
# SIGSTOP by which LeakSanitizer's exit-time tracer attaches to it: the
# tracer then waits forever, the command spins at 100 % CPU, and the test
# hangs (seen in CI under ASan: 1 run in 200 on a loaded machine).
run_for() {
	local secs=$1 sig=$2 pid
	shift 2
	"$@" &
	pid=$!
	track $pid
	sleep "$secs"
	kill -"$sig" "$pid" 2>/dev/null
	wait_pid "$pid" "$1 after SIG$sig" 20
	return $WAITED_STATUS
}

# Remember a background job so that cleanup can kill it by its pid.
track() {
	BGPIDS="$BGPIDS $1"
}

expect_status() {
	local want=$1 got=$2 what=$3
	[ "$got" -eq "$want" ] || fail "$what: exit status $got, expected $want"
}

# Errors are exactly one line on stderr.
expect_one_line() {
	local file=$1 what=$2 n
	n=$(wc -l <"$file")
	[ "$n" -eq 1 ] || { cat "$file" >&2; fail "$what: $n lines on stderr, expected 1"; }
}

# Count the live consumers `shmq stat --json` reports.
live_consumers() {
	"$SHMQ" stat "$1" --json 2>/dev/null | grep -o '"alive":true' | wc -l
}

# Wait up to 10 s until PATH has N live consumers attached.
wait_consumers() {
	local path=$1 n=$2 i
	for i in $(seq 1 200); do
		[ -e "$path" ] && [ "$(live_consumers "$path")" -ge "$n" ] && return 0
		sleep 0.05
	done
	fail "$path: $n consumers never attached"
}

# Wait up to 10 s until PATH has N live group members. Not
# wait_consumers: a group's own row is alive as soon as one member is,
# so "2 consumers" can be the group and its first member.
wait_members() {
	local path=$1 n=$2 i
	for i in $(seq 1 200); do
		[ -e "$path" ] && [ "$("$SHMQ" stat "$path" --json 2>/dev/null |
			grep -o '{"slot":[^{}]*}' | grep '"kind":"member"' |
			grep -c '"alive":true')" -ge "$n" ] && return 0
		sleep 0.05
	done
	fail "$path: $n group members never attached"
}

# Wait up to 10 s for a process to exit; its status in WAITED_STATUS.
# wait_pid PID WHAT [SECONDS]: wait up to SECONDS (default 10) for PID.
wait_pid() {
	local pid=$1 what=$2 secs=${3:-10} i
	for i in $(seq 1 $((secs * 20))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && fail "$what: still running after $secs s"
	wait "$pid"
	WAITED_STATUS=$?
}

sha() {
	sha256sum | cut -d' ' -f1
}

# Wait up to 10 s until PATH has a live producer.
wait_producer() {
	local path=$1 i
	for i in $(seq 1 200); do
		[ -e "$path" ] && "$SHMQ" stat "$path" --json 2>/dev/null |
			grep -q '"producer":{"state":"open"' && return 0
		sleep 0.05
	done
	fail "$path: the producer never attached"
}
