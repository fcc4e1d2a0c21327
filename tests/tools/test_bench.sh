#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# shmq bench (issue 13): its table parses and its figures are positive,
# the pipe is measured beside shmq, --json is one valid JSON object, and
# the temporary queue never outlives the command: not after SIGINT or
# SIGTERM mid-run, not after a child dies, and an existing file in DIR is
# never touched. Usage errors exit 2, other errors 1, each in one line.
# Nothing here asserts on speed (bench/run.sh measures).
. "$(dirname "$0")/lib.sh"

D=$T/d
mkdir "$D"
# A file that is there before: it must come out unchanged.
printf 'not a queue\n' > "$D/keep"
touch -d '2001-01-01' "$D/keep"
KEEP=$(stat -c '%s %Y %i' "$D/keep")
only_keep() {	# WHAT: DIR holds the file that was there, and nothing else
	local left
	left=$(ls -A "$D")
	[ "$left" = keep ] || fail "$1: left in DIR: $(echo $left)"
	[ "$(stat -c '%s %Y %i' "$D/keep")" = "$KEEP" ] ||
		fail "$1: the existing file changed"
	[ "$(cat "$D/keep")" = "not a queue" ] || fail "$1: its content changed"
}

# ---- the table -----------------------------------------------------------
$BOUNDED "$SHMQ" bench "$D" --size 64,4K --seconds 0.2 >out 2>err
expect_status 0 $? "bench"
[ -s err ] && fail "bench wrote to stderr without a terminal: $(cat err)"
only_keep "bench"
# size path msgs/s GB/s p50 p99, for shmq and the pipe; then the ratio.
awk '
	$2 == "shmq" || $2 == "pipe" {
		if (NF != 6) { print "bad line: " $0; bad = 1; next }
		for (i = 3; i <= 6; i++)
			if ($i !~ /^[0-9.]+$/ || $i + 0 <= 0) {
				print "not a positive figure: " $0; bad = 1
			}
		if ($6 + 0 < $5 + 0) { print "p99 < p50: " $0; bad = 1 }
		seen[$1 "," $2] = 1
	}
	$2 == "ratio" {
		x = $3; sub(/x$/, "", x)
		if (x + 0 <= 0) { print "bad ratio: " $0; bad = 1 }
		seen[$1 ",ratio"] = 1
	}
	END {
		n = split("64,shmq 64,pipe 64,ratio 4096,shmq 4096,pipe 4096,ratio", want, " ")
		for (i = 1; i <= n; i++)
			if (!(want[i] in seen)) { print "missing: " want[i]; bad = 1 }
		exit bad
	}' out >problems || { cat out >&2; fail "bench output: $(cat problems)"; }
head -1 out | grep -q "^shmq bench: queue in $D (" || fail "first line: $(head -1 out)"

# ---- --json: one object, the same facts ----------------------------------
$BOUNDED "$SHMQ" bench "$D" --size 1K --seconds 0.1 --json >out.json 2>err
expect_status 0 $? "bench --json"
python3 -m json.tool out.json >/dev/null || fail "--json is not valid JSON: $(cat out.json)"
python3 - out.json <<'EOF' || fail "--json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["consumers"] == 1 and d["kind"] == "broadcast", d
(r,) = d["results"]
assert r["size"] == 1024, r
for path in ("shmq", "pipe"):
    x = r[path]
    for k in ("msgs_per_s", "gb_per_s", "messages", "p50_ns", "p99_ns"):
        assert x[k] > 0, (path, k, x)
    assert x["p99_ns"] >= x["p50_ns"], x
assert r["ratio"] > 0, r
EOF
[ "$(wc -l <out.json)" -eq 1 ] || fail "--json: more than one line"
only_keep "bench --json"

# A group and broadcast consumers run too.
$BOUNDED "$SHMQ" bench "$D" --size 64 --seconds 0.1 --group 2 >out 2>err
expect_status 0 $? "bench --group 2"
grep -q "2 group members" out || fail "--group 2: $(cat out)"
$BOUNDED "$SHMQ" bench "$D" --size 64 --seconds 0.1 --consumers 2 >out 2>err
expect_status 0 $? "bench --consumers 2"
grep -q "2 consumers" out || fail "--consumers 2: $(cat out)"
only_keep "bench with 2 consumers"

# --progress: lines on stderr even though it is no terminal.
$BOUNDED "$SHMQ" bench "$D" --size 64 --seconds 1.2 --progress >out 2>err
expect_status 0 $? "bench --progress"
grep -q "^shmq bench: 64 B through shmq: throughput" err ||
	fail "--progress: no progress line: $(cat err)"

# ---- stopped mid-run: no file left, no process left ----------------------
# The children of PID (the bench's producer and consumers).
kids_of() {
	cat /proc/"$1"/task/*/children 2>/dev/null | tr -s ' ' '\n' | grep .
}
for sig in INT TERM; do
	$BOUNDED "$SHMQ" bench "$D" --size 64 --seconds 20 >out 2>err &
	track $!
	bench=
	for i in $(seq 1 200); do
		bench=$(kids_of $!)	# timeout(1)'s child: the bench itself
		[ -n "$bench" ] && compgen -G "$D/shmq-bench-*" >/dev/null && break
		sleep 0.05
	done
	compgen -G "$D/shmq-bench-*" >/dev/null || fail "SIG$sig: no queue appeared"
	sleep 0.3
	kids=$(kids_of "$bench")
	[ -n "$kids" ] || fail "SIG$sig: the bench has no children"
	kill -"$sig" "$bench"
	wait $!
	st=$?
	[ "$st" -eq $((128 + $(kill -l "$sig"))) ] ||
		fail "SIG$sig: exit status $st, expected death by the signal"
	only_keep "SIG$sig mid-run"
	for k in $kids; do
		[ -d /proc/"$k" ] && [ "$(awk '{ print $3 }' /proc/"$k"/stat)" != Z ] &&
			fail "SIG$sig: child $k still runs"
	done
done

# A child that dies: an error (status 1), and the queue is gone too.
$BOUNDED "$SHMQ" bench "$D" --size 64 --seconds 20 >out 2>err &
track $!
bench=
for i in $(seq 1 200); do
	bench=$(kids_of $!)
	[ -n "$bench" ] && [ -n "$(kids_of "$bench")" ] &&
		compgen -G "$D/shmq-bench-*" >/dev/null && break
	sleep 0.05
done
sleep 0.3
victim=$(kids_of "$bench" | head -1)
[ -n "$victim" ] || fail "no child to kill"
kill -KILL "$victim"
wait $!
expect_status 1 $? "a child killed"
grep -q "died of signal 9" err || fail "a child killed: $(cat err)"
only_keep "a child killed"

# ---- errors ---------------------------------------------------------------
"$SHMQ" bench "$D" --consumers 5000 >out 2>err
expect_status 2 $? "--consumers 5000"
expect_one_line err "--consumers 5000"
grep -q "at most 4096 consumer slots" err || fail "--consumers 5000: $(cat err)"
"$SHMQ" bench "$D" --group 4097 >out 2>err
expect_status 2 $? "--group 4097"
for bad in 8 0 65M abc 64,,x; do
	"$SHMQ" bench "$D" --size "$bad" >out 2>err
	expect_status 2 $? "--size $bad"
	expect_one_line err "--size $bad"
done
"$SHMQ" bench "$D" --seconds 0 >out 2>err
expect_status 2 $? "--seconds 0"
"$SHMQ" bench "$D" --consumers 1 --group 2 >out 2>err
expect_status 2 $? "--consumers with --group"
"$SHMQ" bench "$D" "$D" >out 2>err
expect_status 2 $? "two directories"
"$SHMQ" bench "$T/nowhere" >out 2>err
expect_status 1 $? "a missing directory"
expect_one_line err "a missing directory"
"$SHMQ" bench "$D/keep" >out 2>err
expect_status 1 $? "a file as DIR"
grep -q "not a directory" err || fail "a file as DIR: $(cat err)"

# A directory it cannot write: as root, run as nobody.
mkdir "$T/ro"
chmod 755 "$T/ro"
if [ "$(id -u)" -eq 0 ]; then
	chmod 755 "$T"
	command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 &&
		setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups -- \
			"$SHMQ" bench "$T/ro" --seconds 0.1 >out 2>err
	st=$?
else
	chmod 555 "$T/ro"
	"$SHMQ" bench "$T/ro" --seconds 0.1 >out 2>err
	st=$?
fi
expect_status 1 $st "an unwritable directory"
expect_one_line err "an unwritable directory"
grep -q "cannot create files in this directory" err ||
	fail "an unwritable directory: $(cat err)"
[ -z "$(ls -A "$T/ro")" ] || fail "something was created in the unwritable directory"

# No space: a tmpfs too small for the ring (root only; skipped otherwise).
mkdir "$T/small"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=256k tmpfs "$T/small" 2>/dev/null; then
	"$SHMQ" bench "$T/small" --size 1M --seconds 0.1 >out 2>err
	st=$?
	left=$(ls -A "$T/small")
	umount "$T/small"
	expect_status 1 $st "no space"
	expect_one_line err "no space"
	grep -q "no space" err || fail "no space: $(cat err)"
	[ -z "$left" ] || fail "no space: left $left"
else
	note "no tmpfs mount: the no-space case is skipped"
fi
exit 0
