#!/bin/bash
# SPDX-License-Identifier: MIT
# The command line itself: --help and --version everywhere, usage errors as
# one line and status 2, create/stat/sync/rm, sizes, unsupported flags.
. "$(dirname "$0")/lib.sh"

for tool in "$SHMQ" "$PRODUCER" "$CONSUMER"; do
	$BOUNDED "$tool" --help >help.out
	expect_status 0 $? "$tool --help"
	grep -q '^Usage:' help.out || fail "$tool --help: no usage"
	$BOUNDED "$tool" --version >version.out
	expect_status 0 $? "$tool --version"
	grep -Eq '^shmq(-producer|-consumer)? [0-9]+\.[0-9]+\.[0-9]+$' version.out ||
		fail "$tool --version: '$(cat version.out)'"
	$BOUNDED "$tool" --no-such-option 2>err
	expect_status 2 $? "$tool --no-such-option"
	expect_one_line err "$tool --no-such-option"
done
for cmd in create put get stat policy drop sync rm; do
	$BOUNDED "$SHMQ" $cmd --help >help.out
	expect_status 0 $? "shmq $cmd --help"
	grep -q "^Usage: shmq $cmd" help.out || fail "shmq $cmd --help"
done

# Usage errors: status 2, one line, never a signal.
usage() {
	$BOUNDED "$@" 2>err </dev/null >/dev/null
	expect_status 2 $? "$*"
	expect_one_line err "$*"
}
usage "$SHMQ"
usage "$SHMQ" frobnicate q
usage "$SHMQ" create
usage "$SHMQ" create q extra
usage "$SHMQ" create q --size 12X
usage "$SHMQ" create q --size
usage "$SHMQ" create q --mode 999
usage "$SHMQ" create q --when-full sometimes
usage "$SHMQ" put q --lines --null
usage "$SHMQ" put q --sync always
usage "$SHMQ" get q --count -1
usage "$SHMQ" get q --timeout soon
usage "$SHMQ" get q --from middle
usage "$SHMQ" get q --name a --observe
usage "$SHMQ" get q --name ""
usage "$SHMQ" get q --name "$(printf 'x%.0s' $(seq 1 56))"
usage "$SHMQ" stat q --watch 0
usage "$PRODUCER"
usage "$PRODUCER" q --name "a name that is much longer than 31 bytes"
usage "$PRODUCER" q --count ten
usage "$CONSUMER" q --name a --group b
[ -e q ] && fail "a usage error created the queue"

# create, with sizes in K/M/G, and its refusal to overwrite.
$BOUNDED "$SHMQ" create q --size 4M --max-message 16K --slots 8 --mode 640
expect_status 0 $? "shmq create"
[ "$(stat -c %a q)" = 640 ] || fail "mode: $(stat -c %a q)"
$BOUNDED "$SHMQ" stat q --json >st.json
expect_status 0 $? "shmq stat --json"
grep -q '"capacity":4194304,' st.json || fail "capacity: $(cat st.json)"
grep -q '"max_message":16384,' st.json || fail "max_message: $(cat st.json)"
grep -q '"slots":8,' st.json || fail "slots: $(cat st.json)"
grep -q '"when_full":"block"' st.json || fail "when_full: $(cat st.json)"
grep -q '"producer":{"state":"none","pid":null}' st.json || fail "producer: $(cat st.json)"
if command -v jq >/dev/null; then
	jq -e '.schema == 1 and (.consumers | length) == 0' st.json >/dev/null ||
		fail "stat --json is not the documented JSON"
fi
$BOUNDED "$SHMQ" create q 2>err
expect_status 1 $? "shmq create on an existing path"
expect_one_line err "shmq create on an existing path"
$BOUNDED "$SHMQ" create o --when-full overwrite --size 64K
expect_status 0 $? "shmq create --when-full overwrite"
$BOUNDED "$SHMQ" stat o --json | grep -q '"when_full":"overwrite"' || fail "overwrite"

# The human table and sync.
$BOUNDED "$SHMQ" stat q >st.txt
expect_status 0 $? "shmq stat"
grep -q '^producer   none' st.txt || fail "stat table: $(cat st.txt)"
grep -q '^geometry   ring 4.0 MiB' st.txt || fail "stat table: $(cat st.txt)"
$BOUNDED "$SHMQ" sync q
expect_status 0 $? "shmq sync"

# Missing queues and files that are not queues: status 1, one line.
for cmd in "get nope" "put nope" "stat nope" "sync nope" "rm nope" "policy nope" "drop nope x"; do
	$BOUNDED "$SHMQ" $cmd 2>err </dev/null
	expect_status 1 $? "shmq $cmd"
	expect_one_line err "shmq $cmd"
done
head -c 100000 /dev/urandom >notaqueue
for cmd in get stat rm policy; do
	$BOUNDED "$SHMQ" $cmd notaqueue 2>err </dev/null
	expect_status 1 $? "shmq $cmd on a file that is not a queue"
	expect_one_line err "shmq $cmd on a file that is not a queue"
done
$BOUNDED "$SHMQ" drop notaqueue x 2>err </dev/null
expect_status 1 $? "shmq drop on a file that is not a queue"
expect_one_line err "shmq drop on a file that is not a queue"
[ -e notaqueue ] || fail "shmq rm removed a file that is not a queue"

# rm refuses while a live process is attached, unless --force.
# Not under timeout(1): it ends by our TERM (lib.sh, run_for, says why).
"$SHMQ" get q >/dev/null &
g=$!
track $g
wait_consumers q 1
$BOUNDED "$SHMQ" rm q 2>err
expect_status 8 $? "shmq rm with a live consumer"
expect_one_line err "shmq rm with a live consumer"
[ -e q ] || fail "rm removed a queue in use"
$BOUNDED "$SHMQ" rm q --force
expect_status 0 $? "shmq rm --force"
[ -e q ] && fail "rm --force left the queue"
kill -TERM $g
wait_pid $g "get after SIGTERM" 30
$BOUNDED "$SHMQ" rm o
expect_status 0 $? "shmq rm"
[ -e o ] && fail "rm left the queue"
exit 0
