#!/bin/bash
# SPDX-License-Identifier: MIT
# shmq stat --prometheus: the text exposition format (0.0.4) that
# node_exporter's textfile collector reads. Every sample line is
# `name{labels} value`, each family has one HELP and one TYPE line before
# its samples and its samples together, no timestamps; label values
# escape \, " and the newline; one lag sample per consumer.
. "$(dirname "$0")/lib.sh"

# A directory whose name needs every escape of the format.
dir=$(printf 'a"b\\c\nd')
mkdir "$dir"
q="$dir/q"
seq 1 10 | $BOUNDED "$SHMQ" put "$q" --create -l
$BOUNDED "$SHMQ" get "$q" --name audit -l -n 4 >/dev/null
$BOUNDED "$SHMQ" get "$q" --group workers -l -n 1 >/dev/null
$BOUNDED "$SHMQ" stat "$q" --prometheus >m.prom
expect_status 0 $? "stat --prometheus"

# The format, line by line (awk: no promtool needed).
awk '
function fail(m) { print "line " NR ": " m ": " $0 > "/dev/stderr"; bad = 1; exit 1 }
/^# HELP / { if (help[$3]++) fail("second HELP"); next }
/^# TYPE / {
	if (type[$3]++) fail("second TYPE")
	if ($4 !~ /^(counter|gauge)$/) fail("type")
	if (!help[$3]) fail("TYPE before HELP")
	cur = $3; next
}
/^#/ { fail("comment") }
{
	# name{label="value",...} value, values escaping only \\ \" \n.
	if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*")*\} -?[0-9]+(\.[0-9]+)?$/)
		fail("not name{labels} value")
	name = $0; sub(/\{.*/, "", name)
	if (name != cur) fail("sample outside its family (" cur ")")
	if (done[name] && prev != name) fail("family split")
	done[name] = 1; prev = name; samples++
	if (type[name] == "counter" && name !~ /_total$/) fail("counter without _total")
}
END { if (!bad && samples < 20) { print "only " samples " samples" > "/dev/stderr"; exit 1 } }
' m.prom || fail "not the Prometheus text format: $(cat m.prom)"

# The queue label: the path, escaped \\ \" \n.
esc='a\"b\\c\nd/q'
grep -qF "shmq_messages_total{queue=\"$esc\"} 10" m.prom ||
	fail "queue label or messages: $(grep shmq_messages_total m.prom)"
grep -qF "shmq_producer_state{queue=\"$esc\",state=\"closed\"} 1" m.prom ||
	fail "producer state: $(grep shmq_producer_state m.prom)"
# Lag per consumer, with slot, kind and name labels: audit read 4; the
# group started where audit had left (what departed consumers released).
grep -qE '^shmq_consumer_lag_messages\{.*,kind="named",name="audit"\} 6$' m.prom ||
	fail "audit's lag: $(grep lag_messages m.prom)"
grep -qE '^shmq_consumer_lag_messages\{.*,kind="group",name="workers"\} 5$' m.prom ||
	fail "workers' lag: $(grep lag_messages m.prom)"
grep -qE '^shmq_consumer_lag_bytes\{.*name="audit"\} [1-9][0-9]*$' m.prom ||
	fail "audit's lag bytes"

# A name only a raw write can give (the library refuses it): a quote, a
# backslash, a newline, an escape and a byte that is not UTF-8 stay in
# one label value of valid UTF-8.
"$SHMQ" create raw.q --slots 2
"$SHMQ" get raw.q --name zzzzzz --timeout 0.01 >/dev/null 2>&1
off=$(grep -boa zzzzzz raw.q | head -n 1 | cut -d: -f1)
[ -n "$off" ] || fail "slot name not found in the file"
printf 'q"b\\\n\033\377' | dd of=raw.q bs=1 seek="$off" conv=notrunc status=none
$BOUNDED "$SHMQ" stat raw.q --prometheus >raw.prom
expect_status 0 $? "stat --prometheus, a raw name"
grep -qF 'name="q\"b\\\n\\u001b\\u00ff"}' raw.prom ||
	fail "raw name: $(grep shmq_consumer_alive raw.prom)"
iconv -f UTF-8 -t UTF-8 raw.prom >/dev/null || fail "not UTF-8"

# Not with --watch (a textfile is one snapshot), not with --json.
$BOUNDED "$SHMQ" stat "$q" --prometheus --watch 1 2>err
expect_status 2 $? "--prometheus --watch"
$BOUNDED "$SHMQ" stat "$q" --prometheus --json 2>err
expect_status 2 $? "--prometheus --json"
exit 0
