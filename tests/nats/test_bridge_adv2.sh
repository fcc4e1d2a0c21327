#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Adversarial cases of the NATS bridge, second review: the exporter's
# expectations against a stream that forgot its last message id or takes
# someone else's messages, and a stop while the stream refuses. Real
# nats-server processes on 127.0.0.1 (random ports, temporary storage,
# every process ended by its PID at exit).
# usage: test_bridge_adv2.sh SHMQ_NATS NATS_PEER SHMQ
set -uo pipefail
NATSB=$1
PEER=$2
SHMQ=$3
SEED=${SHMQ_NATS_SEED:-$RANDOM}
T=$(mktemp -d "${TMPDIR:-/tmp}/shmq-nadv2.XXXXXX")
. "$(dirname "$0")/lib.sh"

# bounded PID SECONDS: wait for PID (a child) at most SECONDS; its status,
# or 124 after a KILL when it did not end (a stuck bridge ignores TERM)
bounded() {
	local i
	for i in $(seq $(($2 * 10))); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; wait "$1" 2>/dev/null; return 124; }
	wait "$1"
}

# far QUEUE N URL STREAM SUBJECT [MANY]: import, check N messages, the
# last session closed; MANY: several sessions (an importer restarted with
# --until-end after an end ends at once): it runs until TERM
far() {
	local chk imp st opt=--until-end
	[ -z "${6:-}" ] || opt=--batch=64
	"$PEER" check "$T/$1" "$2" "$SEED" reader closed 30 >"$T/$1.chk" 2>&1 &
	chk=$!; PIDS+=("$chk")
	"$NATSB" import "$T/$1" --create --server "$3" --stream "$4" \
		--subject "$5" --durable far $opt 2>>"$T/$1.err" &
	imp=$!; PIDS+=("$imp")
	[ -z "${6:-}" ] || { bounded $chk 30; kill -TERM $imp; }
	bounded $imp 30; st=$?
	[ $st -eq 0 ] || fail "$1: import: status $st: $(tail -2 "$T/$1.err")"
	wait $chk || fail "$1: the far consumer: $(cat "$T/$1.chk")"
}

# ---- window: the stream forgot its last message id -------------------------
# A server keeps the stream's last message id (what Nats-Expected-Last-Msg-Id
# is checked against) in memory; at a restart it rebuilds it only from the
# messages still within the de-duplication window. The exporter expected
# the id of the last message it had read, the stream had none: refused,
# read the last id again, refused, for ever (with the default window: a
# server restart after two minutes of quiet). Now the first publish after
# a read expects our subject's last sequence.
window() {
	local port url exp st
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server win "$port" || return
	timeout 60 "$PEER" send "$T/wa" 300 "$SEED" died || { fail "window: sender 1"; return; }
	timeout 60 "$NATSB" export "$T/wa" --server "$url" --stream WIN \
		--dup-window 1 --until-end 2>>"$T/wa.err" ||
		{ fail "window: export 1: status $?: $(tail -2 "$T/wa.err")"; return; }
	stop_pid "${SRV[win]}"
	sleep 1.5	# the last message is now older than the window
	start_server win "$port" || return
	timeout 60 "$PEER" send "$T/wa" 300 "$SEED" closed 0 300 || { fail "window: sender 2"; return; }
	"$NATSB" export "$T/wa" --server "$url" --stream WIN --until-end 2>>"$T/wa.err" &
	exp=$!; PIDS+=("$exp")
	bounded $exp 20; st=$?
	[ $st -eq 0 ] || fail "window: export after the server's restart: status $st: $(tail -2 "$T/wa.err")"
	far wb 600 "$url" WIN shmq.WIN many
	note "window: 600 messages across a server restart past the window: $(cat "$T/wb.chk")"
	stop_pid "${SRV[win]}"
}

# ---- foreign: someone else publishes into another subject of the stream ----
# An existing stream that takes the bridge's subject is used (mix.> for
# mix.q); its last message id is the stream's, whatever the subject: a
# message on mix.other between two of ours made the exporter's next
# publish wrong for ever.
foreign() {
	local port url send exp st
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server mix "$port" || return
	"$PEER" mkstream "$url" MIX 'mix.>' file || { fail "foreign: mkstream"; return; }
	timeout 60 "$PEER" send "$T/fa" 2000 "$SEED" closed 100 &
	send=$!; PIDS+=("$send")
	while [ ! -e "$T/fa" ]; do sleep 0.05; done
	timeout 60 "$PEER" pub "$url" mix.other 3000 &
	PIDS+=("$!")
	"$NATSB" export "$T/fa" --server "$url" --stream MIX --subject mix.q \
		--until-end 2>>"$T/fa.err" &
	exp=$!; PIDS+=("$exp")
	bounded $exp 30; st=$?
	[ $st -eq 0 ] || fail "foreign: export: status $st: $(tail -2 "$T/fa.err")"
	wait $send || fail "foreign: the sender failed"
	far fb 2000 "$url" MIX mix.q
	note "foreign: 2000 messages among 3000 of another publisher: $(cat "$T/fb.chk")"
	stop_pid "${SRV[mix]}"
}

# ---- stop: SIGTERM while the stream does not answer ------------------------
# The batch's retry loop never looked at the stop flag: an exporter whose
# stream refused or did not answer could be stopped only by SIGKILL. Now
# it ends (status 1) within one publish wait, releasing nothing; the next
# run carries everything exactly once.
stop() {
	local port url send exp st
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server stp "$port" || return
	timeout 60 "$PEER" send "$T/sa" 3000 "$SEED" closed 100 &
	send=$!; PIDS+=("$send")
	while [ ! -e "$T/sa" ]; do sleep 0.05; done
	"$NATSB" export "$T/sa" --server "$url" --stream STP 2>>"$T/sa.err" &
	exp=$!; PIDS+=("$exp")
	sleep 0.3
	kill -STOP "${SRV[stp]}"
	sleep 0.5
	kill -TERM $exp
	bounded $exp 15; st=$?
	kill -CONT "${SRV[stp]}"
	[ $st -eq 1 ] && grep -q 'stopped before the stream acknowledged' "$T/sa.err" ||
		fail "stop: SIGTERM to an exporter whose server was stopped: status $st: $(tail -2 "$T/sa.err")"
	wait $send || fail "stop: the sender failed"
	timeout 60 "$NATSB" export "$T/sa" --server "$url" --stream STP --until-end 2>>"$T/sa.err" ||
		fail "stop: export after the stop: status $?: $(tail -2 "$T/sa.err")"
	far sb 3000 "$url" STP shmq.STP
	note "stop: the exporter ended at SIGTERM with its server stopped: $(cat "$T/sb.chk")"
	stop_pid "${SRV[stp]}"
}

# ---- subjects: --subject must name one queue's messages --------------------
# A wildcard was taken as a publish subject (the server stores it as it
# is): an exporter on w.* read the stream's last message on w.* (another
# queue's on w.x), took its queue as never sent, and resent it for ever;
# an importer on w.* mixed every queue's sessions. Empty tokens and white
# space were left to the server's answer. All are usage errors now.
subjects() {
	local port url err st s
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server sub "$port" || return
	"$PEER" mkstream "$url" W 'w.*' file || { fail "subjects: mkstream"; return; }
	timeout 60 "$PEER" send "$T/ua" 10 "$SEED" closed || { fail "subjects: sender"; return; }
	timeout 60 "$PEER" send "$T/ux" 10 "$SEED" closed || { fail "subjects: sender"; return; }
	timeout 60 "$NATSB" export "$T/ux" --server "$url" --stream W --subject w.x \
		--until-end 2>"$T/u.err" || fail "subjects: export on w.x: status $?: $(cat "$T/u.err")"
	err=$T/u.err
	for s in 'w.*' 'w.>' '>' 'w..a' '.w' 'w.' 'w. a' ''; do
		"$NATSB" export "$T/ua" --server "$url" --stream W --subject "$s" \
			--until-end 2>"$err" &
		local exp=$!; PIDS+=("$exp")
		bounded $exp 10; st=$?
		[ $st -eq 2 ] && grep -q 'a literal subject' "$err" ||
			fail "subjects: export --subject '$s': status $st: $(tail -1 "$err")"
		"$NATSB" import "$T/ub" --create --server "$url" --stream W \
			--subject "$s" --durable d --until-end 2>"$err" &
		local imp=$!; PIDS+=("$imp")
		bounded $imp 10; st=$?
		[ $st -eq 2 ] && grep -q 'a literal subject' "$err" ||
			fail "subjects: import --subject '$s': status $st: $(tail -1 "$err")"
	done
	note "subjects: wildcards, empty tokens and white space refused"
	stop_pid "${SRV[sub]}"
}

# ---- late: a killed exporter's publishes reach the stream late -----------
# The first publish into a stream without our messages expected nothing.
# An exporter killed with its publishes still on the way (a slow link, a
# socket's buffer), a second exporter that carried everything, and the
# first one's publishes arriving after the de-duplication window: its
# first message was taken again, and each next one, expecting the one
# before it, too: the queue twice in the stream. Now it expects our
# subject's last sequence, 0: refused, and the rest with it.
late() {
	local port url pport exp imp held prev st
	port=$(free_port)
	url=nats://127.0.0.1:$port
	start_server late "$port" || return
	pport=$(free_port)
	mkdir "$T/ctl"
	python3 "$(dirname "$0")/holdproxy.py" "$pport" "$port" "$T/ctl" &
	PIDS+=("$!")
	for _ in $(seq 100); do [ -e "$T/ctl/ready" ] && break; sleep 0.05; done
	timeout 60 "$PEER" send "$T/la" 50 "$SEED" closed || { fail "late: sender"; return; }
	"$NATSB" export "$T/la" --server "nats://127.0.0.1:$pport" --stream LATE \
		--dup-window 0.5 --until-end 2>>"$T/la.err" &
	exp=$!; PIDS+=("$exp")
	# Held: its publishes (about 100 KiB) stop coming; the exporter
	# waits for their acknowledgements.
	prev=-1
	for _ in $(seq 100); do
		sleep 0.2
		held=$(cat "$T/ctl/held" 2>/dev/null || echo 0)
		[ "$held" -gt 50000 ] && [ "$held" -eq "$prev" ] && break
		prev=$held
	done
	kill -KILL $exp; wait $exp 2>/dev/null
	timeout 60 "$NATSB" export "$T/la" --server "$url" --stream LATE --until-end \
		2>>"$T/la.err" || fail "late: export 2: status $?: $(tail -2 "$T/la.err")"
	sleep 1	# past the window
	touch "$T/ctl/release"
	for _ in $(seq 100); do [ -e "$T/ctl/delivered" ] && break; sleep 0.05; done
	sleep 0.5
	"$PEER" check "$T/lb" 50 "$SEED" reader closed 30 >"$T/lb.chk" 2>&1 &
	local chk=$!; PIDS+=("$chk")
	"$NATSB" import "$T/lb" --create --server "$url" --stream LATE \
		--durable far 2>>"$T/lb.err" &
	imp=$!; PIDS+=("$imp")
	bounded $chk 30 || fail "late: the far consumer: $(cat "$T/lb.chk")"
	sleep 1.5	# what the stream holds after the end comes in too
	kill -TERM $imp
	bounded $imp 10
	st=$(sent_of "$T/lb")
	[ "$st" = 50 ] || fail "late: the far queue received $st messages, not 50 (held $held bytes)"
	note "late: $held bytes of a killed exporter's publishes delivered after the window: $st messages far"
	stop_pid "${SRV[late]}"
}

for t in ${SHMQ_NATS_TESTS:-window foreign stop subjects late}; do
	$t
done
if [ $fails -ne 0 ]; then
	echo "$fails failure(s); seed $SEED" >&2
	exit 1
fi
note "all adversarial bridge tests (2) passed"
exit 0
