/* SPDX-License-Identifier: MIT */
/*
 * Adversarial tests of producer sessions (issue 10 item 1; the rules in
 * docs/decisions.md, "Sessions: ends, reruns, late readers"): each
 * consumer gets each session's end exactly once, in order, and only for
 * sessions it saw.
 *
 * The producers here run one after another in this process or in fork()ed
 * children (the producer role is an OFD lock: a child's exit frees it as
 * a death would). Every wait is bounded (a recv timeout, or the child's
 * alarm()), so a defect fails the test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define WAIT_NS		(500 * 1000000LL)	/* a recv that must not block */

static char qpath[4096];

static void setup(void)
{
	h_setup();
	snprintf(qpath, sizeof(qpath), "%s", h_path("q"));
}

TestSuite(sessions_adv, .init = setup, .fini = h_teardown, .timeout = 60);

/*
 * Created in a child: shmq_create() passes a kill point, and a kill point
 * passed in this process would disarm the SHMQ_KILL_AT of its children.
 */
static void mkq(uint64_t cap, uint32_t max)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = max };
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(shmq_create(qpath, &cfg) == 0 ? 0 : 1);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "create failed");
}

static struct shmq *openq(void)
{
	struct shmq *q;
	int err = shmq_open(qpath, 0, NULL, &q);

	cr_assert_eq(err, 0, "open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return q;
}

static struct shmq_producer *prod(struct shmq *q)
{
	struct shmq_producer *p;
	int err = shmq_producer_open(q, NULL, &p);

	cr_assert_eq(err, 0, "producer open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return p;
}

static struct shmq_consumer *named(struct shmq *q, const char *name)
{
	struct shmq_consumer_opts o = { .name = name };
	struct shmq_consumer *c;
	int err = shmq_consumer_open(q, &o, &c);

	cr_assert_eq(err, 0, "consumer open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return c;
}

/*
 * Fill the ring to the last byte: messages of LEN bytes while they fit,
 * then smaller ones down to 0 bytes, so that not even an END record fits.
 * Returns the number of messages sent.
 */
static int fill(struct shmq_producer *p, size_t len)
{
	char buf[4096] = { 0 };
	int n = 0;

	for (;;) {
		int err = shmq_send(p, buf, len, SHMQ_NOWAIT);

		if (err == 0) {
			n++;
			continue;
		}
		cr_assert_eq(err, -EAGAIN, "send: %s", shmq_strerror(err));
		if (len == 0)
			return n;
		len = len > 8 ? len - 8 : 0;
	}
}

/*
 * DEFECT: a session's end is lost when its close found the ring full and
 * the next producer opened before the reader made room.
 *
 * write_end() never waits; the close that found no room leaves the END to
 * the next producer's open (end_previous), which does not wait either: on
 * a ring that is still full its END(1) is dropped for good (end_inc stays
 * behind, and the producer after it only writes END(2)). A reader that is
 * behind then reads session 1's data and, with no END record and the
 * header now describing session 2, never gets session 1's end: it waits
 * (here: times out), or, once session 2 sends, reads session 2's data as
 * if it were session 1's. `get` concatenates two runs; a named consumer
 * that was away does not "read each session and each end in order".
 *
 * Happens in the rerun loop of issue 10 with a reader slower than put:
 * put 1 ends on a full ring, put 2 starts at once.
 *
 * Suggested fix: the new producer keeps the debt (in the header, e.g.
 * "END of prev_inc owed", with its kind) and writes that END record
 * before its own first record, waiting for room as a send does; or a
 * reader that meets a data record of a newer incarnation than the
 * session it was reading, with no END in between, reports that session's
 * end first (kind from a header field the next open records).
 */
Test(sessions_adv, end_lost_when_next_producer_opens_on_full_ring)
{
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq *q;
	char buf[4096];
	struct shmq_msg m;
	ssize_t r;
	int n, got = 0;

	mkq(4096, 256);
	q = openq();
	c = named(q, "slow");	/* holds position 0 while away */
	shmq_consumer_close(c);

	p = prod(q);		/* session 1: fills the ring, no room for END */
	n = fill(p, 100);
	cr_assert_eq(shmq_producer_close(p), 0);
	p = prod(q);		/* session 2: opens on the full ring */

	c = named(q, "slow");
	for (;;) {
		r = shmq_recv(c, buf, sizeof(buf), &m, WAIT_NS);
		if (r < 0)
			break;
		got++;
	}
	cr_expect_eq(got, n, "read %d of session 1's %d messages", got, n);
	cr_expect_eq(r, SHMQ_EOF,
		     "after session 1's data: %zd (%s), expected SHMQ_EOF "
		     "(session 1's end was lost)", r, shmq_strerror((int)r));

	/* Session 2 sends: its data must not run into session 1's. */
	cr_assert_eq(shmq_send(p, "s2", 2, WAIT_NS), 0);
	r = shmq_recv(c, buf, sizeof(buf), &m, WAIT_NS);
	cr_expect_eq(r, 2, "then session 2's message: %zd (%s)", r,
		     shmq_strerror((int)r));
	cr_assert_eq(shmq_producer_close(p), 0);
	r = shmq_recv(c, buf, sizeof(buf), &m, WAIT_NS);
	cr_expect_eq(r, SHMQ_EOF, "then session 2's end: %zd", r);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * DEFECT: a group member misses a session's end when the next session
 * opened before the member looked at the producer's state.
 *
 * Members never read END records (the group shares one claim word;
 * docs/decisions.md: "a session's end reaches each member from the
 * producer's state"). The state says only how the *current* session
 * ended: once the next producer has opened, the end of the session
 * before is gone, although its END record is in the ring. A member that
 * is busy (or simply slower than the rerun) claims session 2's records
 * right after session 1's: `get --group g` (without --follow), which
 * stops at the first end, prints both runs; a `--follow` member never
 * reports session 1's end.
 *
 * Suggested fix: the claim path sees END records (it has to step over
 * them anyway): record in the group slot the last END the claim word
 * passed (incarnation and kind, or a small per-group end counter) and
 * have each member report every end it has not reported, before it
 * returns a record past it; or a member that claims a record of a newer
 * incarnation than its seen_inc reports that session's end first.
 */
Test(sessions_adv, member_misses_end_of_session_followed_by_another)
{
	/*
	 * A known limitation, documented in docs/decisions.md ("Sessions"):
	 * group members learn a session's end from the producer's state
	 * only. Kept, skipped, so that the day it is fixed the test is here.
	 */
	cr_skip_test("known limitation: group members and back-to-back sessions");
	struct shmq_consumer_opts o = { .kind = SHMQ_CONSUMER_GROUP, .name = "g" };
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq *q;
	char buf[64];
	ssize_t r[6];

	mkq(65536, 256);
	q = openq();
	cr_assert_eq(shmq_consumer_open(q, &o, &c), 0);
	for (int s = 1; s <= 2; s++) {
		p = prod(q);
		cr_assert_eq(shmq_send(p, "a", 1, WAIT_NS), 0);
		cr_assert_eq(shmq_send(p, "b", 1, WAIT_NS), 0);
		cr_assert_eq(shmq_producer_close(p), 0);
	}
	for (int i = 0; i < 6; i++)
		r[i] = shmq_recv(c, buf, sizeof(buf), NULL, WAIT_NS);
	cr_expect(r[0] == 1 && r[1] == 1 && r[2] == SHMQ_EOF &&
		  r[3] == 1 && r[4] == 1 && r[5] == SHMQ_EOF,
		  "member got %zd %zd %zd %zd %zd %zd; expected 1 1 EOF(%d) 1 1 EOF",
		  r[0], r[1], r[2], r[3], r[4], r[5], SHMQ_EOF);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * The same with a broadcast consumer (reads END records): holds.
 */
Test(sessions_adv, broadcast_gets_both_ends_of_back_to_back_sessions)
{
	struct shmq_consumer *c;
	struct shmq_producer *p;
	struct shmq *q;
	char buf[64];
	ssize_t r[6];

	mkq(65536, 256);
	q = openq();
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), 0);
	for (int s = 1; s <= 2; s++) {
		p = prod(q);
		cr_assert_eq(shmq_send(p, "a", 1, WAIT_NS), 0);
		cr_assert_eq(shmq_send(p, "b", 1, WAIT_NS), 0);
		cr_assert_eq(shmq_producer_close(p), 0);
	}
	for (int i = 0; i < 6; i++)
		r[i] = shmq_recv(c, buf, sizeof(buf), NULL, WAIT_NS);
	cr_expect(r[0] == 1 && r[1] == 1 && r[2] == SHMQ_EOF &&
		  r[3] == 1 && r[4] == 1 && r[5] == SHMQ_EOF,
		  "consumer got %zd %zd %zd %zd %zd %zd", r[0], r[1], r[2],
		  r[3], r[4], r[5]);
	shmq_consumer_close(c);
	shmq_close(q);
}

/* ---- producers SIGKILLed at kill points (the kill-point library copy) -- */

/*
 * A child producer: SHMQ_KILL_AT=POINT (NULL: none), open, send N
 * one-byte messages, then close (how 0) or abort (how 1). Exit 0 when it
 * finished, else 128 + signal. The parent never opens a producer in these
 * tests: a kill point passed in the parent would disarm its children's.
 */
static int run_producer(const char *point, int n, int how)
{
	pid_t parent = getpid(), pid;
	int st;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq_producer *p;
		struct shmq *q;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		alarm(20);
		if (point)
			setenv("SHMQ_KILL_AT", point, 1);
		else
			unsetenv("SHMQ_KILL_AT");
		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(10);
		for (int i = 0; i < n; i++)
			if (shmq_send(p, "m", 1, 2000000000LL) < 0)
				_exit(11);
		if ((how ? shmq_producer_abort(p) : shmq_producer_close(p)) < 0)
			_exit(12);
		shmq_close(q);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool is_end(ssize_t r)
{
	return r == SHMQ_EOF || r == SHMQ_EDIED || r == SHMQ_EABORTED;
}

/*
 * What C reads until it has seen NENDS ends (or a timeout/error): data as
 * 'd', an end as 'E', anything else as '?'. Written to OUT.
 */
static void read_ends(struct shmq_consumer *c, int nends, char *out, size_t cap)
{
	char buf[64];
	size_t k = 0;

	while (nends > 0 && k + 1 < cap) {
		ssize_t r = shmq_recv(c, buf, sizeof(buf), NULL, 2000000000LL);

		if (r >= 0) {
			out[k++] = 'd';
		} else if (is_end(r)) {
			out[k++] = 'E';
			nends--;
		} else {
			out[k++] = '?';
			break;
		}
	}
	out[k] = '\0';
}

/* "ddd" when N is 3. */
static const char *ds(int n)
{
	static char b[4][64];
	static int i;
	char *s = b[i++ & 3];

	memset(s, 'd', (size_t)n);
	s[n] = '\0';
	return s;
}

/*
 * DEFECT (same family as end_lost_when_next_producer_opens_on_full_ring):
 * a producer that dies in its open after it stored its new incarnation
 * and before it published the END record of the session before ours
 * (end_previous) drops that END for good: the next producer only writes
 * the END of the session that died in its open. A named consumer that
 * was away then reads session 1's data and no end of session 1.
 *
 * Session 1 sends 3 messages and dies (killed at its 4th publish, the
 * close's END); session 2 is killed at its first publish (its END(1),
 * published from its open); session 3 sends one message and closes.
 * The away reader must read: ddd E (1 died) E (2 died) d E (3 closed).
 *
 * Suggested fix: as for the full ring, keep "END of inc N owed" in the
 * header until an END record for N is published; the next open writes
 * every END still owed, not only its predecessor's.
 */
Test(sessions_adv, end_lost_when_next_producer_dies_in_open)
{
	struct shmq_consumer *c;
	struct shmq *q;
	char got[64];
	int st;

	mkq(65536, 256);
	q = openq();
	c = named(q, "away");
	shmq_consumer_close(c);
	st = run_producer("publish:before:4", 3, 0);
	cr_assert_eq(st, 128 + SIGKILL, "session 1: status %d", st);
	st = run_producer("publish:before:1", 0, 0);
	cr_assert_eq(st, 128 + SIGKILL, "session 2: status %d", st);
	cr_assert_eq(run_producer(NULL, 1, 0), 0);
	c = named(q, "away");
	read_ends(c, 3, got, sizeof(got));
	cr_expect_str_eq(got, "dddEEdE", "the away reader read %s", got);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * Every kill point of session 1 (3 sends, then close or abort), then a
 * clean session 2 (one message): a broadcast reader attached all along
 * reads what session 1 published, its end once, session 2's message and
 * its end; a named reader that was away reads the same; a reader that
 * attached (at the latest position) after session 1 ended gets nothing
 * of session 1 (not the died END the next open writes for it).
 */
Test(sessions_adv, kill_points_of_a_session_then_the_next)
{
	static const char *const pts[] = { "publish:before", "publish:after",
					   "commit:before-seal",
					   "send:after-payload" };
	const struct shmq_consumer_opts latest = { .start = SHMQ_START_LATEST };
	char pt[64], got[64], want[64];
	int kills = 0;

	for (unsigned i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
		for (int nth = 1; nth <= 5; nth++) {
			for (int how = 0; how < 2; how++) {
				struct shmq_consumer *live, *late, *away;
				struct shmq *q;
				int st, sent;

				unlink(qpath);
				mkq(65536, 256);
				q = openq();
				away = named(q, "away");
				shmq_consumer_close(away);
				cr_assert_eq(shmq_consumer_open(q, NULL, &live), 0);
				snprintf(pt, sizeof(pt), "%s:%d", pts[i], nth);
				st = run_producer(pt, 3, how);
				cr_assert(st == 0 || st == 128 + SIGKILL);
				kills += st != 0;
				read_ends(live, 1, got, sizeof(got));
				sent = (int)strlen(got) - 1;
				cr_expect(sent >= 0 && sent <= 3 && got[sent] == 'E',
					  "%s %s: live read %s", pt,
					  how ? "abort" : "close", got);
				/* LATEST: "away" holds session 1 for OLDEST. */
				cr_assert_eq(shmq_consumer_open(q, &latest, &late), 0);
				cr_assert_eq(run_producer(NULL, 1, 0), 0);
				read_ends(live, 1, got, sizeof(got));
				cr_expect_str_eq(got, "dE", "%s %s: live, session 2: %s",
						 pt, how ? "abort" : "close", got);
				read_ends(late, 1, got, sizeof(got));
				cr_expect_str_eq(got, "dE", "%s %s: late reader: %s",
						 pt, how ? "abort" : "close", got);
				away = named(q, "away");
				read_ends(away, 2, got, sizeof(got));
				snprintf(want, sizeof(want), "%sEdE", ds(sent));
				cr_expect_str_eq(got, want, "%s %s: away reader: %s",
						 pt, how ? "abort" : "close", got);
				shmq_consumer_close(away);
				shmq_consumer_close(late);
				shmq_consumer_close(live);
				shmq_close(q);
			}
		}
	}
	cr_expect_gt(kills, 20, "only %d producers were killed", kills);
}

/* A child producer that sends 60 messages of 60000 bytes and dies. */
static int run_producer_big(void)
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		static char big[60000];
		struct shmq_producer *p;
		struct shmq *q;

		alarm(20);
		unsetenv("SHMQ_KILL_AT");
		if (shmq_open(qpath, 0, NULL, &q) < 0 ||
		    shmq_producer_open(q, NULL, &p) < 0)
			_exit(10);
		for (int i = 0; i < 60; i++)
			if (shmq_send(p, big, sizeof(big), SHMQ_NOWAIT) < 0)
				_exit(11);
		_exit(0);	/* no close: the session dies */
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int reap_child(pid_t pid)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- a reader attaching while the next producer opens ------------------ */

static void spin_ns(uint64_t ns)
{
	uint64_t t = h_now_ns() + ns;

	while (h_now_ns() < t)
		;
}

/*
 * DEFECT: a reader that attaches after a producer died, while the next
 * producer is inside shmq_producer_open(), gets SHMQ_EDIED for the dead
 * session, which ended before it came (docs/decisions.md: "the END record
 * a new producer writes for a session that died before the consumer came
 * is skipped"). `get` then exits 3 with no output, the FIFO rerun's
 * failure again, for a reader that starts as a killed run is replaced.
 *
 * Why: the new producer holds the producer lock from the start of its
 * open, through recovery and the open's msync of the whole ring (ms on a
 * disk file), while prod_state still says OPEN for the dead session (it
 * stores NONE only after the sync). The attaching reader's
 * producer_gone() sees OPEN with the lock held, takes the dead session
 * for a live one (seen_inc = its incarnation), and so takes the END(died)
 * record the open then writes as its own. A second, narrower window:
 * attach_w is read after the start position, so an END published in
 * between counts as "already in the ring when the consumer attached".
 *
 * Suggested fix: the new producer stores a state that is not OPEN (NONE,
 * or a new "opening") as soon as it holds the lock, before recovery and
 * sync; a reader that sees OPEN with the lock held credits the session as
 * seen only if the incarnation and state are unchanged when it looks
 * again after the lock probe (or only once it reads one of its records);
 * and read attach_inc/attach_w before the start position is computed.
 *
 * The dead producer leaves 3.5 MiB of dirty pages so that the next open's
 * msync is long on a disk file; on tmpfs the window is narrower and the
 * loop runs longer (bounded by LOOP_NS).
 */
#define LOOP_NS	(15ull * 1000000000u)
Test(sessions_adv, reader_attaching_during_next_open_gets_dead_sessions_end,
     .timeout = 90)
{
	const struct shmq_consumer_opts latest = { .start = SHMQ_START_LATEST };
	uint64_t t0 = h_now_ns();
	struct shmq *q;
	char buf[64];
	int bad = 0, it;

	mkq(4u << 20, 65536);
	q = openq();
	for (it = 0; bad == 0 && h_now_ns() - t0 < LOOP_NS && it < 3000; it++) {
		uint64_t delay = (uint64_t)(rand() % 3000) * 1000u;
		struct shmq_consumer *c;
		pid_t next;
		int fd[2];
		ssize_t r;

		/* A producer that dies with dirty pages and no END. */
		cr_assert_eq(run_producer_big(), 0);
		cr_assert_eq(pipe(fd), 0);
		fflush(NULL);
		next = fork();
		cr_assert_geq(next, 0);
		if (next == 0) {
			struct shmq_producer *p;
			struct shmq *q2;
			char ch;

			alarm(20);
			if (read(fd[0], &ch, 1) != 1)
				_exit(9);
			spin_ns(delay);
			if (shmq_open(qpath, 0, NULL, &q2) < 0 ||
			    shmq_producer_open(q2, NULL, &p) < 0 ||
			    shmq_send(p, "x", 1, SHMQ_FOREVER) < 0 ||
			    shmq_producer_close(p) < 0)
				_exit(10);
			_exit(0);
		}
		cr_assert_eq(write(fd[1], "g", 1), 1);
		spin_ns(1500000);
		/* Attached after the death: the dead session is not ours. */
		cr_assert_eq(shmq_consumer_open(q, &latest, &c), 0);
		r = shmq_recv(c, buf, sizeof(buf), NULL, 200000000LL);
		if (r == SHMQ_EDIED)
			bad++;
		shmq_consumer_close(c);
		cr_assert_eq(reap_child(next), 0);
		close(fd[0]);
		close(fd[1]);
	}
	cr_expect_eq(bad, 0, "iteration %d: a reader that attached after the "
		     "producer died got SHMQ_EDIED for its session", it);
	shmq_close(q);
}

/* ---- hostile END records ----------------------------------------------- */

#include "internal.h"	/* shmqi_rec_crc, struct shmq_rec, SHMQ_REC_HDR */

/*
 * Scribble the END record at ring position POS of the file: its kind and
 * incarnation, and, when FIX_CRC, a checksum recomputed with the file's
 * salt (a hostile writer that knows the format).
 */
static void scribble_end(uint64_t pos, uint32_t kind, uint32_t inc, bool fix_crc)
{
	struct shmq_hdr h;
	struct shmq_rec r;
	struct shmq_end e = { .kind = kind, .inc = inc };
	off_t off;

	cr_assert_eq(h_peek_file(qpath, 0, &h, sizeof(h)), 0);
	off = (off_t)(h.data_off + (pos & (h.capacity - 1)));
	cr_assert_eq(h_peek_file(qpath, off, &r, sizeof(r)), 0);
	cr_assert_eq(r.type & SHMQ_REC_TYPE_MASK, SHMQ_REC_END, "no END at %llu",
		     (unsigned long long)pos);
	if (fix_crc) {
		r.crc = 0;
		r.crc = shmqi_rec_crc(h.salt, &r, &e, sizeof(e));
	}
	cr_assert_eq(h_poke(qpath, off, &r, sizeof(r)), 0);
	cr_assert_eq(h_poke(qpath, off + (off_t)sizeof(r), &e, sizeof(e)), 0);
}

/*
 * Held up: an END record with a scribbled kind or incarnation (huge,
 * half the space ahead, the current one, zero), with or without a
 * recomputed checksum, gives a clean error (-EBADMSG) or an end, never a
 * crash, a hang or garbage; the next producer recovers and its session
 * is read whole, with its end.
 */
Test(sessions_adv, scribbled_end_records)
{
	static const struct { uint32_t kind, inc; } cases[] = {
		{ 0, 1 }, { 99, 1 }, { SHMQ_END_CLOSED, 0xffffffffu },
		{ SHMQ_END_CLOSED, 0x80000001u }, { SHMQ_END_DIED, 2 },
		{ SHMQ_END_ABORTED, 0 }, { 0xffffffffu, 0x7fffffffu },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int fix = 0; fix < 2; fix++) {
			struct shmq_consumer *c;
			struct shmq *q;
			char buf[64], seq[64];
			size_t k = 0;
			ssize_t r;
			int st;

			unlink(qpath);
			mkq(65536, 256);
			q = openq();
			c = named(q, "r");
			shmq_consumer_close(c);
			cr_assert_eq(run_producer(NULL, 1, 0), 0);
			/* "m": a 40-byte record at 0, the END at 40. */
			scribble_end(40, cases[i].kind, cases[i].inc, fix);
			c = named(q, "r");
			for (int n = 0; n < 4 && k + 1 < sizeof(seq); n++) {
				r = shmq_recv(c, buf, sizeof(buf), NULL, 300000000LL);
				seq[k++] = r >= 0 ? 'd' : is_end(r) ? 'E' :
					   r == -EBADMSG ? 'B' :
					   r == -ETIMEDOUT ? 'T' : '?';
				if (r < 0 && !is_end(r))
					break;
			}
			seq[k] = '\0';
			cr_expect(seq[0] == 'd' && !strchr(seq, '?'),
				  "case %u crc %d: read %s", i, fix, seq);
			shmq_consumer_close(c);
			/* The next producer recovers; its session is read whole. */
			st = run_producer(NULL, 1, 0);
			cr_expect_eq(st, 0, "case %u crc %d: next producer: %d", i, fix, st);
			c = named(q, "r");
			k = 0;
			for (int n = 0; n < 6 && k + 1 < sizeof(seq); n++) {
				r = shmq_recv(c, buf, sizeof(buf), NULL, 300000000LL);
				seq[k++] = r >= 0 ? 'd' : is_end(r) ? 'E' :
					   r == -EBADMSG ? 'B' :
					   r == -ETIMEDOUT ? 'T' : '?';
				if (r < 0 && !is_end(r))
					break;
			}
			seq[k] = '\0';
			cr_expect(strstr(seq, "dE") != NULL && !strchr(seq, '?'),
				  "case %u crc %d: after the next session: %s",
				  i, fix, seq);
			shmq_consumer_close(c);
			shmq_close(q);
		}
	}
}

/* ---- durable readers across sessions ----------------------------------- */

/*
 * DEFECT (a regression of the sessions): a durable reader that attaches
 * after a producer with sync mode "none" (put's default) closed waits for
 * ever, although docs/tools.md says "a durable reader of a closed queue
 * syncs the rest itself". `put q; get q --durable` hangs: the issue's
 * producer-first rerun with --durable; and a named --durable reader away
 * for sessions never gets the last one.
 *
 * Why: wait_data() syncs for a durable reader only on its way to
 * report an end (check_end), and only when end_owed(): the reader must
 * have seen the session, i.e. read one of its records, which it cannot
 * while they are not durable, nor reach its END record, which is not
 * durable either. Nothing else will ever sync (the producer is gone).
 *
 * Suggested fix: the "sync the rest" decision must not depend on whose
 * end it is: whenever the producer is gone (closed, aborted or died) and
 * something between the reader's position and write_pos is not durable,
 * sync once, then look again (the records, or the END record, decide).
 */
Test(sessions_adv, durable_reader_after_close_hangs)
{
	const struct shmq_consumer_opts dur = { .flags = SHMQ_CONSUMER_DURABLE };
	struct shmq_consumer *c;
	struct shmq *q;
	char buf[64];
	ssize_t r1, r2;

	mkq(65536, 256);
	q = openq();
	cr_assert_eq(run_producer(NULL, 1, 0), 0);	/* sync mode none */
	cr_assert_eq(shmq_consumer_open(q, &dur, &c), 0);
	r1 = shmq_recv(c, buf, sizeof(buf), NULL, 1000000000LL);
	r2 = shmq_recv(c, buf, sizeof(buf), NULL, 1000000000LL);
	cr_expect(r1 == 1 && r2 == SHMQ_EOF,
		  "durable reader after the close: %zd (%s), then %zd; "
		  "expected the message, then SHMQ_EOF", r1,
		  shmq_strerror((int)r1), r2);
	shmq_consumer_close(c);
	shmq_close(q);
}

/*
 * DEFECT (deterministic; the wider form of the race above): a producer
 * dies; a reader reads its data and its end (SHMQ_EDIED, from the state);
 * a new producer opens (writing the END record of the dead session) and
 * has not sent yet; a reader that attaches now gets SHMQ_EDIED at once,
 * for a session that ended, and was read, before it came. `get` exits 3
 * with no output and the new run's data waits for the next reader: the
 * issue 10 rerun shifts by one run for good.
 *
 * Why: the END(died) record lies at the floor (the first reader learned
 * the end from the state and never read a record there: there was none
 * yet), below the new reader's attach_w, and read_end_record() delivers
 * any END "already in the ring when the consumer attached".
 *
 * Suggested fix: that rule is for an END its own session wrote (rec.inc
 * == end.inc: closed or aborted, an empty session's end); an END a later
 * producer wrote for a died session (rec.inc != end.inc) goes only to a
 * reader that saw that session (read one of its records, or saw it live);
 * for a named reader that was away, keep seen/ended incarnations in its
 * slot so that it still gets the ends it owns.
 */
Test(sessions_adv, reader_after_read_dead_session_gets_its_end)
{
	struct shmq_consumer *first, *late;
	struct shmq *q;
	char buf[64], ch;
	int go[2], ready[2];
	ssize_t r;
	pid_t pid;

	mkq(65536, 256);
	q = openq();
	cr_assert_eq(shmq_consumer_open(q, NULL, &first), 0);
	cr_assert_eq(run_producer("publish:before:2", 5, 0), 128 + SIGKILL);
	read_ends(first, 1, buf, sizeof(buf));
	cr_assert_str_eq(buf, "dE", "first reader: %s", buf);
	shmq_consumer_close(first);	/* the dead session was read */

	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct shmq_producer *p;
		struct shmq *q2;

		alarm(20);
		if (shmq_open(qpath, 0, NULL, &q2) < 0 ||
		    shmq_producer_open(q2, NULL, &p) < 0)
			_exit(10);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &ch, 1) != 1)
			_exit(11);
		if (shmq_send(p, "x", 1, SHMQ_FOREVER) < 0 ||
		    shmq_producer_close(p) < 0)
			_exit(12);
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &ch, 1), 1);	/* session 2 is open */
	cr_assert_eq(shmq_consumer_open(q, NULL, &late), 0);
	r = shmq_recv(late, buf, sizeof(buf), NULL, 300000000LL);
	cr_expect_eq(r, -ETIMEDOUT, "a reader that came after the dead session "
		     "was read got %zd (%s); expected to wait for session 2",
		     r, shmq_strerror((int)r));
	cr_assert_eq(write(go[1], "g", 1), 1);
	read_ends(late, 1, buf, sizeof(buf));
	cr_expect_str_eq(buf, "dE", "then: %s", buf);
	cr_assert_eq(reap_child(pid), 0);
	shmq_consumer_close(late);
	shmq_close(q);
}
