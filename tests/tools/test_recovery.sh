#!/bin/bash
# SPDX-License-Identifier: MIT
# Recovery that would cut durable data: put refuses to start, names
# --accept-loss and leaves the file as it was; with --accept-loss it goes
# ahead, and stat shows the last cut. The damage is a byte flipped in the
# payload of the sixth record (a page the disk lost, as recovery sees it).
. "$(dirname "$0")/lib.sh"

$BOUNDED "$SHMQ" create q --size 64K --checksum full
seq 1 10 | $BOUNDED "$SHMQ" put q --lines --sync every
expect_status 0 $? "put --sync every"

# Record layout (docs/format.md): a 32-byte header, the payload, padding
# to 8. Every line of "seq 1 10" is at most 2 bytes: 40-byte records.
u64() { od -An -t u8 -j "$1" -N 8 q | tr -d ' '; }
data_off=$(u64 24)	# header field data_off
tail=$(u64 136)		# header field tail_pos
[ -n "$data_off" ] && [ -n "$tail" ] || fail "cannot read the header"
off=$((data_off + (tail % 65536) + 5 * 40 + 32))
printf 'X' | dd of=q bs=1 seek=$off conv=notrunc status=none
sha_before=$(sha <q)

echo more | $BOUNDED "$SHMQ" put q --lines 2>err
expect_status 1 $? "put over durable data it would cut"
grep -q -- "--accept-loss" err || fail "the refusal does not name --accept-loss: $(cat err)"
grep -q "up to 5 messages" err || fail "the refusal does not count the messages: $(cat err)"
[ "$(sha <q)" = "$sha_before" ] || fail "a refused recovery changed the file"

echo more | $BOUNDED "$SHMQ" put q --lines --accept-loss
expect_status 0 $? "put --accept-loss"
"$SHMQ" stat q >st || fail "stat"
grep -qi "last cut" st || fail "stat does not show the last cut: $(cat st)"
"$SHMQ" stat q --json | grep -q '"cut_messages":5' ||
	fail "stat --json cut_messages: $("$SHMQ" stat q --json)"
# The cut session ends as one whose producer died (part of it is gone);
# the next get reads the new session.
$BOUNDED "$SHMQ" get q --lines >got1
expect_status 3 $? "get of the cut session"
[ "$(tr '\n' ' ' <got1)" = "1 2 3 4 5 " ] || fail "after the cut: $(cat got1)"
[ "$($BOUNDED "$SHMQ" get q --lines | tr '\n' ' ')" = "more " ] ||
	fail "the session after the cut"
echo PASS
