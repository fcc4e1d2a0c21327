#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install, from Debian's archive, whatever the build and the tests need and
# this machine lacks. Sourced by demo.sh and test.sh.
set -euo pipefail

SHMQ_DEPS=(meson ninja-build pkg-config gcc libc6-dev liburcu-dev
	   libcriterion-dev scdoc gzip coreutils procps python3
	   clang libclang-rt-14-dev spin
	   nats-server libnats-dev python3-cffi python3-pytest libuv1-dev
	   python3-setuptools)

shmq_install_deps() {
	local missing=() p
	for p in "${SHMQ_DEPS[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	echo "installing: ${missing[*]}" >&2
	local sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
