#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 17 #7: every call libshmq.so exports has a section-3 page after
# `meson install`, `man NAME` finds it there, and it renders without a
# groff warning; shmq(3) names every SHMQ_E* code of shmq.h.
# The man pages are installed into a private DESTDIR with the build's own
# `meson install --tags man`.
# Usage: test_man3.sh SHMQ PRODUCER CONSUMER LIBSHMQ_SO BUILD_ROOT HEADER MESON
libso=$(realpath "$4")
build=$(realpath "$5")
header=$(realpath "$6")
meson=$7
. "$(dirname "$0")/lib.sh"

DESTDIR="$T/inst" $BOUNDED "$meson" install -C "$build" --no-rebuild \
	--tags man >install.log 2>&1 || { cat install.log >&2; fail "meson install --tags man"; }
man3=$(find "$T/inst" -type d -name man3)
[ -n "$man3" ] && [ "$(echo "$man3" | wc -l)" -eq 1 ] ||
	fail "meson install put no single man3 directory under DESTDIR: '$man3'"
mandir=$(dirname "$man3")

# The calls the library exports (nm -D: "addr T shmq_x@@SHMQ_1").
syms=$(nm -D --defined-only "$libso" | awk '$2 == "T" && $3 ~ /^shmq_/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
[ -n "$syms" ] || fail "nm -D found no shmq_* call in $libso"
n=0
for s in $syms; do
	n=$((n + 1))
	page="$man3/$s.3"
	[ -f "$page" ] || fail "$s is exported but has no installed page ($page)"
	if head -n 1 "$page" | grep -q '^\.so '; then
		target="$mandir/$(sed -n '1s/^\.so //p' "$page")"
		[ -f "$target" ] || fail "$page: .so to missing $target"
	fi
done

# Every page is a call the library exports, or shmq(3).
for page in "$man3"/*.3; do
	b=$(basename "$page" .3)
	[ "$b" = shmq ] && continue
	grep -qx "$b" <<<"$syms" || fail "page $b.3 for a call libshmq.so does not export"
done
[ -f "$man3/shmq.3" ] || fail "no shmq(3) overview page"

# shmq(3) lists every status code of the header.
for code in $(sed -n 's/^#define \(SHMQ_E[A-Z]*\)[ \t].*/\1/p' "$header"); do
	grep -q "$code" "$man3/shmq.3" || fail "shmq(3) does not name $code"
done

# man finds each page in the installed tree and renders it; groff warns
# about nothing (-ww: every warning).
if command -v man >/dev/null; then
	for s in $syms shmq; do
		sec=3
		where=$(MANPATH="$mandir" man -w "$sec" "$s" 2>&1) ||
			fail "man -w $sec $s: $where"
		case $where in "$mandir"/*) ;; *) fail "man -w $s found $where, not the installed page" ;; esac
		MANPATH="$mandir" MANWIDTH=80 MAN_KEEP_FORMATTING= \
			man --warnings=w -E UTF-8 "$sec" "$s" >out.txt 2>err.txt ||
			fail "man $sec $s failed: $(cat err.txt)"
		[ -s err.txt ] && fail "man $sec $s warns: $(cat err.txt)"
		grep -q '^NAME' out.txt && grep -q '^SYNOPSIS' out.txt ||
			fail "man $sec $s: no NAME or SYNOPSIS"
		if [ "$s" != shmq ]; then
			grep -q "$s(" out.txt || fail "man $sec $s: no prototype of $s in its page"
		fi
	done
	note "man renders $n calls' pages without a warning"
elif command -v groff >/dev/null; then
	for page in "$man3"/*.3; do
		(cd "$mandir" && groff -man -Tutf8 -ww -z "man3/$(basename "$page")") >err.txt 2>&1
		[ -s err.txt ] && fail "groff warns on $page: $(cat err.txt)"
	done
	note "no man(1): groff renders $n calls' pages without a warning"
else
	note "neither man nor groff: pages checked for presence only"
fi
exit 0
