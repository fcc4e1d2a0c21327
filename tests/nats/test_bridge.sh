#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The NATS bridge (issue 15) against real nats-server processes on
# 127.0.0.1, random ports, storage in a temporary directory; every server
# and bridge process is ended by its PID at exit, whatever happens.
#   1. 100,000 messages of 1 B to 4 KiB: queue A -> export -> stream ->
#      import -> queue B -> consumer: byte-identical, in order, closed.
#   2. 20,000 messages while the exporter and the importer are SIGKILLed
#      and restarted at random moments, 20 times each: exactly once, in
#      order, at a named far consumer.
#   3. A three-node JetStream cluster, a stream of 3 replicas, 10,000
#      messages, one node SIGKILLed mid-stream and restarted.
# usage: test_bridge.sh SHMQ_NATS NATS_PEER SHMQ
set -uo pipefail
NATSB=$1
PEER=$2
SHMQ=$3
SEED=${SHMQ_NATS_SEED:-$RANDOM}
T=$(mktemp -d "${TMPDIR:-/tmp}/shmq-nats.XXXXXX")
. "$(dirname "$0")/lib.sh"

# ---- 1. 100,000 messages, byte-identical ---------------------------------
t1() {
	local port url
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server s1 "$port" || return
	"$PEER" send "$T/a1" 100000 "$SEED" closed &
	local send=$!; PIDS+=("$send")
	while [ ! -e "$T/a1" ]; do sleep 0.05; done
	timeout 150 "$NATSB" export "$T/a1" --server "$url" --stream T1 --until-end &
	local exp=$!; PIDS+=("$exp")
	timeout 150 "$NATSB" import "$T/b1" --create --server "$url" --stream T1 \
		--durable far --until-end &
	local imp=$!; PIDS+=("$imp")
	out=$(timeout 160 "$PEER" check "$T/b1" 100000 "$SEED" reader closed 150)
	[ $? -eq 0 ] || fail "1: the far consumer: $out"
	wait $send || fail "1: the sender failed"
	wait $exp || fail "1: export exited $?"
	wait $imp || fail "1: import exited $?"
	note "1: $out"
	# Restarted after they carried the end (as if killed before their
	# exit): both end at once, with status 0, instead of waiting.
	timeout 20 "$NATSB" export "$T/a1" --server "$url" --stream T1 --until-end ||
		fail "1: export run again after the end: status $?"
	timeout 20 "$NATSB" import "$T/b1" --server "$url" --stream T1 --durable far \
		--until-end || fail "1: import run again after the end: status $?"
	stop_pid "${SRV[s1]}"
}

# ---- 2. exporter and importer SIGKILLed 20 times each --------------------
# supervise NAME CMD...: restart CMD until it exits 0; its current PID in $T/NAME.pid
supervise() {
	local name=$1 st
	shift
	while :; do
		"$@" 2>>"$T/$name.err" &
		echo $! >"$T/$name.pid"
		{ wait $!; st=$?; } 2>/dev/null
		[ $st -eq 0 ] && return 0
		[ $st -eq 137 ] || { echo "$name exited $st" >>"$T/$name.err"; return $st; }
	done
}

t2() {
	local port url kills_e=0 kills_i=0
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server s2 "$port" || return
	"$PEER" send "$T/a2" 20000 "$SEED" closed 40 &
	local send=$!; PIDS+=("$send")
	while [ ! -e "$T/a2" ]; do sleep 0.05; done
	supervise exp "$NATSB" export "$T/a2" --server "$url" --stream T2 --until-end &
	local sexp=$!; PIDS+=("$sexp")
	supervise imp "$NATSB" import "$T/b2" --create --server "$url" --stream T2 \
		--durable far --until-end --batch 64 &
	local simp=$!; PIDS+=("$simp")
	timeout 130 "$PEER" check "$T/b2" 20000 "$SEED" reader closed 120 >"$T/check2" 2>&1 &
	local chk=$!; PIDS+=("$chk")
	while [ $kills_e -lt 20 ] || [ $kills_i -lt 20 ]; do
		sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
		local who=exp
		if [ $kills_e -ge 20 ] || { [ $kills_i -lt 20 ] && [ $((RANDOM % 2)) -eq 1 ]; }; then
			who=imp
		fi
		local pid
		pid=$(cat "$T/$who.pid" 2>/dev/null) || continue
		kill -0 "$pid" 2>/dev/null || continue
		kill -KILL "$pid" 2>/dev/null || continue
		if [ $who = exp ]; then kills_e=$((kills_e + 1)); else kills_i=$((kills_i + 1)); fi
	done
	note "2: killed the exporter $kills_e times, the importer $kills_i times"
	wait $chk || fail "2: the far consumer: $(cat "$T/check2"); export: $(tail -3 "$T/exp.err"); import: $(tail -3 "$T/imp.err")"
	wait $send || fail "2: the sender failed"
	# Watchdog: both halves end with the session; if not, stop them.
	for _ in $(seq 300); do
		kill -0 $sexp 2>/dev/null || kill -0 $simp 2>/dev/null || break
		sleep 0.1
	done
	local w
	for w in exp imp; do
		local sp=$sexp
		[ $w = imp ] && sp=$simp
		if kill -0 $sp 2>/dev/null; then
			fail "2: the $w supervisor still runs 30 s after the end: $(tail -3 "$T/$w.err")"
			kill -TERM $sp 2>/dev/null
			kill -KILL "$(cat "$T/$w.pid")" 2>/dev/null
		fi
	done
	wait $sexp || fail "2: export: $(tail -3 "$T/exp.err")"
	wait $simp || fail "2: import: $(tail -3 "$T/imp.err")"
	note "2: $(cat "$T/check2")"
	stop_pid "${SRV[s2]}"
}

# ---- 3. a three-node cluster, R3, one node killed and restarted ----------
t3() {
	local i cp=() np=() urls routes
	for i in 1 2 3; do np[$i]=$(free_port); cp[$i]=$(free_port); done
	routes="nats-route://127.0.0.1:${cp[1]},nats-route://127.0.0.1:${cp[2]},nats-route://127.0.0.1:${cp[3]}"
	urls="nats://127.0.0.1:${np[1]},nats://127.0.0.1:${np[2]},nats://127.0.0.1:${np[3]}"
	for i in 1 2 3; do
		cat >"$T/n$i.conf" <<-EOF
		server_name: n$i
		listen: 127.0.0.1:${np[$i]}
		jetstream { store_dir: "$T/n$i.js" }
		cluster {
		  name: shmqtest
		  listen: 127.0.0.1:${cp[$i]}
		  routes: [ ${routes//,/, } ]
		}
		EOF
		start_server n$i "${np[$i]}" "$T/n$i.conf" || return
	done
	# JetStream needs its meta leader before a stream can be made.
	local ok=0
	"$PEER" send "$T/probe" 0 1 closed || fail "3: probe queue"
	for _ in $(seq 60); do
		if timeout 5 "$NATSB" export "$T/probe" --server "$urls" --stream PROBE \
			--replicas 3 --until-end 2>>"$T/probe.err"; then
			ok=1
			break
		fi
		sleep 0.5
	done
	[ $ok -eq 1 ] || { fail "3: the cluster never accepted a replicated stream"; return; }
	"$PEER" send "$T/a3" 10000 "$SEED" closed 20 &
	local send=$!; PIDS+=("$send")
	while [ ! -e "$T/a3" ]; do sleep 0.05; done
	timeout 200 "$NATSB" export "$T/a3" --server "$urls" --stream T3 --replicas 3 --until-end \
		2>"$T/exp3.err" &
	local exp=$!; PIDS+=("$exp")
	timeout 200 "$NATSB" import "$T/b3" --create --server "$urls" --stream T3 \
		--replicas 3 --durable far --until-end 2>"$T/imp3.err" &
	local imp=$!; PIDS+=("$imp")
	timeout 210 "$PEER" check "$T/b3" 10000 "$SEED" reader closed 200 >"$T/check3" 2>&1 &
	local chk=$!; PIDS+=("$chk")
	sleep 2
	local victim=n$((1 + RANDOM % 3))
	kill -KILL "${SRV[$victim]}"
	wait "${SRV[$victim]}" 2>/dev/null
	note "3: SIGKILLed $victim mid-stream"
	sleep 2
	start_server "$victim" "${np[${victim#n}]}" "$T/$victim.conf"
	note "3: restarted $victim"
	wait $chk || fail "3: the far consumer: $(cat "$T/check3")"
	wait $send || fail "3: the sender failed"
	wait $exp || fail "3: export exited: $(tail -3 "$T/exp3.err")"
	wait $imp || fail "3: import exited: $(tail -3 "$T/imp3.err")"
	note "3: $(cat "$T/check3")"
	for i in 1 2 3; do stop_pid "${SRV[n$i]}"; done
}

# ---- 4. errors: unreachable server, missing stream, too large -------------
t4() {
	local port url st
	port=$(free_port)
	timeout 20 "$NATSB" export "$T/a4" --server "nats://127.0.0.1:$port" --stream X 2>"$T/e4"
	st=$?
	[ $st -eq 10 ] || fail "4: unreachable server: status $st, want 10 ($(cat "$T/e4"))"
	url=nats://127.0.0.1:$port
	start_server s4 "$port" || return
	"$PEER" send "$T/b4" 0 1 closed
	timeout 20 "$NATSB" import "$T/b4" --server "$url" --stream NOPE --durable d 2>"$T/e4"
	st=$?
	[ $st -eq 11 ] || fail "4: missing stream: status $st, want 11 ($(cat "$T/e4"))"
	"$NATSB" export "$T/a4" --server "$url" 2>/dev/null
	[ $? -eq 2 ] || fail "4: usage: want 2"
	# A message larger than the far queue takes: status 13, nothing
	# acknowledged past what was written; another durable into a larger
	# queue gets all.
	"$PEER" send "$T/a4" 300 "$SEED" closed
	timeout 20 "$NATSB" export "$T/a4" --server "$url" --stream T4 --until-end ||
		fail "4: export"
	"$SHMQ" create "$T/small4" --size 1M --max-message 1024 || fail "4: shmq create"
	timeout 20 "$NATSB" import "$T/small4" --server "$url" --stream T4 --durable d4 \
		--until-end 2>"$T/e4"
	st=$?
	[ $st -eq 13 ] || fail "4: too large: status $st, want 13 ($(cat "$T/e4"))"
	grep -q "stays in the stream" "$T/e4" || fail "4: too large: $(cat "$T/e4")"
	rm -f "$T/small4"
	timeout 20 "$NATSB" import "$T/b4big" --create --server "$url" --stream T4 --durable d5 \
		--until-end || fail "4: import after the refusal"
	out=$(timeout 20 "$PEER" check "$T/b4big" 300 "$SEED" r closed 10) || fail "4: $out"
	stop_pid "${SRV[s4]}"
}

for t in ${SHMQ_NATS_TESTS:-t4 t1 t2 t3}; do
	$t
done
if [ $fails -ne 0 ]; then
	echo "$fails failure(s); seed $SEED" >&2
	exit 1
fi
note "all bridge tests passed"
exit 0
