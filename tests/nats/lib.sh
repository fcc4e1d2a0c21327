# SPDX-License-Identifier: MIT
# Sourced by the NATS bridge tests after they set T (their temporary
# directory), SEED and SHMQ: the PIDs to end at exit, note/fail, the
# cleanup that ends every process by its PID (those in PIDS, and those
# whose PID a test left in T/*.pid) and removes T, loopback ports,
# JetStream servers and a queue's message count.
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
		stop_pid "$p"
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


# stop_pid PID: TERM, up to 5 s, then KILL; reaped
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# start_server NAME PORT [CONFIG]: a JetStream server (storage in
# T/NAME.js, kept across a restart with the same NAME; or as CONFIG says),
# its PID in SRV[NAME]
declare -A SRV
start_server() {
	local name=$1 port=$2 conf=${3:-}
	if [ -n "$conf" ]; then
		nats-server -c "$conf" >>"$T/$name.log" 2>&1 &
	else
		nats-server -a 127.0.0.1 -p "$port" -js -sd "$T/$name.js" \
			--server_name "$name" >>"$T/$name.log" 2>&1 &
	fi
	SRV[$name]=$!
	PIDS+=("$!")
	wait_port "$port" || { fail "nats-server $name did not listen on $port"; return 1; }
}

# sent_of QUEUE: how many records its producers sent
sent_of() {
	"$SHMQ" stat "$1" | sed -n 's/^sent *\([0-9]*\) messages.*/\1/p'
}
