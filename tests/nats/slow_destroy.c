/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD for test_bridge_adv.sh 'gc': natsMsg_Destroy() called from
 * any thread but the main one sleeps 50 ms first. That widens the window
 * in which nats.c's acknowledgement thread frees the last message after
 * the exporter's main thread went on to exit: with nats_Close() at exit
 * the garbage collector thread was joined before, the message landed on a
 * list the library then forgot, and LeakSanitizer failed the exporter.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <unistd.h>
#include <sys/syscall.h>

void natsMsg_Destroy(void *m);

void natsMsg_Destroy(void *m)
{
	static void (*real)(void *);

	if (!real)
		real = (void (*)(void *))dlsym(RTLD_NEXT, "natsMsg_Destroy");
	if (m && getpid() != (pid_t)syscall(SYS_gettid))
		usleep(50000);
	real(m);
}
