#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 17 #8, what the build promises a program linked against libshmq:
# the soname, exported symbols (shmq_* only, versioned), and a shmq.pc
# whose --cflags carry no dependency's include path (shmq.h includes only
# libc headers), so that a program builds with it and nothing else.
# Usage: test_abi.sh SHMQ PRODUCER CONSUMER LIBSHMQ_SO SHMQ_PC INCLUDE_DIR
libso=$(realpath "$4")
pc=$(realpath "$5")
incdir=$(realpath "$6")
. "$(dirname "$0")/lib.sh"

soname=$(readelf -d "$libso" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libshmq.so.1 ] || fail "soname '$soname', want libshmq.so.1"

# Every dynamic symbol the library defines is shmq_*, in a SHMQ_ node
# (the node's own name is an absolute symbol too).
bad=$(objdump -T "$libso" | awk '$2 == "g" && $4 != "*UND*" && $4 != "*ABS*" { print $6 " " $7 }' |
	grep -v '^SHMQ_[0-9.]* shmq_')
[ -z "$bad" ] || fail "exported outside shmq_*/SHMQ_: $bad"
syms=$(objdump -T "$libso")
for s in shmq_open shmq_recv shmq_info shmq_release_n shmq_recv_until; do
	grep -q "SHMQ_1 *$s\$" <<<"$syms" || fail "$s not exported as SHMQ_1"
done
for s in shmq_consumer_fd shmq_producer_fd; do
	grep -q "SHMQ_1.2 *$s\$" <<<"$syms" || fail "$s not exported as SHMQ_1.2"
done
for s in shmq_producer_mark shmq_producer_last_mark shmq_producer_end shmq_consumer_last_end; do
	grep -q "SHMQ_1.3 *$s\$" <<<"$syms" || fail "$s not exported as SHMQ_1.3"
done

# The .pc: no Requires (liburcu is private to the library), and --cflags
# only our include directory.
grep -q '^Requires' "$pc" && fail "$pc has a Requires line: $(grep '^Requires' "$pc")"
cflags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags shmq) ||
	fail "pkg-config cannot read $pc"
cflags=$(echo $cflags)		# no trailing blank
prefix=$(sed -n 's/^prefix=//p' "$pc")
want=$(sed -n 's/^includedir=//p' "$pc" | sed "s|\${prefix}|$prefix|")
[ "$cflags" = "-I$want" ] || fail "pkg-config --cflags shmq: '$cflags', want '-I$want'"
case $cflags in *urcu*|*x86_64-linux-gnu*) fail "dependency flags in --cflags: $cflags" ;; esac

# shmq.h alone, with only its own directory: it needs no other package.
printf '#include <shmq.h>\nint main(void) { struct shmq_info i; return (int)sizeof(i) - 88; }\n' >t.c
${CC:-cc} -std=c11 -Wall -Werror -I"$incdir" -o t t.c "$libso" \
	-Wl,-rpath,"$(dirname "$libso")" || fail "a program with shmq.h alone does not build"
./t || fail "struct shmq_info is not 88 bytes (72 in 0.1, identity added for the NATS bridge)"
note "soname $soname, symbols SHMQ_1, --cflags '$cflags'"
exit 0
