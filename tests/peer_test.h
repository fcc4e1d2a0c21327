/* SPDX-License-Identifier: MIT */
/*
 * Criterion-side helpers shared by the cross-process suites: spawn a peer
 * (failing the test if that fails) and wait for one of its lines. The
 * includer defines WATCHDOG_S (seconds any peer may live) and LINE (line
 * buffer size). Kept apart from harness.h, which xproc_peer links without
 * criterion.
 */
#ifndef SHMQ_PEER_TEST_H
#define SHMQ_PEER_TEST_H

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static void spawn(struct h_peer *p, const char *const *argv)
{
	int err = h_spawn(p, WATCHDOG_S, argv);

	cr_assert_eq(err, 0, "spawn: %s", strerror(-err));
}

/* Wait for the line starting with PREFIX; fail the test if it never comes. */
static void expect_line(struct h_peer *p, const char *prefix, char *line,
			int timeout_ms)
{
	int r;

	line[0] = '\0';
	r = h_expect(p, prefix, line, LINE, timeout_ms);
	cr_assert_geq(r, 0, "peer %d: no \"%s\" line within %d ms (%s); "
		      "last line \"%s\"", (int)p->pid, prefix, timeout_ms,
		      r == -ETIMEDOUT ? "timed out" : "its output ended",
		      line);
}

/* V in decimal, for a peer's argv. */
static const char *num(char *buf, uint64_t v)
{
	sprintf(buf, "%" PRIu64, v);
	return buf;
}

#endif /* SHMQ_PEER_TEST_H */
