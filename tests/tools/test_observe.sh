#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 10 item 7. An observer never holds the producer back, so on a
# default (block) queue a slower observer loses messages while a normal
# consumer keeps up; get --observe says so and why. stat: lags and rates
# in one unit (ring bytes), lag messages and bytes that agree, a group's
# pid shown as "-" and its members without a lag of their own.
. "$(dirname "$0")/lib.sh"

# A block queue, a fast consumer and an observer whose reader waits until
# the producer is done: the observer is lapped.
$BOUNDED "$SHMQ" create b.q --size 64K --max-message 1K
$BOUNDED "$SHMQ" get b.q -l >fast.out &
f=$!
track $f
$BOUNDED "$SHMQ" get b.q --observe -l 2>obs.err |
	(until [ -e done ]; do sleep 0.05; done; cat >obs.out) &
o=$!
track $o
wait_consumers b.q 2
seq 1 200000 | $BOUNDED "$SHMQ" put b.q -l
expect_status 0 $? "put"
touch done
wait $f
expect_status 0 $? "the fast consumer"
[ "$(wc -l <fast.out)" -eq 200000 ] || fail "the fast consumer lost messages"
wait $o
expect_status 5 $? "the lapped observer (status 5)"
grep -Eq '^shmq get: b\.q: observer overrun: [0-9]+ messages? lost before seq [0-9]+ \(observers never hold the producer back; use a named consumer to keep every message\)$' obs.err ||
	fail "overrun message: $(head -n 3 obs.err)"
lost=$(sed -E 's/.*overrun: ([0-9]+) message.*/\1/' obs.err | awk '{s += $1} END {print s}')
[ $((lost + $(wc -l <obs.out))) -eq 200000 ] ||
	fail "observer: $lost lost + $(wc -l <obs.out) read != 200000"

# Rates: every bytes_per_s is ring bytes, the unit of positions: over a
# --watch interval the producer's rate times the interval is the change
# of write_pos, a consumer's the change of its position; the producer's
# payload rate is the change of its payload counter.
$BOUNDED "$SHMQ" create r.q --size 256K
$BOUNDED "$SHMQ" get r.q -l -f >/dev/null &
track $!
wait_consumers r.q 1
# A stream for longer than the watch: the consumer is there throughout.
(timeout 3 yes 0123456789 || true) | $BOUNDED "$SHMQ" put r.q -l &
p=$!
track $p
run_for 1.8 INT "$SHMQ" stat r.q --json --watch 0.4 >w.json
expect_status 0 $? "stat --json --watch"
field() {	# LINE PART(top|cons) KEY
	local s
	if [ "$2" = top ]; then s=${1%%\"consumers\":*}; else s=${1#*\"consumers\":}; fi
	printf '%s\n' "$s" | grep -o "\"$3\":[0-9.]*" | head -n 1 | cut -d: -f2
}
checked=0
prev=
while IFS= read -r line; do
	if [ -n "$prev" ] && [ "$(field "$line" top interval_s)" ]; then
		dt=$(field "$line" top interval_s)
		for spec in "top bytes_per_s write_pos" "top payload_bytes_per_s bytes" \
			"cons bytes_per_s position" "top messages_per_s messages"; do
			set -- $spec
			rate=$(field "$line" $1 $2)
			now=$(field "$line" $1 $3)
			was=$(field "$prev" $1 $3)
			awk -v r="$rate" -v dt="$dt" -v d=$((now - was)) 'BEGIN {
				e = r * dt - d; if (e < 0) e = -e
				exit !(e <= 0.01 * d + 2 * dt + 1) }' ||
				fail "$2 ($1) is not the rate of $3: $rate/s over $dt s, $3 moved by $((now - was))"
		done
		checked=$((checked + 1))
	fi
	prev=$line
done <w.json
[ "$checked" -ge 2 ] || fail "only $checked intervals checked"
wait $p
expect_status 0 $? "put (rates)"
"$SHMQ" stat r.q >r.txt
grep -q '^sent .* payload;' r.txt || fail "table: the payload counter is not labelled"

# Lags that agree: a group whose members died at different points of
# the stream (killed: a dead member keeps its slot). Members have no lag
# of their own (the group's row has it): "-" in the table, 0 messages and
# 0 bytes in JSON; no row has messages without bytes.
# The ring is smaller than the stream (64K for 200K of records).
$BOUNDED "$SHMQ" create g.q --size 64K
"$SHMQ" get g.q --group workers -l -f >m1.out &
m1=$!
track $m1
"$SHMQ" get g.q --group workers -l -f >m2.out &
m2=$!
track $m2
wait_members g.q 2
seq 1 5000 | $BOUNDED "$SHMQ" put g.q -l
for i in $(seq 1 200); do
	[ "$(cat m1.out m2.out | wc -l)" -eq 5000 ] && break
	sleep 0.05
done
[ "$(cat m1.out m2.out | wc -l)" -eq 5000 ] || fail "the group did not read the stream"
kill -KILL $m1 $m2
wait $m1 $m2 2>/dev/null
"$SHMQ" stat g.q --json >g.json
grep -o '"lag_messages":[0-9]*,"lag_bytes":[0-9]*' g.json | while IFS= read -r kv; do
	msgs=${kv#*\"lag_messages\":}; msgs=${msgs%%,*}
	bytes=${kv##*:}
	[ "$bytes" -eq 0 ] && [ "$msgs" -ne 0 ] && fail "lag of $msgs messages in 0 bytes: $(cat g.json)"
	true
done || exit 1
members=$(grep -o '{"slot":[^{}]*}' g.json | grep -c '"kind":"member"')
[ "$members" -eq 2 ] || fail "two dead members expected: $(cat g.json)"
grep -o '{"slot":[^{}]*}' g.json | grep '"kind":"member"' |
	grep -v '"lag_messages":0,"lag_bytes":0,' &&
	fail "a member has a lag of its own: $(cat g.json)"
"$SHMQ" stat g.q >g.txt
grep -q '^consumers  .*in ring bytes' g.txt || fail "table: the unit is not labelled: $(cat g.txt)"
grep -Eq '^ +[0-9]+ group +workers +- +dead ' g.txt || fail "group row: pid should be '-': $(cat g.txt)"
[ "$(grep -cE '^ +[0-9]+ member +workers +[0-9]+ +dead +- +[0-9]+ +- +- +-$' g.txt)" -eq 2 ] ||
	fail "member rows: $(cat g.txt)"
exit 0
