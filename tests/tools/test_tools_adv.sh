#!/bin/bash
# SPDX-License-Identifier: MIT
# Adversarial review of the tools after issue 10 (branch adv4). Each
# "DEFECT" block is a minimal reproducer that fails on the code it was
# written against; the "held" blocks are cheap attacks that held up and
# stay as regression checks. Every check runs and reports; the test fails
# when any did. Keep it under 20 s.
. "$(dirname "$0")/lib.sh"

FAILED=0
defect() {
	echo "FAIL: $*" >&2
	FAILED=1
}

# ---------------------------------------------------------------------
# DEFECT 1: put --lines whose last consumer leaves in the middle of a
# batch is not quiet. shmq_send_batch() returns a partial count when the
# next message gets -EPIPE; send_msgs() (tools/put.c) takes any partial
# batch for "each message waited T" and backdates wait_start by T, so
# put_blocked() at once prints "waiting 1.0 s for room in the ring, no
# consumer holds it" (after a few ms, and wrongly) before the quiet 141,
# and with --timeout 0.5 it exits 4 ("timed out") instead of 141.
# Fix: after a partial batch, reset wait_start and call again; let the
# next call's own -EPIPE / -ETIMEDOUT decide.
for i in 1 2 3; do
	rm -f h.q
	$BOUNDED "$SHMQ" get h.q --create --lines 2>/dev/null |
		head -n 2 >/dev/null &
	wait_consumers h.q 1
	yes | head -n 2000000 |
		$BOUNDED "$SHMQ" put h.q --lines --timeout 0.5 2>err
	st=$?
	wait
	if [ "$st" -ne 141 ] || [ -s err ]; then
		defect "put after its reader left mid-batch: status $st" \
			"(want a quiet 141): $(cat err)"
		break
	fi
done

# ---------------------------------------------------------------------
# DEFECT 2: a rerun after a reader that stopped early (`get | head`, a
# consumer killed by ^C, get -n) gets the previous run's leftovers. put
# saw every consumer gone (EPIPE, status 141) and closed its session; the
# unread rest of that session stays in the ring, and the next run's get
# (which attached after that session ended) reads it and the old END,
# exits 0 with the wrong data, and this run's data goes to the run after.
# A FIFO drops what is in the pipe once reader and writer are gone; issue
# 10 item 1: "each run's consumer gets exactly that run's data".
# Fix: a session ended by EPIPE (all readers gone) has no reader to wait
# for: end it so that later consumers skip its rest (e.g. the producer
# moves the floor past it / marks it dropped before its END), or a
# consumer that attaches after a session whose consumers all left starts
# after its END.
rm -f r.q
$BOUNDED "$SHMQ" get r.q --create --lines 2>/dev/null | head -n 2 >/dev/null &
wait_consumers r.q 1
seq 1 100000 | sed 's/^/old-/' | $BOUNDED "$SHMQ" put r.q --lines 2>/dev/null
wait
$BOUNDED "$SHMQ" get r.q --create --lines >out 2>/dev/null &
g=$!
# Attached, or (the defect) already gone with the old data.
for i in $(seq 1 200); do
	kill -0 $g 2>/dev/null || break
	[ "$(live_consumers r.q)" -ge 1 ] && break
	sleep 0.05
done
echo new | $BOUNDED "$SHMQ" put r.q --lines
wait $g
st=$?
[ "$st" -eq 0 ] && [ "$(cat out)" = new ] ||
	defect "rerun after get|head: status $st, got $(wc -l <out) lines," \
		"first '$(head -n 1 out)' (want just 'new')"

# ---------------------------------------------------------------------
# DEFECT 3: a group has no process (stat prints its PID as '-', issue 10
# item 7: "a group's PID as 0 ... the columns must agree"), but put's
# "who holds it" notice and the "all slots taken" error say "pid 0".
# tools/common.c: tool_holder_text() and slots_full() print c->pid for a
# group. Fix: print the group without a pid (or its members' pids).
rm -f g.q
$BOUNDED "$SHMQ" create g.q --size 64K --max-message 1K --slots 2
echo x | $BOUNDED "$SHMQ" put g.q --lines
$BOUNDED "$SHMQ" get g.q --group gg --lines >/dev/null ||
	fail "a group member on a 2-slot queue"
$BOUNDED "$SHMQ" get g.q --name a --lines --timeout 0.1 >/dev/null 2>&1
seq 1 100000 | $BOUNDED "$SHMQ" put g.q --lines --timeout 1.2 2>err
expect_status 4 $? "put held by a dead group"
grep -q "group gg" err || defect "put's holder notice: $(cat err)"
grep -q "pid 0" err && defect "put names a group's pid as 0: $(head -n 1 err)"
$BOUNDED "$SHMQ" get g.q --timeout 0.1 2>err >/dev/null
grep -q "pid 0" err && defect "slots-full error names a group's pid as 0: $(cat err)"

# ---------------------------------------------------------------------
# DEFECT 11: a group join that fails for want of a member slot leaves
# the group behind. On a --slots 1 queue (a group takes two slots, its
# own and its member's), `get --group gg` fails with "all 1 consumer
# slots are taken; 1 by consumers that are gone ...: group gg (pid 0,
# dead)": the group its own failed attempt just made. That dead group
# keeps the slot (no other consumer can attach) and holds the producer
# (put blocks, status 4) until `shmq drop`. The same with one slot free
# on any queue. Fix (lib, group attach): when the member slot cannot be
# had, release the group slot this call created (it never had a member).
rm -f g1.q
$BOUNDED "$SHMQ" create g1.q --slots 1
$BOUNDED "$SHMQ" get g1.q --group gg --timeout 0.1 >/dev/null 2>err
st=$?
[ "$st" -ne 0 ] && grep -q "group gg" err &&
	defect "a failed group join blames and leaves its own group: $(cat err)"
if "$SHMQ" stat g1.q --json | grep -q '"kind":"group"'; then
	defect "a failed group join left a dead group in the slot table"
	seq 1 100000 | $BOUNDED "$SHMQ" put g1.q --lines --timeout 0.3 \
		2>/dev/null
	[ $? -eq 4 ] && defect "... and that group holds the producer"
fi

# ---------------------------------------------------------------------
# DEFECT 4: --fd above INT_MAX is cast to int before the 0-2 check, so
# the error blames stdin/stdout/stderr ("0, 1 and 2 are stdin, stdout
# and stderr") for --fd 2147483648. The status (2) is right, the message
# is not. Fix: range-check the parsed value (<= INT_MAX) before the cast.
$BOUNDED "$SHMQ" get --fd 2147483648 2>err </dev/null >/dev/null
expect_status 2 $? "get --fd 2147483648"
grep -q "0, 1 and 2" err && defect "--fd 2147483648: $(cat err)"

# ---------------------------------------------------------------------
# DEFECT 5: a failed write of --help / --version is status 1 for every
# shmq command (`shmq put --help >/dev/full`: "write error", 1), but 0
# for `shmq --help`, `shmq --version` and both student programs, which
# do not check stdout before they exit. Fix: the same close_stdout-style
# check in tools/shmq.c's top level and in shmq-producer/shmq-consumer.
for cmd in "$SHMQ --help" "$SHMQ --version" "$PRODUCER --help" \
	   "$CONSUMER --version"; do
	$BOUNDED $cmd >/dev/full 2>/dev/null
	st=$?
	[ "$st" -eq 1 ] || defect "'$cmd >/dev/full': status $st, want 1"
done
$BOUNDED "$SHMQ" put --help >/dev/full 2>/dev/null
expect_status 1 $? "put --help >/dev/full (held)"

# ---------------------------------------------------------------------
# DEFECT 6: get --follow passes over an aborted session without a word.
# A line longer than the max message aborts put's session so that "the
# consumer knows the stream was cut" (issue 10 item 3); plain get exits
# 9, but get -f reads on and exits 0 on --count with nothing on stderr
# (the same for a session whose producer died: get.c treats every
# session_end() alike under --follow). Fix: under --follow, say on
# stderr which session ended aborted / died (and, say, exit 9 / 3 at the
# end instead of 0, or document that -f hides it).
rm -f a.q
$BOUNDED "$SHMQ" create a.q --size 64K --max-message 1K
{ echo a; head -c 2000 /dev/zero | tr '\0' x; echo; echo lost; } |
	$BOUNDED "$SHMQ" put a.q --lines 2>/dev/null
echo b | $BOUNDED "$SHMQ" put a.q --lines
$BOUNDED "$SHMQ" get a.q --follow --count 2 >out 2>err
st=$?
[ "$(cat out)" = "$(printf 'a\nb')" ] || defect "get -f over an abort: $(cat out)"
[ -s err ] || defect "get -f passed an aborted session silently (status $st)"

# ---------------------------------------------------------------------
# DEFECT 7: create --mode 0 silently means the default 0600, as --size 0
# and --slots 0 did before issue 10 item 9 (now status 2). Fix: refuse
# --mode 0 (status 2), or make it mean mode 0000.
$BOUNDED "$SHMQ" create m.q --mode 0 2>err
st=$?
if [ "$st" -eq 0 ]; then
	[ "$(stat -c %a m.q)" = 0 ] ||
		defect "create --mode 0 made mode $(stat -c %a m.q)"
else
	expect_status 2 "$st" "create --mode 0"
fi

# ---------------------------------------------------------------------
# DEFECT 8: the seconds options take hex floats: parse_seconds() uses
# strtod(), so `--timeout 0x10` waits 16 s and `--evict-after 0x10` is
# 16 s, where counts reject 0x10 (parse_u64, base 10) and the docs say
# "decimals". Fix: reject 'x'/'X' (and "inf"/"nan", already refused).
$BOUNDED "$SHMQ" create s.q
$BOUNDED "$SHMQ" get s.q --timeout 0x1 2>err >/dev/null
st=$?
[ "$st" -eq 2 ] || defect "get --timeout 0x1: status $st, want 2 (usage)"
$BOUNDED "$SHMQ" get s.q --count 0x1 2>/dev/null >/dev/null
expect_status 2 $? "get --count 0x1 (held)"

# ---------------------------------------------------------------------
# DEFECT 9: a size beyond the library's limit is a bad value (usage,
# status 2 in the docs' table) but create exits 1 ("cannot create queue:
# invalid argument: ring size above 1099511627776 bytes"). Fix: check the
# limit in the tool's option parsing.
$BOUNDED "$SHMQ" create big.q --size 18446744073709551615 2>err
st=$?
[ "$st" -eq 2 ] || defect "create --size 2^64-1: status $st, want 2: $(cat err)"

# ---------------------------------------------------------------------
# DEFECT 10 (minor; GNU cat fails alike): put whose stdin pipe is
# O_NONBLOCK (set by another process sharing the pipe) aborts the session
# at the first EAGAIN ("reading stdin: Resource temporarily
# unavailable"), dropping the rest. put already poll()s stdin: on EAGAIN
# it could poll and read again.
if command -v python3 >/dev/null; then
	rm -f nb.q
	$BOUNDED "$SHMQ" get nb.q --create >out 2>/dev/null &
	g=$!
	wait_consumers nb.q 1
	$BOUNDED python3 -c '
import fcntl, os, subprocess, sys, time
r, w = os.pipe()
fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_NONBLOCK)
p = subprocess.Popen([sys.argv[1], "put", "nb.q"], stdin=r,
                     stderr=subprocess.DEVNULL)
os.close(r)
os.write(w, b"one\n")
time.sleep(0.3)
try:
    os.write(w, b"two\n")
except BrokenPipeError:
    pass
os.close(w)
sys.exit(p.wait())
' "$SHMQ"
	st=$?
	wait $g
	[ "$st" -eq 0 ] && [ "$(cat out)" = "$(printf 'one\ntwo')" ] ||
		defect "put with an O_NONBLOCK stdin: status $st, got '$(cat out)'"
fi

# =====================================================================
# Held up: regression checks.

# Framing edge cases come back byte for byte.
frame() {	# frame OPTION PRINTF-FORMAT
	local opt=$1 want
	rm -f f.q
	printf "$2" >in
	$BOUNDED "$SHMQ" put f.q --create $opt <in || fail "put $opt '$2'"
	$BOUNDED "$SHMQ" get f.q >out || fail "get of '$2'"
	cmp -s in out || fail "framing $opt '$2': $(od -c out | head -n 2)"
}
frame --lines ''
frame --lines '\n\n\n'
frame --lines 'a\r\nb\r\n'
frame --lines 'no newline'
frame --null 'a\0\0b'
frame --null 'x'
frame '' ''
# A line of exactly the max message goes; one byte more aborts (9).
rm -f x.q
$BOUNDED "$SHMQ" create x.q --size 64K --max-message 1K
{ head -c 1024 /dev/zero | tr '\0' x; echo; } >in
$BOUNDED "$SHMQ" put x.q --lines <in || fail "a max-message line"
$BOUNDED "$SHMQ" get x.q >out; cmp -s in out || fail "a max-message line"
{ head -c 1025 /dev/zero | tr '\0' x; echo; } |
	$BOUNDED "$SHMQ" put x.q --lines 2>/dev/null
expect_status 1 $? "a line one byte too long"
$BOUNDED "$SHMQ" get x.q >/dev/null 2>&1
expect_status 9 $? "get of an aborted session"

# Reruns on one path, both start orders.
rm -f rr.q
for i in 1 2 3; do
	$BOUNDED "$SHMQ" get rr.q --create --lines >out &
	g=$!
	echo "c$i" | $BOUNDED "$SHMQ" put rr.q --create --lines
	wait $g || fail "rerun $i, reader first"
	[ "$(cat out)" = "c$i" ] || fail "rerun $i, reader first: $(cat out)"
	echo "p$i" | $BOUNDED "$SHMQ" put rr.q --create --lines
	$BOUNDED "$SHMQ" get rr.q --create --lines >out ||
		fail "rerun $i, writer first"
	[ "$(cat out)" = "p$i" ] || fail "rerun $i, writer first: $(cat out)"
done

# Closed standard descriptors: the queue still validates after each.
rm -f c.q
seq 1 3 | $BOUNDED "$SHMQ" put c.q --create --lines
for r in '<&-' '>&-' '2>&-' '<&- >&- 2>&-'; do
	for c in "stat c.q" "get c.q --timeout 0.1" "put c.q --lines" \
		 "policy c.q" "sync c.q" "ls ."; do
		eval "\$BOUNDED \"\$SHMQ\" $c </dev/null $r" >/dev/null 2>&1
		"$SHMQ" stat c.q --json >/dev/null 2>&1 ||
			fail "'$c $r' damaged the queue"
	done
done

# Bad numeric values are usage errors.
for v in -1 '' 1x 99999999999999999999999; do
	for o in "create n.q --size" "create n.q --slots" \
		 "create n.q --max-message" "get c.q --count" \
		 "get c.q --timeout" "put c.q --timeout" "stat c.q --watch"; do
		$BOUNDED "$SHMQ" $o "$v" </dev/null >/dev/null 2>&1
		expect_status 2 $? "$o '$v'"
	done
done
[ -e n.q ] && fail "a refused create made n.q"

# ls skips FIFOs, sockets, devices, links and damaged files, no wait.
mkdir d
mkfifo d/fifo
mknod d/null c 1 3 2>/dev/null
ln -s ../c.q d/link.q
ln -s /nonexistent d/dangling
$BOUNDED "$SHMQ" create d/ok.q
: >d/empty
$BOUNDED "$SHMQ" ls d >out 2>err || fail "ls d: $(cat err)"
[ "$(wc -l <out)" -eq 2 ] && grep -q ' ok.q$' out || fail "ls d: $(cat out)"

# Every command on a FIFO fails at once instead of waiting on it.
for c in "stat" "get" "put" "sync" "policy" "rm --force" "drop x"; do
	set -- $c
	$BOUNDED "$SHMQ" "$1" d/fifo ${2:-} </dev/null >/dev/null 2>&1
	expect_status 1 $? "$c on a FIFO"
done

# Prometheus label values: a hostile path stays one valid sample line.
p=$'e"v\\il\nx\x01\xff'
$BOUNDED "$SHMQ" create "$p"
$BOUNDED "$SHMQ" stat "$p" --prometheus >out || fail "stat --prometheus"
grep -q '^shmq_slots{queue="e\\"v\\\\il\\nx\\\\u0001\\\\u00ff"} 64$' out ||
	fail "prometheus escaping: $(grep '^shmq_slots' out | od -c | head)"

# Concurrent put --wait writers: each stream whole, read by get -f.
rm -f w.q
$BOUNDED "$SHMQ" get w.q --create --lines --follow --count 3000 >out &
g=$!
wait_consumers w.q 1
for w in a b c; do
	seq 1 1000 | sed "s/^/$w/" |
		$BOUNDED "$SHMQ" put w.q --create --wait --lines &
done
wait $g || fail "get -f of three put --wait"
wait
for w in a b c; do
	n=$(grep -n "^$w" out | sed -n '1s/:.*//p;$s/:.*//p' | tr '\n' ' ')
	set -- $n
	[ $(($2 - $1)) -eq 999 ] || fail "writer $w not whole: lines $n"
done

exit $FAILED
