#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12 through the tools: modes a queue file may not have, names and
# paths that try to drive the terminal, a file cut under `shmq create`,
# `shmq sync` without write access, `shmq rm` and symlinked directories.
# Usage: test_security.sh SHMQ SHMQ_PRODUCER SHMQ_CONSUMER HOOKS_SO
HOOKS=$(realpath "$4")	# before lib.sh changes directory
. "$(dirname "$0")/lib.sh"

# Output is clean when it holds only printable ASCII and newlines.
expect_clean() {
	local file=$1 what=$2 n
	n=$(LC_ALL=C tr -d '\n\040-\176' <"$file" | wc -c)
	[ "$n" -eq 0 ] || { od -c "$file" | head -20 >&2; fail "$what: $n raw control or 8-bit bytes"; }
}

# ---- item 9: setuid, setgid, sticky and execute bits -----------------
for m in 4660:setuid 2660:setgid 1660:sticky 0760:execute 6771:setuid; do
	$BOUNDED "$SHMQ" create m --mode "${m%%:*}" 2>err
	expect_status 1 $? "create --mode ${m%%:*}"
	expect_one_line err "create --mode ${m%%:*}"
	grep -q "${m##*:}" err || fail "create --mode ${m%%:*}: $(cat err)"
	[ -e m ] && fail "create --mode ${m%%:*} left a file"
done
$BOUNDED "$SHMQ" create m --mode 0664
expect_status 0 $? "create --mode 0664"
for m in 4600:setuid 2600:setgid 1600:sticky 0700:execute; do
	chmod "${m%%:*}" m
	for cmd in "get m --timeout 0" "stat m" "put m"; do
		$BOUNDED "$SHMQ" $cmd </dev/null >/dev/null 2>err
		expect_status 1 $? "$cmd on mode ${m%%:*}"
		expect_one_line err "$cmd on mode ${m%%:*}"
		grep -q "${m##*:}" err || fail "$cmd on mode ${m%%:*}: $(cat err)"
	done
done
chmod 0600 m

# ---- item 11: names and paths that try to drive the terminal ---------
# A consumer's name is in the file, where anyone who can write it can put
# any bytes: here a title change, a bell, a newline with a forged row, a
# screen clear, invalid UTF-8 (0xff, an overlong 0xc0 0xaf), a C1 CSI
# (U+009B) and a right-to-left override (U+202E), then a backslash.
$BOUNDED "$SHMQ" create n
$BOUNDED "$SHMQ" get n --name MARKERMARKERMARKER --count 1 --timeout 0.01 2>/dev/null
off=$(grep -obUaF MARKERMARKERMARKER n | head -1 | cut -d: -f1)
[ -n "$off" ] || fail "the slot name is not in the file"
printf 'e\033]0;pwned\007\n   9 named forged\033[2J\xff\xc0\xaf\xc2\x9b\xe2\x80\xae\\\0' |
	dd of=n bs=1 seek="$off" conv=notrunc status=none
want='e\x1b]0;pwned\x07\x0a   9 named forged\x1b[2J\xff\xc0\xaf\xc2\x9b\xe2\x80\xae\\'
$BOUNDED "$SHMQ" stat n >st.txt
expect_status 0 $? "stat with a hostile name"
expect_clean st.txt "stat table"
grep -qF " named     $want " st.txt || fail "stat table: name not escaped as expected: $(cat st.txt)"
[ "$(grep -c named st.txt)" -eq 1 ] || fail "stat table: a forged row"
$BOUNDED "$SHMQ" stat n --json >st.json
expect_status 0 $? "stat --json with a hostile name"
expect_clean st.json "stat --json"
jwant='e\u001b]0;pwned\u0007\u000a   9 named forged\u001b[2J\u00ff\u00c0\u00af\u009b\u202e\\'
grep -qF "\"name\":\"$jwant\"" st.json || fail "stat --json: name: $(cat st.json)"
if command -v jq >/dev/null; then
	# Invalid bytes come back as U+00NN (docs/tools.md).
	jq -e --arg w "$(printf 'e\033]0;pwned\007\n   9 named forged\033[2J\303\277\303\200\302\257\302\233\342\200\256\\')" \
		'.consumers[0].name == $w' st.json >/dev/null ||
		fail "stat --json: jq decodes another name: $(jq .consumers[0].name st.json)"
fi
run_for 0.5 INT "$SHMQ" stat n --watch 0.2 >watch.txt
expect_clean watch.txt "stat --watch (not a terminal)"

# Error messages: paths and names given to the tools are escaped too.
$BOUNDED "$SHMQ" stat $'no\033]0;x\007such' 2>err
expect_status 1 $? "stat of a missing hostile path"
expect_one_line err "stat of a missing hostile path"
expect_clean err "error naming a hostile path"
grep -qF 'no\x1b]0;x\x07such' err || fail "path not escaped: $(cat err)"
$BOUNDED "$SHMQ" drop n $'a\033[2J\xffb' 2>err
expect_status 2 $? "drop of a hostile name"	# not a valid name: usage
expect_clean err "drop of a hostile name"
grep -qF 'a\x1b[2J\xffb' err || fail "name not escaped: $(cat err)"

# A student record's name is printed escaped as well.
$BOUNDED "$PRODUCER" r --create --count 1 --interval 0 --name $'\033[31mred\xff' >/dev/null
$BOUNDED "$CONSUMER" r --count 1 >rec.txt
expect_status 0 $? "shmq-consumer"
expect_clean rec.txt "shmq-consumer"
grep -qxF 'id = 1, name = \x1b[31mred\xff, age = 18' rec.txt || fail "record: $(cat rec.txt)"

# ---- item 12: the file cut while `shmq create` writes the header -----
# The hook truncates c to 0 bytes just before the header is written.
LD_PRELOAD="$HOOKS" SHMQ_HOOK_TRUNCATE="$T/c" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	$BOUNDED "$SHMQ" create c 2>err
st=$?
[ $st -lt 128 ] || fail "create died of signal $((st - 128))"
expect_status 7 $st "create of a file truncated under it"
expect_one_line err "create of a file truncated under it"
grep -q "truncated" err || fail "create: $(cat err)"
[ -e c ] && fail "create left its half-made file"

# ---- item 4: sync needs write access ---------------------------------
# Root may write anything: the check runs as another user, or as the
# owner of a file it cannot write.
$BOUNDED "$SHMQ" create s
seq 1 5 | $BOUNDED "$SHMQ" put s --lines
as_user=""
if [ "$(id -u)" -eq 0 ]; then
	command -v setpriv >/dev/null || { note "no setpriv: sync as another user skipped"; as_user=skip; }
	[ "$as_user" = skip ] || as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"
	[ "$as_user" = skip ] || { chmod 0755 "$T"; chown 65534:65534 s; }
fi
if [ "$as_user" != skip ]; then
	chmod 0400 s
	$BOUNDED $as_user "$SHMQ" sync s 2>err
	expect_status 1 $? "sync of a read-only queue"
	expect_one_line err "sync of a read-only queue"
	grep -q "sync needs write access" err || fail "sync: $(cat err)"
	chmod 0600 s
	$BOUNDED $as_user "$SHMQ" sync s
	expect_status 0 $? "sync of a writable queue"
fi

# ---- item 8: rm checks and removes in one directory ------------------
mkdir d
ln -s d l
$BOUNDED "$SHMQ" create d/q
$BOUNDED "$SHMQ" rm l/q 2>err
expect_status 1 $? "rm through a symlinked directory"
expect_one_line err "rm through a symlinked directory"
grep -q "symbolic link" err || fail "rm l/q: $(cat err)"
[ -e d/q ] || fail "rm through a symlinked directory removed the queue"
$BOUNDED "$SHMQ" rm "$T/d//q"
expect_status 0 $? "rm DIR//q"
[ -e d/q ] && fail "rm DIR//q left the queue"
$BOUNDED "$SHMQ" rm d/ 2>err
expect_status 1 $? "rm of a directory path"
expect_one_line err "rm of a directory path"
exit 0
