#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shmq bench, adversarial review (issue 13): the temporary queue never
# outlives the command whatever signal stops it (not only INT/TERM/HUP),
# nohup's ignored SIGHUP stays ignored, a child killed alone by a signal is
# an error of the run, --group N has the N+1 slots it needs, and a DIR
# whose path leaves no room for the queue's name is an error, not a file
# under a cut, predictable name.
. "$(dirname "$0")/lib.sh"

D=$T/d
mkdir "$D"
empty() {	# WHAT: DIR is empty
	local left
	left=$(ls -A "$D")
	[ -z "$left" ] || fail "$1: left in DIR: $(echo $left)"
}
kids_of() {
	cat /proc/"$1"/task/*/children 2>/dev/null | tr -s ' ' '\n' | grep .
}
# Start a 20 s bench in the background; sets $job (timeout's pid) and
# $bench (the bench's) once its queue and children are there.
start() {
	$BOUNDED "$@" "$SHMQ" bench "$D" --size 64 --seconds 20 >out 2>err &
	job=$!
	track $job
	bench=
	for i in $(seq 1 200); do
		bench=$(kids_of $job)
		[ -n "$bench" ] && [ -n "$(kids_of "$bench")" ] &&
			compgen -G "$D/shmq-bench-*" >/dev/null && break
		sleep 0.05
	done
	compgen -G "$D/shmq-bench-*" >/dev/null || fail "$*: no queue appeared"
	sleep 0.2
}

# ---- any stop signal removes the queue ------------------------------------
for sig in USR1 ALRM QUIT; do
	# QUIT: bash starts background jobs with it ignored; a terminal's ^\
	# reaches a foreground bench with it at its default.
	if [ $sig = QUIT ]; then
		env --default-signal=QUIT true 2>/dev/null || continue
		start env --default-signal=QUIT
	else
		start
	fi
	kids=$(kids_of "$bench")
	kill -$sig "$bench"
	wait $job
	st=$?
	[ "$st" -eq $((128 + $(kill -l $sig))) ] ||
		fail "SIG$sig: exit status $st, expected death by the signal"
	empty "SIG$sig mid-run"
	for k in $kids; do
		[ -d /proc/"$k" ] && [ "$(awk '{ print $3 }' /proc/"$k"/stat)" != Z ] &&
			fail "SIG$sig: child $k still runs"
	done
done

# ---- nohup: a SIGHUP ignored at start stays ignored -----------------------
$BOUNDED bash -c 'trap "" HUP; exec "$0" bench "$1" --size 64 --seconds 0.6' \
	"$SHMQ" "$D" >out 2>err &
job=$!
track $job
for i in $(seq 1 100); do
	bench=$(kids_of $job)
	[ -n "$bench" ] && compgen -G "$D/shmq-bench-*" >/dev/null && break
	sleep 0.05
done
kill -HUP "$bench"
wait $job
expect_status 0 $? "SIGHUP under nohup"
grep -q "ratio" out || fail "SIGHUP under nohup: no table: $(cat out err)"
empty "SIGHUP under nohup"

# ---- a child killed alone, by any signal: an error of the run ------------
for sig in TERM INT; do
	start
	victim=$(kids_of "$bench" | head -1)
	kill -$sig "$victim"
	wait $job
	expect_status 1 $? "a child killed by SIG$sig"
	expect_one_line err "a child killed by SIG$sig"
	grep -q "died of signal $(kill -l $sig)" err ||
		fail "a child killed by SIG$sig: $(cat err)"
	empty "a child killed by SIG$sig"
done

# ---- a group of N takes N + 1 slots ---------------------------------------
$BOUNDED "$SHMQ" bench "$D" --size 64 --seconds 0.02 --group 64 >out 2>err
expect_status 0 $? "--group 64: $(cat err)"
grep -q "64 group members" out || fail "--group 64: $(cat out)"
"$SHMQ" bench "$D" --group 4096 >out 2>err
expect_status 2 $? "--group 4096"
expect_one_line err "--group 4096"
empty "--group 64"

# ---- more memory than the machine has: refused before any fork -----------
# Each consumer has a buffer of the largest size: 4096 consumers of 64M
# would need 256 GiB (the run went on and met the OOM killer).
mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
if [ "$mem_kb" -lt $((500 * 1024 * 1024)) ]; then
	$BOUNDED "$SHMQ" bench "$D" --consumers 4096 --size 64M >out 2>err
	expect_status 2 $? "--consumers 4096 --size 64M"
	expect_one_line err "--consumers 4096 --size 64M"
	grep -q "more than half of this machine's" err ||
		fail "--consumers 4096 --size 64M: $(cat err)"
	empty "--consumers 4096 --size 64M"
fi

# ---- a DIR path with no room for the queue's name -------------------------
# PATH_MAX is 4096; make DIR 4080 bytes long (each part under NAME_MAX).
L=$D
while [ ${#L} -lt 3800 ]; do
	L=$L/$(printf 'd%.0s' $(seq 1 200))
done
L=$L/$(printf 'e%.0s' $(seq 1 $((4080 - ${#L} - 1))))
mkdir -p "$L" || fail "cannot make a long directory"
$BOUNDED "$SHMQ" bench "$L" --size 64 --seconds 0.02 >out 2>err
expect_status 1 $? "a DIR too long"
expect_one_line err "a DIR too long"
grep -q "too long" err || fail "a DIR too long: $(cat err)"
[ -z "$(ls -A "$L")" ] || fail "a DIR too long: created $(ls -A "$L")"
rm -rf "${D:?}"/*
exit 0
