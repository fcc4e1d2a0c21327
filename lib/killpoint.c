/* SPDX-License-Identifier: MIT */
/*
 * White-box kill points for the crash tests (meson -Dkill_points=true, or
 * the tests' own copy of the library). SHMQ_KILL_AT=NAME[:NTH] makes the
 * NTH (default: first) pass through KILL_POINT(NAME) raise SIGKILL, so a
 * test can stop a process at an exact step of send, commit, sync or
 * recovery and check what the next process finds. shmqi_kill_hook, when a
 * test sets it, is called at every kill point first: the power-loss
 * simulator (tests/test_powerloss.c) snapshots the file's pages there and
 * builds crash images between two stores of a send, publish or recovery.
 */
#include "internal.h"

#ifdef SHMQ_KILL_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static char kill_name[64];
static unsigned long kill_nth;
static unsigned long kill_seen;
static int kill_state;	/* 0 unread, 1 armed, 2 disarmed */

/* Test-only; declared here, not in internal.h: only these builds have it. */
extern void (*shmqi_kill_hook)(const char *name);
void (*shmqi_kill_hook)(const char *name);

static void kill_init(void)
{
	const char *env = getenv("SHMQ_KILL_AT");
	const char *colon;
	size_t n;

	kill_state = 2;
	if (!env || !*env)
		return;
	/* Names contain colons ("send:after-payload"): NTH follows the last. */
	colon = strrchr(env, ':');
	if (colon && (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)))
		colon = NULL;
	n = colon ? (size_t)(colon - env) : strlen(env);
	if (n >= sizeof(kill_name))
		return;
	memcpy(kill_name, env, n);
	kill_name[n] = '\0';
	kill_nth = colon ? strtoul(colon + 1, NULL, 10) : 1;
	if (kill_nth == 0)
		kill_nth = 1;
	kill_state = 1;
}

/*
 * Not thread-safe on purpose: the kill-point builds are test-only, and the
 * crash tests drive one producer thread per process.
 */
void shmqi_kill_point(const char *name)
{
	if (shmqi_kill_hook)
		shmqi_kill_hook(name);
	if (kill_state == 0)
		kill_init();
	if (kill_state != 1 || strcmp(name, kill_name) != 0)
		return;
	if (++kill_seen == kill_nth)
		raise(SIGKILL);
}
#else
/* Built without kill points: KILL_POINT() expands to nothing. */
typedef int shmqi_no_kill_points;
#endif
