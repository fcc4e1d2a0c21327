#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 10 item 5: sharing a queue between two real users in a group,
# from the command line. One user creates it --mode 0660 and gives it to
# the group; the other is refused without --any-owner (the hint names
# the option, not the C flag) and works with it, through every attaching
# command. Needs root to make the users (CI runs as root): skipped (77)
# otherwise, or when useradd or setpriv is missing. The users and the
# group are made once and kept, so that runs in parallel can share them.
. "$(dirname "$0")/lib.sh"

GROUP=shmqshare
U1=shmqshare1
U2=shmqshare2
OUTSIDER=shmqshare3

[ "$(id -u)" -eq 0 ] || { note "not root: skipped"; exit 77; }
for tool in useradd groupadd setpriv; do
	command -v $tool >/dev/null || { note "no $tool: skipped"; exit 77; }
done
# A concurrent run may make them first: check the result, not the status.
getent group $GROUP >/dev/null || groupadd -r $GROUP 2>/dev/null
getent group $GROUP >/dev/null || fail "cannot create group $GROUP"
for u in $U1 $U2; do
	id $u >/dev/null 2>&1 ||
		useradd -r -M -N -g $GROUP -s /usr/sbin/nologin $u 2>/dev/null
	id $u >/dev/null 2>&1 || fail "cannot create user $u"
done
id $OUTSIDER >/dev/null 2>&1 ||
	useradd -r -M -U -s /usr/sbin/nologin $OUTSIDER 2>/dev/null
id $OUTSIDER >/dev/null 2>&1 || fail "cannot create user $OUTSIDER"

# The users need the binaries and a directory they share: copies in the
# test directory, which is opened up for them (it is private otherwise).
chmod 0711 "$T"
mkdir bin share
cp "$SHMQ" "$PRODUCER" "$CONSUMER" bin/
chmod 0755 bin bin/*
chgrp $GROUP share
chmod 2770 share
as() {
	local user=$1
	shift
	setpriv --reuid=$user --regid="$(id -g $user)" --init-groups -- "$@"
}
SQ=$T/bin/shmq

# U1 creates the queue for the group.
as $U1 "$SQ" create share/q --mode 0660
expect_status 0 $? "$U1: create --mode 0660"
as $U1 chgrp $GROUP share/q || fail "$U1: chgrp"
[ "$(stat -c '%U %G %a' share/q)" = "$U1 $GROUP 660" ] ||
	fail "share/q: $(stat -c '%U %G %a' share/q)"

# U2, without --any-owner: refused, and told which option allows it.
echo x | as $U2 "$SQ" put share/q --lines 2>err
expect_status 1 $? "$U2: put without --any-owner"
expect_one_line err "$U2: put without --any-owner"
grep -q "is owned by uid $(id -u $U1), not by us (uid $(id -u $U2)); --any-owner accepts it if you trust that user" err ||
	fail "the hint: $(cat err)"
grep -q "SHMQ_OPEN_ANY_OWNER" err && fail "the hint names the C flag: $(cat err)"
for cmd in "get share/q --timeout 0" "sync share/q" "policy share/q --evict-after 5" \
	   "drop share/q nobody" "rm share/q"; do
	as $U2 "$SQ" $cmd 2>err </dev/null >/dev/null
	expect_status 1 $? "$U2: $cmd without --any-owner"
	grep -q -- "--any-owner accepts it" err || fail "$U2: $cmd: $(cat err)"
done
as $U2 "$T/bin/shmq-consumer" share/q --count 1 2>err >/dev/null
expect_status 1 $? "$U2: shmq-consumer without --any-owner"
grep -q -- "--any-owner accepts it" err || fail "shmq-consumer: $(cat err)"
[ -e share/q ] || fail "rm without --any-owner removed the queue"

# With --any-owner: U2 writes, U1 (the owner) and U2 read.
seq 1 1000 | as $U2 "$SQ" put share/q --any-owner --lines 2>err
expect_status 0 $? "$U2: put --any-owner: $(cat err)"
as $U2 "$SQ" get share/q --any-owner --lines >u2.out 2>err </dev/null
expect_status 0 $? "$U2: get --any-owner: $(cat err)"
cmp -s u2.out <(seq 1 1000) || fail "$U2 read other data"
seq 1 5 | as $U1 "$SQ" put share/q --lines
as $U1 "$SQ" get share/q --lines >u1.out </dev/null
cmp -s u1.out <(seq 1 5) || fail "$U1 read other data"

# The other attaching commands; a named consumer of U2's for drop (it
# waits for the next producer: the session was read).
as $U2 "$SQ" get share/q --any-owner --name u2 --timeout 0.2 </dev/null 2>/dev/null
[ $? -eq 4 ] || fail "$U2: get --any-owner --name u2"
as $U2 "$SQ" sync share/q --any-owner
expect_status 0 $? "$U2: sync --any-owner"
as $U2 "$SQ" policy share/q --evict-after 5 --any-owner
expect_status 0 $? "$U2: policy --any-owner"
as $U2 "$SQ" policy share/q | grep -q "evict after  5.000 s" ||
	fail "the policy did not change"
as $U2 "$SQ" stat share/q --any-owner >/dev/null
expect_status 0 $? "$U2: stat --any-owner"
as $U2 "$SQ" drop share/q u2 --any-owner
expect_status 0 $? "$U2: drop --any-owner"
as $U2 "$T/bin/shmq-consumer" share/q --any-owner --count 2 >recs </dev/null &
c=$!
track $c
as $U2 "$T/bin/shmq-producer" share/q --any-owner --count 2 --interval 0
expect_status 0 $? "$U2: shmq-producer --any-owner"
wait_pid $c "$U2: shmq-consumer --any-owner"
expect_status 0 $WAITED_STATUS "$U2: shmq-consumer --any-owner"
[ "$(wc -l <recs)" -eq 2 ] || fail "shmq-consumer: $(cat recs)"

# Someone outside the group: --any-owner does not open the file mode.
echo x | as $OUTSIDER "$SQ" put share/q --any-owner --lines 2>err
expect_status 1 $? "$OUTSIDER: put --any-owner"
grep -q -i "permission denied" err || fail "$OUTSIDER: $(cat err)"

as $U2 "$SQ" rm share/q --any-owner
expect_status 0 $? "$U2: rm --any-owner"
[ -e share/q ] && fail "rm --any-owner left the queue"
exit 0
