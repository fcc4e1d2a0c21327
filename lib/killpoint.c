/* SPDX-License-Identifier: MIT */
/*
 * White-box kill points for the crash tests (meson -Dkill_points=true, or
 * the tests' own copy of the library). SHMQ_KILL_AT=NAME[:NTH] makes the
 * NTH (default: first) pass through KILL_POINT(NAME) raise SIGKILL, so a
 * test can stop a process at an exact step of send, commit, sync, recovery
 * or the group protocol and check what the next process finds.
 * SHMQ_STOP_AT=NAME[:NTH] raises SIGSTOP there instead: the test lets the
 * others run into the window, then sends SIGCONT (and may have the same
 * process killed at a later point with SHMQ_KILL_AT). shmqi_kill_hook,
 * when a test sets it, is called at every kill point first: the power-loss
 * simulator (tests/test_powerloss.c) snapshots the file's pages there and
 * builds crash images between two stores of a send, publish or recovery.
 */
#include "internal.h"

#ifdef SHMQ_KILL_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kill_spec {
	const char *env;
	int sig;
	char name[64];
	unsigned long nth;
	unsigned long seen;
	int state;	/* 0 unread, 1 armed, 2 disarmed */
	pid_t pid;	/* read in this process: a forked child reads again */
};

/* Test-only; declared here, not in internal.h: only these builds have it. */
extern void (*shmqi_kill_hook)(const char *name);
void (*shmqi_kill_hook)(const char *name);

static struct kill_spec specs[] = {
	{ .env = "SHMQ_KILL_AT", .sig = SIGKILL },
	{ .env = "SHMQ_STOP_AT", .sig = SIGSTOP },
};

static void kill_init(struct kill_spec *k)
{
	const char *env = getenv(k->env);
	const char *colon;
	size_t n;

	k->state = 2;
	k->pid = getpid();
	k->seen = 0;
	if (!env || !*env)
		return;
	/* Names contain colons ("send:after-payload"): NTH follows the last. */
	colon = strrchr(env, ':');
	if (colon && (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)))
		colon = NULL;
	n = colon ? (size_t)(colon - env) : strlen(env);
	if (n >= sizeof(k->name))
		return;
	memcpy(k->name, env, n);
	k->name[n] = '\0';
	k->nth = colon ? strtoul(colon + 1, NULL, 10) : 1;
	if (k->nth == 0)
		k->nth = 1;
	k->state = 1;
}

/*
 * Not thread-safe on purpose: the kill-point builds are test-only, and the
 * crash tests drive one thread per process.
 */
void shmqi_kill_point(const char *name)
{
	if (shmqi_kill_hook)
		shmqi_kill_hook(name);
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct kill_spec *k = &specs[i];

		if (k->state == 0 || k->pid != getpid())
			kill_init(k);
		if (k->state != 1 || strcmp(name, k->name) != 0)
			continue;
		if (++k->seen == k->nth)
			raise(k->sig);
	}
}
#else
/* Built without kill points: KILL_POINT() expands to nothing. */
typedef int shmqi_no_kill_points;
#endif
