#!/bin/bash
# SPDX-License-Identifier: MIT
# A 50 MiB file through `gzip | shmq put` and `shmq get | gunzip` comes out
# identical.
. "$(dirname "$0")/lib.sh"

head -c 50M /dev/urandom >big || fail "cannot make the input file"
($BOUNDED "$SHMQ" get q --create | gunzip >out) &
reader=$!
track $reader
wait_consumers q 1
gzip -1 -c <big | $BOUNDED "$SHMQ" put q --create
expect_status 0 $? "gzip | shmq put"
wait $reader
expect_status 0 $? "shmq get | gunzip"
cmp -s big out || fail "output differs from the input"
exit 0
