/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD hooks for tests/tools/test_security.sh: with
 * SHMQ_HOOK_TRUNCATE=PATH in the environment, every getrandom() first
 * truncates PATH to 0 bytes. shmq_create() calls getrandom() for the salt
 * after it allocated the file and before it writes the header, so this
 * cuts the file under a creator at its most fragile moment (issue 12).
 */
#include <stdlib.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	const char *path = getenv("SHMQ_HOOK_TRUNCATE");

	if (path && *path)
		(void)truncate(path, 0);
	return syscall(SYS_getrandom, buf, len, flags);
}
