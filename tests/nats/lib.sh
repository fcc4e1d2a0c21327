# SPDX-License-Identifier: MIT
# Sourced by the NATS bridge tests after they set T (their temporary
# directory) and SEED: the PIDs to end at exit, note/fail, the cleanup
# that ends every process by its PID (those in PIDS, and those whose
# PID a test left in T/*.pid) and removes T, and loopback ports.
PIDS=()
fails=0

note() { echo "# $*" >&2; }
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

cleanup() {
	local p f
	for f in "$T"/*.pid; do
		[ -e "$f" ] && PIDS+=("$(cat "$f")")
	done
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "${SHMQ_NATS_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' TERM INT
note "seed $SEED (SHMQ_NATS_SEED replays it), files in $T"
RANDOM=$SEED

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

