#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Adversarial cases of the NATS bridge (issue 15 review), against real
# nats-server processes on 127.0.0.1 (random ports, temporary storage,
# every process ended by its PID at exit). Each case is a reproducer of a
# defect found in review, or of an attack that held.
# usage: test_bridge_adv.sh SHMQ_NATS NATS_PEER SHMQ [SLOW_DESTROY_SO]
set -uo pipefail
NATSB=$1
PEER=$2
SHMQ=$3
SLOW=${4:-}
SEED=${SHMQ_NATS_SEED:-$RANDOM}
T=$(mktemp -d "${TMPDIR:-/tmp}/shmq-nadv.XXXXXX")
. "$(dirname "$0")/lib.sh"

# export_all QUEUE N URL STREAM END: N messages from a sender through an
# exporter into STREAM, which then holds them and the end.
export_all() {
	local send st
	timeout 60 "$PEER" send "$1" "$2" "$SEED" "$5" &
	send=$!; PIDS+=("$send")
	while [ ! -e "$1" ]; do sleep 0.05; done
	timeout 60 "$NATSB" export "$1" --server "$3" --stream "$4" --until-end ||
		{ st=$?; fail "export into $4: status $st"; return 1; }
	wait $send || { fail "the sender into $1 failed"; return 1; }
}

# ---- ring: a far queue smaller than one fetched batch ----------------------
# The importer's batch (1024 messages of up to 4 KiB) does not fit a 64 KiB
# ring: the reserve that waits for room publishes the batch's records
# early, without a mark. Killed then, the restarted importer finds no mark
# (first batch: it starts again at the stream's first message: duplicates)
# or a mark a ring behind (it cannot read the records after it: it fails
# at every start).
ring() {
	local port url n=10000 k st
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server ring "$port" || return
	export_all "$T/ra" $n "$url" RING closed || return
	"$SHMQ" create "$T/rb" --size 64K --max-message 4096 || { fail "ring: create"; return; }
	# No timeout(1) around the checker: SIGSTOP must reach it (it has
	# its own deadline, and the cleanup ends it).
	"$PEER" check "$T/rb" $n "$SEED" reader closed 80 >"$T/ring.chk" 2>&1 &
	local chk=$!; PIDS+=("$chk")
	sleep 0.3
	# 1: the far consumer stopped before the first batch: the ring fills
	# with records published before any mark. 2: in the middle of a later
	# batch (a fetch brings 1024), the consumer slowed down, then stopped.
	for k in 1 2; do
		[ $k -eq 1 ] && kill -STOP $chk 2>/dev/null
		"$NATSB" import "$T/rb" --server "$url" --stream RING \
			--durable far --until-end 2>>"$T/ring.err" &
		local imp=$!; PIDS+=("$imp")
		for _ in $(seq 600); do
			sent=$(sent_of "$T/rb")
			if [ $k -eq 1 ]; then
				[ "$sent" -ge 20 ] && break
				sleep 0.02
			else
				[ "$sent" -gt 1500 ] && [ $((sent % 1024)) -gt 200 ] && break
				kill -0 $chk 2>/dev/null || break
				kill -STOP $chk 2>/dev/null; sleep 0.02; kill -CONT $chk 2>/dev/null
			fi
		done
		kill -STOP $chk 2>/dev/null
		sleep 0.3
		kill -KILL $imp 2>/dev/null
		wait $imp 2>/dev/null
		st=$?
		note "ring: round $k: killed the importer after $(sent_of "$T/rb") records"
		kill -CONT $chk 2>/dev/null
		[ $st -eq 137 ] ||
			{ fail "ring: round $k: import exited $st: $(tail -2 "$T/ring.err")"; break; }
	done
	timeout 40 "$NATSB" import "$T/rb" --server "$url" --stream RING \
		--durable far --until-end 2>>"$T/ring.err" ||
		fail "ring: the last import: status $?: $(tail -2 "$T/ring.err")"
	wait $chk || fail "ring: the far consumer: $(cat "$T/ring.chk")"
	note "ring: $(cat "$T/ring.chk")"
	stop_pid "${SRV[ring]}"
}

# ---- fit: a stream made by someone else --------------------------------
# The exporter took any existing stream of the name: one in memory (a
# server restart loses what it acknowledged, and the exporter has released
# it from the queue) or one whose subjects do not take the bridge's (the
# publishes find no stream). The importer's filter waited on nothing. Each
# is refused with one clear line, and nothing is taken from the queue.
fit() {
	local port url err st
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server fit "$port" || return
	"$PEER" mkstream "$url" MEM 'mem.>' memory || { fail "fit: mkstream"; return; }
	"$PEER" mkstream "$url" OTHER 'other.>' file || { fail "fit: mkstream"; return; }
	"$PEER" mkstream "$url" STAR 'shmq.*' file || { fail "fit: mkstream"; return; }
	timeout 60 "$PEER" send "$T/fq" 50 "$SEED" closed &
	local send=$!; PIDS+=("$send")
	wait $send || { fail "fit: the sender failed"; return; }
	err=$T/fit.err
	timeout 20 "$NATSB" export "$T/fq" --server "$url" --stream MEM --until-end 2>"$err"
	st=$?
	[ $st -eq 1 ] && grep -q 'stream MEM keeps its messages in memory' "$err" ||
		fail "fit: export into a memory stream: status $st: $(cat "$err")"
	timeout 20 "$NATSB" export "$T/fq" --server "$url" --stream OTHER --until-end 2>"$err"
	st=$?
	[ $st -eq 1 ] && grep -qF 'stream OTHER does not take subject shmq.OTHER (its subjects: other.>)' "$err" ||
		fail "fit: export into a stream of other subjects: status $st: $(cat "$err")"
	[ "$(wc -l <"$err")" -eq 1 ] || fail "fit: more than one line: $(cat "$err")"
	# Nothing was taken: a subject the stream takes carries all of it.
	timeout 60 "$NATSB" export "$T/fq" --server "$url" --stream OTHER \
		--subject other.fq --until-end 2>"$err" ||
		fail "fit: export with --subject other.fq: status $?: $(cat "$err")"
	timeout 20 "$NATSB" import "$T/fb" --create --server "$url" --stream OTHER \
		--durable d --until-end 2>"$err"
	st=$?
	[ $st -eq 1 ] && grep -qF 'stream OTHER does not take subject shmq.OTHER' "$err" ||
		fail "fit: import with a filter the stream never takes: status $st: $(cat "$err")"
	timeout 60 "$PEER" check "$T/fb" 50 "$SEED" reader closed 50 >"$T/fit.chk" 2>&1 &
	local chk=$!; PIDS+=("$chk")
	timeout 60 "$NATSB" import "$T/fb" --server "$url" --stream OTHER \
		--subject other.fq --durable d --until-end 2>"$err" ||
		fail "fit: import of other.fq: status $?: $(cat "$err")"
	wait $chk || fail "fit: the far consumer: $(cat "$T/fit.chk")"
	# A mirror has no subjects of its own: an importer reads it (its
	# messages keep other.fq); an exporter cannot publish into it.
	"$PEER" mkstream "$url" MIR - mirror:OTHER || { fail "fit: mkstream mirror"; return; }
	timeout 60 "$PEER" check "$T/fm" 50 "$SEED" reader closed 50 >"$T/fit.chk" 2>&1 &
	chk=$!; PIDS+=("$chk")
	timeout 60 "$NATSB" import "$T/fm" --create --server "$url" --stream MIR \
		--subject other.fq --durable m --until-end 2>"$err" ||
		fail "fit: import from a mirror: status $?: $(cat "$err")"
	wait $chk || fail "fit: the consumer of the mirror's queue: $(cat "$T/fit.chk")"
	timeout 20 "$NATSB" export "$T/fq" --server "$url" --stream MIR \
		--subject other.fq --until-end 2>"$err"
	st=$?
	[ $st -eq 1 ] && grep -qF 'stream MIR does not take subject other.fq (its subjects: )' "$err" ||
		fail "fit: export into a mirror: status $st: $(cat "$err")"
	# '*' takes one token: shmq.STAR is the default subject of STAR.
	timeout 60 "$PEER" send "$T/fs" 5 "$SEED" closed || fail "fit: sender 2"
	timeout 60 "$NATSB" export "$T/fs" --server "$url" --stream STAR --until-end 2>"$err" ||
		fail "fit: export into shmq.*: status $?: $(cat "$err")"
	timeout 20 "$NATSB" export "$T/fs" --server "$url" --stream STAR \
		--subject shmq.a.b --until-end 2>"$err"
	st=$?
	[ $st -eq 1 ] && grep -qF 'does not take subject shmq.a.b' "$err" ||
		fail "fit: '*' took two tokens: status $st: $(cat "$err")"
	note "fit: memory and foreign streams refused; the queue then went whole through other.fq"
	stop_pid "${SRV[fit]}"
}

# ---- gc: the library's threads outlive the exporter's last call ----------
# nats.c frees a message on the acknowledgement thread after it woke the
# exporter's wait for acknowledgements; nats_Close() at exit joined the
# garbage collector first, and the END message and its acknowledgement
# freed after that were lost: LeakSanitizer failed the exporter (seen in
# CI). SLOW makes every natsMsg_Destroy() off the main thread 50 ms late;
# with nats_Close() back, each of these runs fails. Only an ASan build
# can tell (elsewhere the exports just run).
gc() {
	local port url i st
	[ -n "$SLOW" ] || { note "gc: no preload library given"; return; }
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server gc "$port" || return
	for i in 1 2 3; do
		timeout 60 "$PEER" send "$T/g$i" 50 "$SEED" closed ||
			{ fail "gc: sender $i"; return; }
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		LD_PRELOAD=$SLOW timeout 60 "$NATSB" export "$T/g$i" --server "$url" \
			--stream G$i --until-end 2>"$T/gc.err"
		st=$?
		[ $st -eq 0 ] ||
			{ fail "gc: export $i: status $st: $(head -c 600 "$T/gc.err")"; break; }
	done
	[ $st -eq 0 ] && note "gc: 3 exports with a late natsMsg_Destroy ended clean"
	stop_pid "${SRV[gc]}"
}

for t in ${SHMQ_NATS_TESTS:-ring fit gc}; do
	$t
done
if [ $fails -ne 0 ]; then
	echo "$fails failure(s); seed $SEED" >&2
	exit 1
fi
note "all adversarial bridge tests passed"
exit 0
