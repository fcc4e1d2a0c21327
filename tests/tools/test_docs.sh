#!/bin/bash
# SPDX-License-Identifier: MIT
# Every ```sh block of docs/tools.md runs, in a fresh directory, with the
# built tools first in PATH, and succeeds, and leaves no consumer in any
# queue it made: a named consumer or group left behind holds the next
# run's producer once the ring is full (issue 10 item 4).
. "$(dirname "$0")/lib.sh"

doc=$1
[ -r "$doc" ] || fail "cannot read $doc"
awk -v dir="$T" '
	/^```sh$/ { n++; f = sprintf("%s/example%02d.sh", dir, n); inblk = 1; next }
	/^```/ { inblk = 0; next }
	inblk { print > f }
' "$doc"
count=0
for ex in "$T"/example*.sh; do
	[ -e "$ex" ] || fail "no sh examples in $doc"
	count=$((count + 1))
	d=$(mktemp -d "$T/run.XXXXXX")
	(cd "$d" && $BOUNDED bash -e -o pipefail "$ex") >"$ex.out" 2>&1
	st=$?
	if [ $st -ne 0 ]; then
		cat "$ex" >&2
		cat "$ex.out" >&2
		fail "example $(basename "$ex") from $doc: status $st"
	fi
	for f in "$d"/*; do
		# Queue files only: others would wait out the header check.
		[ -f "$f" ] && [ "$(head -c 4 "$f")" = SHMQ ] || continue
		"$SHMQ" stat "$f" --json | grep -q '"consumers":\[\]' && continue
		cat "$ex" >&2
		"$SHMQ" stat "$f" >&2
		fail "example $(basename "$ex") from $doc leaves a consumer in $(basename "$f")"
	done
done
note "$count examples ran"
exit 0
