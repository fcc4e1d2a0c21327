#!/bin/bash
# SPDX-License-Identifier: MIT
# put and get --progress / --stats: the lines on stderr say what went
# through (messages, bytes of the pipe, seconds, rate) and agree with the
# data; put -l / -0 are --lines / --null; put --create takes create's
# geometry options and says when an existing queue differs.
. "$(dirname "$0")/lib.sh"

# A stats line: "shmq put: N messages, B bytes in S s: R messages/s, X/s".
STATS='^shmq (put|get): ([0-9]+) messages?, ([0-9]+) bytes in [0-9]+\.[0-9]{3} s: [0-9]+ messages/s, [0-9.]+ (B|KiB|MiB|GiB|TiB)/s$'
# A progress line: "shmq put: 1.2 MiB, N messages, S s, X/s".
PROGRESS='^shmq (put|get): [0-9.]+ (B|KiB|MiB|GiB|TiB), [0-9]+ messages?, [0-9]+\.[0-9] s, [0-9.]+ (B|KiB|MiB|GiB|TiB)/s$'

stats_field() {	# FILE FIELD(2: messages, 3: bytes)
	grep -E "$STATS" "$1" | sed -E "s#$STATS#\\$2#"
}

# --stats and --progress with -l: put counts the bytes it read (newlines
# too), get the bytes it wrote; both the 100000 messages.
seq 1 100000 >in.txt
want_bytes=$(wc -c <in.txt)
$BOUNDED "$SHMQ" put s.q --create --size 8M -l --stats --progress <in.txt 2>put.err
expect_status 0 $? "put -l --stats --progress"
$BOUNDED "$SHMQ" get s.q -l --stats --progress >out.txt 2>get.err
expect_status 0 $? "get -l --stats --progress"
cmp -s in.txt out.txt || fail "put -l | get -l changed the data"
for f in put.err get.err; do
	[ "$(grep -cE "$STATS" $f)" -eq 1 ] || fail "$f: no single stats line: $(cat $f)"
	grep -qE "$PROGRESS" $f || fail "$f: no progress line: $(cat $f)"
	# Nothing else on stderr: progress lines and the stats line only.
	bad=$(grep -vE "$STATS|$PROGRESS" $f) && fail "$f: unexpected lines: $bad"
	[ "$(stats_field $f 2)" -eq 100000 ] || fail "$f: messages: $(cat $f)"
	[ "$(stats_field $f 3)" -eq "$want_bytes" ] || fail "$f: bytes: $(cat $f), want $want_bytes"
	# The final progress line has the same totals as the stats line.
	last=$(grep -E "$PROGRESS" $f | tail -n 1)
	echo "$last" | grep -q ", 100000 messages," || fail "$f: last progress line: $last"
done

# --progress while the tool waits: lines keep coming (at most a few a
# second), the rate of an idle interval is 0 B/s, and a final line at exit.
mkfifo slow
exec 3<>slow
$BOUNDED "$SHMQ" put p.q --create -0 --progress <slow 2>slow.err 3>&- &
p=$!
track $p
printf 'a\0b\0c\0' >&3
sleep 2
exec 3>&-
wait $p
expect_status 0 $? "put -0 --progress"
n=$(grep -cE "$PROGRESS" slow.err)
[ "$n" -ge 2 ] || fail "put --progress over 2 s: $n lines: $(cat slow.err)"
[ "$n" -le 6 ] || fail "put --progress: $n lines in 2 s: more than a few a second"
grep -q ', 0 B/s$' slow.err || fail "an idle interval should show 0 B/s: $(cat slow.err)"
tail -n 1 slow.err | grep -q ', 3 messages,' || fail "final line: $(tail -n 1 slow.err)"
$BOUNDED "$SHMQ" get p.q -0 --stats >items 2>items.err
expect_status 0 $? "get -0"
printf 'a\0b\0c\0' | cmp -s - items || fail "put -0 | get -0: $(od -c items)"
[ "$(stats_field items.err 2)" -eq 3 ] || fail "get -0 --stats: $(cat items.err)"
[ "$(stats_field items.err 3)" -eq 6 ] || fail "get -0 --stats bytes: $(cat items.err)"

# The stream mode counts bytes too.
head -c 3000000 /dev/urandom >blob
$BOUNDED "$SHMQ" put b.q --create --size 4M --stats <blob 2>b.err
expect_status 0 $? "put --stats (stream)"
[ "$(stats_field b.err 3)" -eq 3000000 ] || fail "stream bytes: $(cat b.err)"
$BOUNDED "$SHMQ" get b.q --stats >blob.out 2>bo.err
cmp -s blob blob.out || fail "stream changed"
[ "$(stats_field bo.err 3)" -eq 3000000 ] || fail "get stream bytes: $(cat bo.err)"
[ "$(stats_field bo.err 2)" -eq "$(stats_field b.err 2)" ] ||
	fail "get and put counted different messages: $(cat b.err bo.err)"

# put --create with create's geometry options.
seq 1 3 | $BOUNDED "$SHMQ" put g.q --create --size 256K --max-message 2K \
	--slots 5 --mode 0640 --when-full overwrite --checksum header \
	--evict-after 7 -l
expect_status 0 $? "put --create with geometry"
"$SHMQ" stat g.q --json >g.json
for kv in '"capacity":262144' '"max_message":2048' '"slots":5' \
	'"when_full":"overwrite"' '"checksum":"header"' '"evict_after_ms":7000'; do
	grep -q "$kv" g.json || fail "put --create geometry: no $kv in $(cat g.json)"
done
[ "$(stat -c %a g.q)" = 640 ] || fail "put --create --mode: $(stat -c %a g.q)"
# An existing queue is used as it is; put says how it differs.
seq 1 3 | $BOUNDED "$SHMQ" put g.q --create --size 1M --when-full overwrite \
	--checksum header -l 2>differs.err
expect_status 0 $? "put --create on a queue with another size"
grep -q 'capacity 262144 (asked 1048576)' differs.err || fail "no note: $(cat differs.err)"
expect_one_line differs.err "put --create differs"
# Geometry without --create, and bad values: usage errors, nothing created.
for args in "--size 1M" "--create --size 12X" "--create --when-full never" \
	"--create --checksum none" "--create --mode 999"; do
	$BOUNDED "$SHMQ" put new.q $args </dev/null 2>err
	expect_status 2 $? "put $args"
	expect_one_line err "put $args"
done
[ -e new.q ] && fail "a usage error created the queue"
exit 0
