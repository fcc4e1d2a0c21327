#!/bin/bash
# SPDX-License-Identifier: MIT
# The bash completion file: meson installs it under each tool's name into
# bash-completion's completions directory, and its functions complete
# commands, options, option values, queue files and, for drop, the names
# in the queue.
# Usage: test_completion.sh SHMQ PRODUCER CONSUMER COMPLETION BUILD_ROOT
. "$(dirname "$0")/lib.sh"
COMPLETION=$1
BUILD=$2

# Installed under each command's name (a staged install of the build).
if command -v meson >/dev/null; then
	$BOUNDED meson install -C "$BUILD" --no-rebuild --destdir "$T/stage" \
		>install.log 2>&1 || fail "meson install: $(tail -n 5 install.log)"
	for cmd in shmq shmq-producer shmq-consumer; do
		f=$(find stage -path "*/bash-completion/completions/$cmd")
		[ -n "$f" ] || fail "no completion installed as $cmd: $(find stage -path '*completion*')"
		cmp -s "$f" "$COMPLETION" || fail "$f differs from the source"
	done
else
	note "meson not found: the install is not checked"
fi

bash -n "$COMPLETION" || fail "syntax"
. "$COMPLETION"
complete -p shmq | grep -q -- '-F _shmq shmq$' || fail "complete -p shmq: $(complete -p shmq)"
complete -p shmq-consumer >/dev/null || fail "no completion for shmq-consumer"

# complete WORDS...: the last word is the one being completed.
complete_words() {
	local fn=_shmq
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	case $1 in shmq-*) fn=_shmq_producer ;; esac
	COMPREPLY=()
	$fn
	[ ${#COMPREPLY[@]} -eq 0 ] ||
		printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | tr '\n' ' '
}
expect() {	# WANT WORDS...
	local want=$1 got
	shift
	got=$(complete_words "$@")
	[ "$got" = "$want" ] || fail "completing '$*': [$got], expected [$want]"
}

expect "get " shmq g
expect "policy put " shmq p
expect "ls " shmq l
expect "bench " shmq b
expect "--seconds --size " shmq bench --s
expect "--consumers " shmq bench /dev/shm --c
expect "--when-full " shmq create q --when
expect "block overwrite " shmq create q --when-full ""
expect "batch " shmq put q --sync b
expect "--wait --when-full " shmq put q --w
expect "--prometheus " shmq stat q --pr
expect "--progress " shmq get q --pr
expect "--fd --follow --from " shmq get q --f
expect "oldest " shmq get q --from o
expect "--version " shmq-producer --v
expect "--group " shmq-consumer q --g

# Files for PATH, directories for ls.
touch queue.q
mkdir qdir
expect "qdir queue.q " shmq get q
expect "qdir " shmq ls q
expect "qdir " shmq bench q
expect "" shmq bench qdir q
expect "qdir " shmq bench --seconds 2 q
# No second PATH.
expect "" shmq get queue.q q
# drop: the queue's named consumers and groups.
seq 1 3 | "$SHMQ" put n.q --create -l
"$SHMQ" get n.q --name audit -l -n 1 >/dev/null
"$SHMQ" get n.q --group workers -l -n 1 >/dev/null
expect "audit " shmq drop n.q a
expect "audit workers " shmq drop n.q ""
exit 0
