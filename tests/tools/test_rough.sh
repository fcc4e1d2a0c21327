#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 10 item 9, the tools' rough edges: zero sizes and slot counts,
# names with spaces, create on a directory and beyond the free space,
# what create says it allocated, the --create hint only where --create
# exists, rm --force on a damaged queue, rm on a file that is no queue.
. "$(dirname "$0")/lib.sh"

usage() {
	$BOUNDED "$@" 2>err </dev/null >/dev/null
	expect_status 2 $? "$*"
	expect_one_line err "$*"
}

# --size 0 and --slots 0 meant the defaults; --name "a b" was status 1.
usage "$SHMQ" create z.q --size 0
usage "$SHMQ" create z.q --slots 0
usage "$SHMQ" create z.q --slots 4097
[ -e z.q ] && fail "a refused create made the file"
$BOUNDED "$SHMQ" create q --size 64K
usage "$SHMQ" get q --name "a b"
usage "$SHMQ" get q --group "a b"
usage "$SHMQ" get q --name "$(printf 'caf\xc3\xa9')"
usage "$SHMQ" drop q "a b"
usage "$CONSUMER" q --name "a b"

# create on a directory says so, not "already exists".
mkdir adir
$BOUNDED "$SHMQ" create adir 2>err
expect_status 1 $? "create on a directory"
expect_one_line err "create on a directory"
grep -q "adir: cannot create queue: it is a directory" err ||
	fail "create on a directory: $(cat err)"
$BOUNDED "$SHMQ" create q 2>err
expect_status 1 $? "create on a queue"
grep -q "the file exists" err || fail "create on a queue: $(cat err)"

# What create allocated: said when the ring was rounded up, quiet when
# it is what was asked (small files).
$BOUNDED "$SHMQ" create r.q --size 3M 2>err
expect_status 0 $? "create --size 3M"
expect_one_line err "create --size 3M"
grep -q "r.q: a 4.0 MiB ring (rounded up from 3145728 bytes" err ||
	fail "create --size 3M: $(cat err)"
grep -q "allocated" err || fail "create --size 3M: $(cat err)"
$BOUNDED "$SHMQ" create s.q --size 4M 2>err
expect_status 0 $? "create --size 4M"
[ -s err ] && fail "create --size 4M is not quiet: $(cat err)"

# A file above the free space is refused before anything exists: a
# power of two beyond what df reports (and at most the 1 TiB maximum).
avail=$(df -B1 --output=avail . | tail -n 1 | tr -d ' ')
blocks=$(stat -f -c %b .)
if [ "$blocks" -gt 0 ] && [ "$avail" -lt $((1 << 39)) ]; then
	size=$((1 << 20))
	while [ "$size" -le "$avail" ]; do size=$((size * 2)); done
	$BOUNDED "$SHMQ" create big.q --size "$size" 2>err
	expect_status 1 $? "create --size $size with $avail bytes free"
	expect_one_line err "create beyond the free space"
	grep -q "not enough space: big.q needs [0-9]* bytes, its filesystem has [0-9]* bytes free" err ||
		fail "create beyond the free space: $(cat err)"
	[ -e big.q ] && fail "create beyond the free space left a file"
else
	note "free-space check skipped: $avail bytes free, $blocks blocks"
fi
# A file of 1 GiB or more is reported, where the disk can take one
# briefly (not tmpfs, where it would be memory).
if [ "$avail" -gt $((8 << 30)) ] && [ "$(stat -f -c %T .)" != tmpfs ]; then
	$BOUNDED "$SHMQ" create g.q --size 1G 2>err
	expect_status 0 $? "create --size 1G"
	grep -q "g.q: a 1.0 GiB ring; the file is 1.0 GiB, .* allocated" err ||
		fail "create --size 1G: $(cat err)"
	$BOUNDED "$SHMQ" rm g.q
else
	note "1 GiB create skipped: $avail bytes free on $(stat -f -c %T .)"
fi

# The --create hint only from commands that take --create.
for cmd in stat sync policy rm; do
	$BOUNDED "$SHMQ" $cmd missing.q 2>err
	expect_status 1 $? "$cmd on a missing queue"
	expect_one_line err "$cmd on a missing queue"
	grep -q "missing.q: no such queue" err || fail "$cmd: $(cat err)"
	grep -q -- "--create" err && fail "$cmd suggests --create: $(cat err)"
done
$BOUNDED "$SHMQ" drop missing.q a 2>err
expect_status 1 $? "drop on a missing queue"
grep -q -- "--create" err && fail "drop suggests --create: $(cat err)"
$BOUNDED "$SHMQ" get missing.q --timeout 0 2>err
expect_status 1 $? "get on a missing queue"
grep -q "pass --create" err || fail "get: $(cat err)"
$BOUNDED "$PRODUCER" missing.q --count 1 2>err
expect_status 1 $? "shmq-producer on a missing queue"
grep -q "pass --create" err || fail "shmq-producer: $(cat err)"
[ -e missing.q ] && fail "a command without --create made the queue"

# rm --force on a truncated queue removes it; plain rm says how.
$BOUNDED "$SHMQ" create t.q
truncate -s 8000 t.q
$BOUNDED "$SHMQ" rm t.q 2>err
expect_status 1 $? "rm of a truncated queue"
expect_one_line err "rm of a truncated queue"
grep -q "rm --force' removes a damaged queue" err || fail "rm: $(cat err)"
[ -e t.q ] || fail "rm without --force removed a damaged queue"
$BOUNDED "$SHMQ" rm --force t.q 2>err
expect_status 0 $? "rm --force of a truncated queue: $(cat err)"
[ -e t.q ] && fail "rm --force left the truncated queue"
# One of another format version: the same (recreating it needs rm).
$BOUNDED "$SHMQ" create v.q
printf '\x63' | dd of=v.q bs=1 seek=8 conv=notrunc status=none
$BOUNDED "$SHMQ" rm --force v.q 2>err
expect_status 0 $? "rm --force of another version: $(cat err)"
[ -e v.q ] && fail "rm --force left a queue of another version"
# A file that is no queue is never removed; rm(1) is named.
head -c 8192 /dev/urandom >notq
$BOUNDED "$SHMQ" rm --force notq 2>err
expect_status 1 $? "rm --force of a file that is no queue"
expect_one_line err "rm --force of a file that is no queue"
grep -q "use rm(1)" err || fail "rm --force notq: $(cat err)"
[ -e notq ] || fail "rm --force removed a file that is no queue"
exit 0
