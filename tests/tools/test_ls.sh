#!/bin/bash
# SPDX-License-Identifier: MIT
# shmq ls DIR: one line per ready queue, with the producer's state and pid
# and the live/all consumer counts; FIFOs, directories, symbolic links,
# devices, other files and a half-created queue are skipped without being
# waited on (a FIFO opened for reading would block; shmq_open() on a
# half-created queue would wait 2 s and then fail, on stderr).
. "$(dirname "$0")/lib.sh"

mkdir d
# A queue with a live producer, two live consumers and a dead named one.
seq 1 10 | $BOUNDED "$SHMQ" put d/busy.q --create -l
$BOUNDED "$SHMQ" get d/busy.q --name gone -l -n 2 >/dev/null
mkfifo in
exec 3<>in
$BOUNDED "$SHMQ" put d/busy.q -l <in 3>&- &
p=$!
track $p
wait_producer d/busy.q
for i in 1 2; do
	$BOUNDED "$SHMQ" get d/busy.q --from latest -l >/dev/null 3>&- &
	track $!
done
wait_consumers d/busy.q 2
# A queue whose producer closed, no consumer.
seq 1 3 | $BOUNDED "$SHMQ" put d/idle.q --create -l
# A queue nobody ever produced to, created with a name to escape.
$BOUNDED "$SHMQ" create "$(printf 'd/new\033[31m.q')"
# Things that are no queues.
mkfifo d/fifo
mkdir d/adir
ln -s busy.q d/link.q
head -c 4096 /dev/zero >d/zeros
echo "hello" >d/text
# Half-created: a queue's magic, but its creator never stored "ready".
cp d/idle.q d/half.q
printf '\0\0\0\0' | dd of=d/half.q bs=1 seek=68 conv=notrunc status=none
[ -e /dev/null ] && mknod d/dev c 1 3 2>/dev/null

$BOUNDED "$SHMQ" ls d >ls.out 2>ls.err
expect_status 0 $? "shmq ls"
[ -s ls.err ] && fail "ls wrote to stderr: $(cat ls.err)"
head -n 1 ls.out | grep -Eq '^PRODUCER +PID +LIVE +CONS +FILL +RING +NAME$' ||
	fail "header: $(head -n 1 ls.out)"
[ "$(tail -n +2 ls.out | awk '{print $NF}' | tr '\n' ' ')" = 'busy.q idle.q new\x1b[31m.q ' ] ||
	fail "ls should list exactly the three queues, sorted, names escaped: $(cat ls.out)"
pid=$("$SHMQ" stat d/busy.q --json | grep -o '"producer":{"state":"open","pid":[0-9]*' | cut -d: -f4)
grep -Eq "^open +$pid +2 +3 .* busy\.q$" ls.out || fail "busy.q: $(cat ls.out)"
grep -Eq '^closed +[0-9]+ +0 +0 .* idle\.q$' ls.out || fail "idle.q: $(cat ls.out)"
grep -Eq '^none +- +0 +0 ' ls.out || fail "new queue: $(cat ls.out)"

# The current directory by default; a missing directory is an error.
(cd d && $BOUNDED "$SHMQ" ls) >ls2.out
expect_status 0 $? "shmq ls (no DIR)"
cmp -s ls.out ls2.out || fail "ls and ls d differ"
$BOUNDED "$SHMQ" ls nowhere 2>err
expect_status 1 $? "ls of a missing directory"
expect_one_line err "ls nowhere"
$BOUNDED "$SHMQ" ls d d 2>err
expect_status 2 $? "ls d d"
exec 3>&-
wait $p
expect_status 0 $? "put"
exit 0
