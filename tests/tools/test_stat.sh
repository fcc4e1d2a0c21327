#!/bin/bash
# SPDX-License-Identifier: MIT
# shmq stat with a producer and consumers attached: the table, --json, and
# --watch with rates; a named consumer that left shows as not alive.
. "$(dirname "$0")/lib.sh"

seq 1 10 | $BOUNDED "$SHMQ" put q --create --lines
$BOUNDED "$SHMQ" get q --name gone --lines --count 3 >/dev/null
mkfifo in
exec 3<>in
$BOUNDED "$SHMQ" put q --lines <in 3>&- &
p=$!
track $p
wait_producer q
$BOUNDED "$SHMQ" get q --name live --lines --follow >/dev/null 3>&- &
g=$!
track $g
wait_consumers q 1

$BOUNDED "$SHMQ" stat q >st.txt
expect_status 0 $? "stat"
grep -q "^producer   open, pid $p\b" st.txt || grep -q "^producer   open, pid " st.txt ||
	fail "stat: no open producer: $(cat st.txt)"
grep -Eq '^ +[0-9]+ named +gone +[0-9]+ dead ' st.txt || fail "stat: no dead 'gone': $(cat st.txt)"
grep -Eq '^ +[0-9]+ named +live +[0-9]+ live ' st.txt || fail "stat: no live 'live': $(cat st.txt)"

$BOUNDED "$SHMQ" stat q --json >st.json
expect_status 0 $? "stat --json"
grep -q '"name":"gone","pid":[0-9]*,"alive":false,"holding":true' st.json ||
	fail "json: the dead named consumer should hold the producer: $(cat st.json)"
grep -q '"name":"live","pid":[0-9]*,"alive":true' st.json || fail "json: $(cat st.json)"
if command -v jq >/dev/null; then
	jq -e '.producer.state == "open" and (.consumers | length) == 2 and
		([.consumers[] | select(.name == "gone")][0] |
			.lag_messages == 7 and .lag_bytes > 0 and
			.state == "dead" and .lag_age_ns > 0) and
		([.consumers[] | select(.name == "live")][0] |
			.state == "live" and .lag_messages == 0 and
			.lag_age_ns == 0)' \
		st.json >/dev/null || fail "json content: $(cat st.json)"
fi

# --watch: one JSON object per line, with rates from the second on.
seq 1 1000 >&3
run_for 1.2 INT "$SHMQ" stat q --json --watch 0.25 >watch.json
expect_status 0 $? "stat --watch ended by SIGINT"
n=$(wc -l <watch.json)
[ "$n" -ge 3 ] || fail "--watch 0.25 for 1.2 s printed $n lines"
sed -n 2p watch.json | grep -q '"interval_s":' || fail "watch: no rates: $(sed -n 2p watch.json)"
sed -n 2p watch.json | grep -q '"messages_per_s":' || fail "watch: no consumer rates"
run_for 0.7 INT "$SHMQ" stat q --watch 0.25 >watch.txt
expect_status 0 $? "stat --watch (table)"
grep -q 'MSG/S' watch.txt || fail "watch table: no rate columns"
exec 3>&-
wait $p
expect_status 0 $? "put"
exit 0
