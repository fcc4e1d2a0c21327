/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the roles and reports, one process: start positions, named
 * consumers, who may hold which role, shmq_stat_get(), shmq_strerror() and
 * shmq_sync(); the small behaviours of issue 17: shmq_info(), what
 * SHMQ_OPEN_CREATE reports, peek/recv/release and shmq_release_n().
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmq.h"
#include "harness.h"

#define SEED 0xa11ull

static struct shmq *mkq(const char *name, uint64_t cap, uint32_t slots)
{
	struct shmq_config cfg = { .capacity = cap, .max_message = 1024,
				   .slots = slots };
	struct shmq *q;
	int err;

	err = shmq_create(h_path(name), &cfg);
	cr_assert_eq(err, 0, "create: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	err = shmq_open(h_path(name), 0, NULL, &q);
	cr_assert_eq(err, 0, "open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return q;
}

static struct shmq_producer *prod(struct shmq *q)
{
	struct shmq_producer *p;
	int err = shmq_producer_open(q, NULL, &p);

	cr_assert_eq(err, 0, "producer_open: %s (%s)", shmq_strerror(err),
		     shmq_errdetail());
	return p;
}

static struct shmq_consumer *cons(struct shmq *q, const char *name,
				  uint32_t start)
{
	struct shmq_consumer_opts o = { .start = start, .name = name };
	struct shmq_consumer *c;
	int err = shmq_consumer_open(q, &o, &c);

	cr_assert_eq(err, 0, "consumer_open %s: %s (%s)", name ? name : "",
		     shmq_strerror(err), shmq_errdetail());
	return c;
}

static void send_n(struct shmq_producer *p, uint64_t first, uint64_t n)
{
	uint8_t b[64];

	for (uint64_t s = first; s < first + n; s++) {
		h_msg_fill(b, 20 + s % 40, SEED, s);
		int err = shmq_send(p, b, 20 + s % 40, SHMQ_NOWAIT);

		cr_assert_eq(err, 0, "send %llu: %s", (unsigned long long)s,
			     shmq_strerror(err));
	}
}

/* Receive one message and check it is SEQ, intact. */
static void expect_seq(struct shmq_consumer *c, uint64_t seq)
{
	uint8_t b[64], exp[64];
	struct shmq_msg m;
	ssize_t r = shmq_recv(c, b, sizeof(b), &m, SHMQ_NOWAIT);

	cr_assert_geq(r, 0, "recv, want seq %llu: %zd (%s)",
		      (unsigned long long)seq, r,
		      r < 0 ? shmq_strerror((int)r) : "");
	cr_assert_eq(m.seq, seq, "got seq %llu, want %llu",
		     (unsigned long long)m.seq, (unsigned long long)seq);
	cr_assert_eq((size_t)r, 20 + seq % 40);
	h_msg_fill(exp, (size_t)r, SEED, seq);
	cr_assert(memcmp(b, exp, (size_t)r) == 0, "payload of %llu differs",
		  (unsigned long long)seq);
}

static void expect_none(struct shmq_consumer *c)
{
	struct shmq_msg m;
	int err = shmq_peek(c, &m, SHMQ_NOWAIT);

	cr_assert_eq(err, -EAGAIN, "expected nothing, got %d (%s) seq %llu",
		     err, shmq_strerror(err),
		     err == 0 ? (unsigned long long)m.seq : 0ull);
}

TestSuite(consumer, .init = h_setup, .fini = h_teardown, .timeout = 10);

Test(consumer, starting_at_latest_sees_only_new_messages_and_oldest_sees_all,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer *old, *new;

	send_n(p, 0, 5);
	old = cons(q, NULL, SHMQ_START_OLDEST);
	new = cons(q, NULL, SHMQ_START_LATEST);
	expect_none(new);
	send_n(p, 5, 1);
	expect_seq(new, 5);
	expect_none(new);
	for (uint64_t s = 0; s < 6; s++)
		expect_seq(old, s);
	expect_none(old);
	shmq_consumer_close(old);
	shmq_consumer_close(new);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(consumer, starting_at_oldest_skips_what_an_attached_consumer_released,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer *a, *b;

	a = cons(q, NULL, SHMQ_START_OLDEST);
	send_n(p, 0, 5);
	for (uint64_t s = 0; s < 3; s++)
		expect_seq(a, s);
	b = cons(q, NULL, SHMQ_START_OLDEST);
	expect_seq(b, 3);
	expect_seq(b, 4);
	expect_none(b);
	shmq_consumer_close(a);
	shmq_consumer_close(b);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(consumer, named_resumes_after_the_last_message_it_released,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer *c;
	struct shmq_msg m;

	c = cons(q, "alpha", SHMQ_START_OLDEST);
	send_n(p, 0, 10);
	for (uint64_t s = 0; s < 3; s++)
		expect_seq(c, s);
	shmq_consumer_close(c);

	/* A named one resumes whatever start it asks for. */
	c = cons(q, "alpha", SHMQ_START_LATEST);
	expect_seq(c, 3);
	/* Peeked but not released: it comes back after a reopen. */
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), 0);
	cr_assert_eq(m.seq, 4);
	shmq_consumer_close(c);
	c = cons(q, "alpha", SHMQ_START_OLDEST);
	for (uint64_t s = 4; s < 10; s++)
		expect_seq(c, s);
	expect_none(c);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(consumer, named_keeps_its_messages_in_the_ring_while_it_is_away,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 4096, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer *c, *anon;
	uint8_t b[992] = { 0 };
	int n = 0, err;

	c = cons(q, "beta", SHMQ_START_OLDEST);
	shmq_consumer_close(c);
	/* An anonymous reader that keeps up does not free beta's data. */
	anon = cons(q, NULL, SHMQ_START_OLDEST);
	while ((err = shmq_send(p, b, 992, SHMQ_NOWAIT)) == 0) {
		cr_assert_eq(shmq_recv(anon, b, sizeof(b), NULL, SHMQ_NOWAIT),
			     992);
		cr_assert_lt(++n, 100, "the producer never blocked on beta");
	}
	cr_assert_eq(err, -EAGAIN, "send: %d (%s)", err, shmq_strerror(err));
	cr_assert_eq(n, 4, "a 4 KiB ring holds four 992-byte messages");
	c = cons(q, "beta", SHMQ_START_OLDEST);
	for (int s = 0; s < n; s++) {
		struct shmq_msg m;

		cr_assert_eq(shmq_recv(c, b, sizeof(b), &m, SHMQ_NOWAIT), 992);
		cr_assert_eq(m.seq, (uint64_t)s);
	}
	cr_assert_eq(shmq_send(p, b, 992, SHMQ_NOWAIT), 0);
	shmq_consumer_close(c);
	shmq_consumer_close(anon);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(consumer, refuses_a_second_live_consumer_with_the_same_name_with_ebusy,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0), *q2;
	struct shmq_consumer_opts o = { .name = "gamma" };
	struct shmq_consumer *c, *c2;
	int err;

	c = cons(q, "gamma", SHMQ_START_OLDEST);
	err = shmq_consumer_open(q, &o, &c2);
	cr_assert_eq(err, -EBUSY, "same handle: %d (%s)", err,
		     shmq_strerror(err));
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q2), 0);
	err = shmq_consumer_open(q2, &o, &c2);
	cr_assert_eq(err, -EBUSY, "second handle: %d (%s)", err,
		     shmq_strerror(err));
	shmq_consumer_close(c);
	err = shmq_consumer_open(q2, &o, &c2);
	cr_assert_eq(err, 0, "after the first closed: %d (%s)", err,
		     shmq_strerror(err));
	shmq_consumer_close(c2);
	shmq_close(q2);
	shmq_close(q);
}

Test(consumer, refuses_an_empty_or_too_long_name_with_einval, .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0);
	char name[SHMQ_NAME_MAX + 2];
	struct shmq_consumer_opts o = { .name = "" };
	struct shmq_consumer *c;

	cr_assert_eq(shmq_consumer_open(q, &o, &c), -EINVAL, "empty name");
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	o.name = name;
	cr_assert_eq(shmq_consumer_open(q, &o, &c), -EINVAL,
		     "%d-byte name", SHMQ_NAME_MAX + 1);
	name[SHMQ_NAME_MAX] = '\0';
	cr_assert_eq(shmq_consumer_open(q, &o, &c), 0,
		     "%d-byte name", SHMQ_NAME_MAX);
	shmq_consumer_close(c);
	shmq_close(q);
}

Test(consumer, refuses_with_enospc_when_every_slot_is_taken, .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 2);
	struct shmq_consumer *a, *b, *c;

	a = cons(q, NULL, SHMQ_START_OLDEST);
	b = cons(q, NULL, SHMQ_START_OLDEST);
	cr_assert_eq(shmq_consumer_open(q, NULL, &c), -ENOSPC);
	shmq_consumer_close(a);
	/* An anonymous consumer's slot is free again once it closes. */
	c = cons(q, NULL, SHMQ_START_OLDEST);
	shmq_consumer_close(b);
	shmq_consumer_close(c);
	shmq_close(q);
}

Test(consumer, removes_a_detached_named_consumer_but_not_a_live_one,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_consumer *c = cons(q, "delta", SHMQ_START_OLDEST);

	cr_assert_eq(shmq_consumer_remove(q, "delta"), -EBUSY);
	shmq_consumer_close(c);
	cr_assert_eq(shmq_consumer_remove(q, "delta"), 0);
	cr_assert_eq(shmq_consumer_remove(q, "delta"), -ENOENT);
	shmq_close(q);
}

TestSuite(producer, .init = h_setup, .fini = h_teardown, .timeout = 10);

static void expect_busy_with_pid(int err)
{
	char pid[32];

	cr_assert_eq(err, -EBUSY, "second producer: %d (%s)", err,
		     shmq_strerror(err));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	cr_assert(strstr(shmq_errdetail(), pid) != NULL,
		  "errdetail \"%s\" does not name pid %s", shmq_errdetail(),
		  pid);
}

Test(producer, refuses_a_second_producer_with_ebusy_naming_the_holder_pid,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0), *q2;
	struct shmq_producer *p = prod(q), *p2;

	expect_busy_with_pid(shmq_producer_open(q, NULL, &p2));
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q2), 0);
	expect_busy_with_pid(shmq_producer_open(q2, NULL, &p2));
	shmq_producer_close(p);
	shmq_close(q2);
	shmq_close(q);
}

Test(producer, continues_the_sequence_when_a_new_producer_takes_over,
     .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0), *q2;
	struct shmq_producer *p = prod(q), *p2;
	struct shmq_consumer *c = cons(q, NULL, SHMQ_START_OLDEST);

	send_n(p, 0, 3);
	cr_assert_eq(shmq_producer_close(p), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q2), 0);
	p2 = prod(q2);
	send_n(p2, 3, 2);
	/* The first session's end lies between them (sessions). */
	for (uint64_t s = 0; s < 3; s++)
		expect_seq(c, s);
	cr_assert_eq(shmq_recv(c, NULL, 0, NULL, SHMQ_NOWAIT), SHMQ_EOF);
	for (uint64_t s = 3; s < 5; s++)
		expect_seq(c, s);
	expect_none(c);
	shmq_producer_close(p2);
	shmq_consumer_close(c);
	shmq_close(q2);
	shmq_close(q);
}

Test(producer, closing_null_handles_is_a_no_op, .timeout = 10)
{
	shmq_close(NULL);
	shmq_consumer_close(NULL);
	cr_assert_eq(shmq_producer_close(NULL), 0);
}

TestSuite(stat, .init = h_setup, .fini = h_teardown, .timeout = 10);

static const struct shmq_consumer_stat *find(const struct shmq_stat *st,
					     const char *name)
{
	for (uint32_t i = 0; i < st->nconsumers; i++)
		if (!strcmp(st->consumers[i].name, name))
			return &st->consumers[i];
	return NULL;
}

Test(stat, reports_geometry_producer_state_and_every_consumer, .timeout = 10)
{
	struct shmq_config cfg = { .capacity = 50000, .max_message = 2000,
				   .slots = 8 };
	struct shmq_consumer *named, *anon;
	const struct shmq_consumer_stat *cs;
	struct shmq_producer *p;
	struct shmq_stat *st;
	struct shmq *q;
	struct stat sb;
	uint64_t bytes = 0;

	cr_assert_eq(shmq_create(h_path("q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("q"), 0, NULL, &q), 0);
	cr_assert_eq(stat(h_path("q"), &sb), 0);

	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->capacity, 65536, "capacity rounds up to 2^n: %llu",
		     (unsigned long long)st->capacity);
	cr_assert_eq(st->max_message, 2000);
	cr_assert_eq(st->slots, 8);
	cr_assert_eq(st->when_full, SHMQ_WHEN_FULL_BLOCK);
	cr_assert_neq(st->version, 0);
	cr_assert_eq(st->file_size, (uint64_t)sb.st_size);
	cr_assert_neq(st->created_ns, 0);
	cr_assert_eq(st->producer_state, SHMQ_PRODUCER_NONE);
	cr_assert_eq(st->nconsumers, 0);
	cr_assert_eq(st->next_seq, 0);
	cr_assert_eq(st->messages, 0);
	shmq_stat_free(st);

	named = cons(q, "epsilon", SHMQ_START_OLDEST);
	anon = cons(q, NULL, SHMQ_START_OLDEST);
	p = prod(q);
	send_n(p, 0, 5);
	for (uint64_t s = 0; s < 5; s++)
		bytes += 20 + s % 40;
	expect_seq(named, 0);
	expect_seq(named, 1);

	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->producer_state, SHMQ_PRODUCER_OPEN);
	cr_assert_eq(st->producer_pid, (uint32_t)getpid());
	cr_assert_eq(st->next_seq, 5);
	cr_assert_eq(st->messages, 5);
	cr_assert_eq(st->bytes, bytes, "bytes %llu, want %llu",
		     (unsigned long long)st->bytes, (unsigned long long)bytes);
	cr_assert_eq(st->nconsumers, 2);
	cs = find(st, "epsilon");
	cr_assert_not_null(cs, "the named consumer is not listed");
	cr_assert(cs->alive);
	cr_assert_eq(cs->kind, SHMQ_CONSUMER_BROADCAST);
	cr_assert_eq(cs->pid, (uint32_t)getpid());
	cr_assert_eq(cs->next_seq, 2);
	cr_assert_eq(cs->lag_messages, 3);
	cr_assert_eq(cs->lag_bytes, st->write_pos - cs->position);
	cr_assert_neq(cs->lag_bytes, 0);
	cr_assert_eq(cs->holding, 0, "the named one is not the slowest");
	cs = find(st, "");
	cr_assert_not_null(cs, "the anonymous consumer is not listed");
	cr_assert(cs->alive);
	cr_assert_eq(cs->next_seq, 0);
	cr_assert_eq(cs->lag_messages, 5);
	cr_assert_eq(cs->lag_bytes, st->write_pos - cs->position);
	cr_assert(cs->holding, "the anonymous one is the slowest");
	cr_assert_eq(st->fill_bytes, cs->lag_bytes);
	shmq_stat_free(st);

	shmq_consumer_close(named);
	shmq_consumer_close(anon);
	shmq_producer_close(p);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->producer_state, SHMQ_PRODUCER_CLOSED);
	cr_assert_eq(st->nconsumers, 1, "only the named one stays listed");
	cs = find(st, "epsilon");
	cr_assert_not_null(cs);
	cr_assert_eq(cs->alive, 0);
	cr_assert_eq(cs->next_seq, 2);
	cr_assert_eq(cs->lag_messages, 3);
	shmq_stat_free(st);
	shmq_close(q);
}

TestSuite(errors, .timeout = 10);

Test(errors, strerror_names_every_code_the_header_mentions, .timeout = 10)
{
	static const int codes[] = {
		-EEXIST, -EINVAL, -ENOSPC, -EACCES, -ENOENT, -EBADMSG,
		-EPROTO, -ELOOP, -EBUSY, -EROFS, -EMSGSIZE, -EAGAIN,
		-ETIMEDOUT, -EPIPE, -EINTR, SHMQ_ESTALE, SHMQ_EOF,
		SHMQ_EDIED, -ENOMEM, -EIO, SHMQ_ENOTQUEUE, SHMQ_EVICTED,
	};
	const size_t n = sizeof(codes) / sizeof(codes[0]);
	const char *unknown = shmq_strerror(-4095);

	for (size_t i = 0; i < n; i++) {
		const char *s = shmq_strerror(codes[i]);

		cr_assert_not_null(s, "code %d", codes[i]);
		cr_assert_neq(s[0], '\0', "code %d: empty", codes[i]);
		cr_assert(strcasestr(s, "unknown") == NULL,
			  "code %d: \"%s\"", codes[i], s);
		cr_assert_str_neq(s, unknown, "code %d", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, shmq_strerror(codes[j]),
					  "codes %d and %d share \"%s\"",
					  codes[i], codes[j], s);
	}
	cr_assert_not_null(shmq_strerror(12345678));
	cr_assert_not_null(shmq_errdetail());
}

TestSuite(sync, .init = h_setup, .fini = h_teardown, .timeout = 10);

Test(sync, returns_zero_and_advances_the_durable_position, .timeout = 10)
{
	struct shmq *q = mkq("q", 16384, 0), *ro;
	struct shmq_producer *p = prod(q);
	struct shmq_stat *st;
	uint64_t before;

	cr_assert_eq(shmq_stat_get(q, &st), 0);
	before = st->durable_pos;
	shmq_stat_free(st);
	send_n(p, 0, 10);
	cr_assert_eq(shmq_sync(q), 0);
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->durable_pos, st->write_pos,
		     "durable_pos %llu, write_pos %llu",
		     (unsigned long long)st->durable_pos,
		     (unsigned long long)st->write_pos);
	cr_assert_neq(st->durable_pos, before);
	shmq_stat_free(st);

	/*
	 * Any process with write access may sync. A read-only handle may not:
	 * Linux's msync of a read-only MAP_SHARED mapping writes nothing and
	 * returns 0, so it must refuse rather than report success.
	 */
	send_n(p, 10, 3);
	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_RDONLY, NULL, &ro), 0);
	cr_assert_eq(shmq_sync(ro), -EROFS);
	cr_assert(strstr(shmq_errdetail(), "sync needs write access"), "%s",
		  shmq_errdetail());
	cr_assert_eq(shmq_sync(q), 0);
	cr_assert_eq(shmq_stat_get(ro, &st), 0);
	cr_assert_eq(st->durable_pos, st->write_pos);
	shmq_stat_free(st);
	shmq_close(ro);
	shmq_producer_close(p);
	shmq_close(q);
}

/* ---- issue 17 #3, #6: shmq_info() and what SHMQ_OPEN_CREATE reports --- */

TestSuite(info, .init = h_setup, .fini = h_teardown, .timeout = 10);

Test(info, reports_the_geometry_checksum_and_sync_state_without_allocating)
{
	struct shmq_config cfg = { .capacity = 20000, .max_message = 300,
				   .slots = 7, .when_full = SHMQ_WHEN_FULL_OVERWRITE,
				   .checksum = SHMQ_CHECKSUM_HEADER,
				   .evict_after_ms = 250 };
	struct shmq_info in;
	struct shmq_producer *p;
	struct shmq *q, *ro;

	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &cfg, &q), 0);
	cr_assert_str_eq(shmq_errdetail(), "");
	memset(&in, 0xa5, sizeof(in));
	cr_assert_eq(shmq_info(q, &in, sizeof(in)), 0);
	cr_assert_eq(in.size, sizeof(in));
	cr_assert_eq(in.capacity, 32768, "rounded up: %llu",
		     (unsigned long long)in.capacity);
	cr_assert_eq(in.max_message, 300);
	cr_assert_eq(in.slots, 7);
	cr_assert_eq(in.when_full, SHMQ_WHEN_FULL_OVERWRITE);
	cr_assert_eq(in.checksum, SHMQ_CHECKSUM_HEADER);
	cr_assert_eq(in.evict_after_ms, 250);
	cr_assert_eq(in.flags, SHMQ_INFO_CREATED);
	cr_assert_eq(in.sync_error, 0);
	cr_assert_eq(in.reserved, 0);
	cr_assert_gt(in.file_size, in.capacity);
	{
		struct shmq_stat *st;

		cr_assert_eq(shmq_stat_get(q, &st), 0);
		cr_assert_eq(in.version, st->version);
		cr_assert_eq(in.file_size, st->file_size);
		shmq_stat_free(st);
	}

	p = prod(q);
	send_n(p, 0, 3);
	cr_assert_eq(shmq_info(q, &in, sizeof(in)), 0);
	cr_assert_neq(in.write_pos, in.durable_pos, "nothing synced yet");
	cr_assert_eq(shmq_sync(q), 0);
	cr_assert_eq(shmq_info(q, &in, sizeof(in)), 0);
	cr_assert_eq(in.write_pos, in.durable_pos);

	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_RDONLY, NULL, &ro), 0);
	cr_assert_eq(shmq_info(ro, &in, sizeof(in)), 0);
	cr_assert_eq(in.flags, SHMQ_INFO_RDONLY, "not created by this handle");
	shmq_close(ro);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(info, fills_only_the_callers_size_and_zeros_what_it_does_not_know)
{
	struct shmq *q = mkq("q", 16384, 0);
	unsigned char buf[sizeof(struct shmq_info) + 32];
	struct shmq_info in;

	/* An older caller's shorter struct: its prefix only. */
	memset(buf, 0x5a, sizeof(buf));
	cr_assert_eq(shmq_info(q, (struct shmq_info *)buf, 72), 0);
	memcpy(&in, buf, sizeof(in));
	cr_assert_eq(in.size, 72);
	cr_assert_eq(in.capacity, 16384);
	for (size_t i = 72; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0x5a, "byte %zu written", i);
	/* A newer caller's longer struct: zeros after ours. */
	memset(buf, 0x5a, sizeof(buf));
	cr_assert_eq(shmq_info(q, (struct shmq_info *)buf, sizeof(buf)), 0);
	memcpy(&in, buf, sizeof(in));
	cr_assert_eq(in.size, sizeof(in));
	for (size_t i = sizeof(in); i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0, "byte %zu not zeroed", i);
	cr_assert_eq(shmq_info(q, &in, 71), -EINVAL);
	cr_assert_eq(shmq_info(q, NULL, sizeof(in)), -EINVAL);
	shmq_close(q);
}

Test(info, open_create_on_an_existing_queue_says_it_did_not_create_it_and_how_it_differs)
{
	/* Full, pinned: the default would be header where $TMPDIR is tmpfs. */
	struct shmq_config small = { .capacity = 1 << 20,
				     .checksum = SHMQ_CHECKSUM_FULL };
	struct shmq_config big = { .capacity = 4 << 20, .slots = 9,
				   .checksum = SHMQ_CHECKSUM_HEADER };
	struct shmq_info in;
	struct shmq *a, *b, *c;
	const char *d;

	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &small, &a), 0);
	cr_assert_eq(shmq_info(a, &in, sizeof(in)), 0);
	cr_assert_eq(in.flags & SHMQ_INFO_CREATED, SHMQ_INFO_CREATED);
	cr_assert_str_eq(shmq_errdetail(), "");

	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &big, &b), 0,
		     "an existing queue is used as it is");
	d = shmq_errdetail();
	cr_assert(strstr(d, "capacity 1048576 (asked 4194304)"), "%s", d);
	cr_assert(strstr(d, "64 slots (asked 9)"), "%s", d);
	cr_assert(strstr(d, "checksum full (asked header)"), "%s", d);
	cr_assert_eq(shmq_info(b, &in, sizeof(in)), 0);
	cr_assert_eq(in.flags, SHMQ_INFO_CFG_DIFFERS);
	cr_assert_eq(in.capacity, 1 << 20);

	/* The same configuration, or none: nothing to report. */
	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_CREATE, &small, &c), 0);
	cr_assert_str_eq(shmq_errdetail(), "");
	cr_assert_eq(shmq_info(c, &in, sizeof(in)), 0);
	cr_assert_eq(in.flags, 0);
	shmq_close(c);
	cr_assert_eq(shmq_open(h_path("q"), SHMQ_OPEN_CREATE, NULL, &c), 0);
	cr_assert_str_eq(shmq_errdetail(), "");
	shmq_close(c);
	shmq_close(b);
	shmq_close(a);
}

Test(info, not_a_queue_and_a_corrupt_queue_have_distinct_codes)
{
	FILE *f = fopen(h_path("text"), "w");
	struct shmq *q;

	cr_assert_not_null(f);
	for (int i = 0; i < 100; i++)
		fputs("this is not a queue file, only some text\n", f);
	fclose(f);
	cr_assert_eq(shmq_open(h_path("text"), 0, NULL, &q), SHMQ_ENOTQUEUE);
	cr_assert_str_eq(shmq_strerror(SHMQ_ENOTQUEUE), "not a queue file");
	cr_assert_str_neq(shmq_strerror(SHMQ_ENOTQUEUE),
			  shmq_strerror(-EBADMSG));
}

/* ---- issue 17 #2, #6: peek, recv, release, release_n ------------------- */

TestSuite(peek, .init = h_setup, .fini = h_teardown, .timeout = 10);

Test(peek, a_second_peek_returns_the_same_message_and_recv_returns_the_peeked_one)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer *c = cons(q, NULL, SHMQ_START_OLDEST);
	struct shmq_msg m1, m2;
	uint8_t b[64];

	send_n(p, 0, 3);
	cr_assert_eq(shmq_peek(c, &m1, SHMQ_NOWAIT), 0);
	cr_assert_eq(shmq_peek(c, &m2, SHMQ_NOWAIT), 0);
	cr_assert_eq(m1.seq, 0);
	cr_assert_eq(m2.seq, 0);
	cr_assert_eq(m1.data, m2.data);
	/* recv after a peek: the peeked message, copied and released. */
	cr_assert_eq(shmq_recv(c, b, sizeof(b), &m2, SHMQ_NOWAIT), 20);
	cr_assert_eq(m2.seq, 0);
	cr_assert_eq(shmq_release(c), -EINVAL, "recv released it");
	expect_seq(c, 1);
	expect_seq(c, 2);
	expect_none(c);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(peek, closing_a_producer_drops_an_outstanding_reservation)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer *c = cons(q, NULL, SHMQ_START_OLDEST);
	struct shmq_msg m;
	void *dst;

	send_n(p, 0, 1);
	cr_assert_eq(shmq_reserve(p, 32, &dst, SHMQ_NOWAIT), 0);
	memset(dst, 'x', 32);
	cr_assert_eq(shmq_producer_close(p), 0);
	expect_seq(c, 0);
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), SHMQ_EOF);
	/* The next producer continues the sequence after the last commit. */
	p = prod(q);
	send_n(p, 1, 1);
	expect_seq(c, 1);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(peek, release_n_releases_the_first_of_a_batch_and_keeps_the_rest)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer *c = cons(q, "part", SHMQ_START_OLDEST);
	struct shmq_msg ms[8], m;
	struct shmq_stat *st;
	uint8_t b[64];

	send_n(p, 0, 10);
	cr_assert_eq(shmq_release_n(c, 1), -EINVAL, "nothing peeked");
	cr_assert_eq(shmq_peek_many(c, ms, 6, SHMQ_NOWAIT), 6);
	cr_assert_eq(shmq_release_n(c, 0), -EINVAL);
	cr_assert_eq(shmq_release_n(c, 7), -EINVAL);
	cr_assert_eq(shmq_release_n(c, 2), 0);
	/* Released: the slot's position is past seq 1, and stat says so. */
	cr_assert_eq(shmq_stat_get(q, &st), 0);
	cr_assert_eq(st->consumers[0].next_seq, 2);
	cr_assert_eq(st->consumers[0].lag_messages, 8);
	shmq_stat_free(st);
	/* The rest stay peeked and valid, in place. */
	for (int i = 2; i < 6; i++) {
		uint8_t exp[64];

		cr_assert_eq(ms[i].seq, (uint64_t)i);
		h_msg_fill(exp, ms[i].len, SEED, (uint64_t)i);
		cr_assert_eq(memcmp(ms[i].data, exp, ms[i].len), 0);
	}
	cr_assert_eq(shmq_peek_many(c, ms, 4, SHMQ_NOWAIT), -EINVAL,
		     "a batch is outstanding");
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), 0);
	cr_assert_eq(m.seq, 2, "peek gives the first unreleased: %llu",
		     (unsigned long long)m.seq);
	cr_assert_eq(m.data, ms[2].data);
	/* recv takes the first unreleased one alone. */
	cr_assert_eq(shmq_recv(c, b, 10, &m, SHMQ_NOWAIT), -EMSGSIZE);
	cr_assert_eq(m.len, 20 + 2 % 40);
	cr_assert_eq(m.seq, 2);
	cr_assert_eq(shmq_recv(c, b, sizeof(b), &m, SHMQ_NOWAIT), 22);
	cr_assert_eq(m.seq, 2);
	cr_assert_eq(shmq_release_n(c, 4), -EINVAL, "only seqs 3..5 left");
	cr_assert_eq(shmq_release_n(c, 1), 0);
	cr_assert_eq(shmq_release_n(c, 2), 0, "the last two: all of it");
	cr_assert_eq(shmq_release(c), -EINVAL);
	expect_seq(c, 6);

	/* A named consumer resumes after what it released, not the batch. */
	cr_assert_eq(shmq_peek_many(c, ms, 3, SHMQ_NOWAIT), 3);
	cr_assert_eq(shmq_release_n(c, 1), 0);
	shmq_consumer_close(c);
	c = cons(q, "part", SHMQ_START_OLDEST);
	expect_seq(c, 8);
	expect_seq(c, 9);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

Test(peek, a_member_that_closes_after_a_refused_recv_leaves_the_message_to_another)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_consumer_opts o = { .kind = SHMQ_CONSUMER_GROUP,
					.name = "g" };
	struct shmq_consumer *a, *b;
	struct shmq_producer *p;
	struct shmq_msg m;
	uint8_t buf[64];
	bool got[2] = { false, false };

	cr_assert_eq(shmq_consumer_open(q, &o, &a), 0);
	cr_assert_eq(shmq_consumer_open(q, &o, &b), 0);
	p = prod(q);
	send_n(p, 0, 2);
	cr_assert_eq(shmq_recv(a, buf, 4, &m, SHMQ_NOWAIT), -EMSGSIZE);
	cr_assert_eq(m.seq, 0);
	cr_assert_eq(m.len, 20);
	cr_assert_eq(shmq_release(a), -EINVAL);
	/* Retrying gets the same claim, not the next message. */
	cr_assert_eq(shmq_recv(a, buf, 4, &m, SHMQ_NOWAIT), -EMSGSIZE);
	cr_assert_eq(m.seq, 0);
	shmq_consumer_close(a);
	for (int i = 0; i < 2; i++) {
		cr_assert_geq(shmq_recv(b, buf, sizeof(buf), &m, SHMQ_NOWAIT), 0);
		cr_assert_lt(m.seq, 2);
		cr_assert(!got[m.seq]);
		got[m.seq] = true;
		cr_assert_eq(!!(m.flags & SHMQ_MSG_REDELIVERED), m.seq == 0);
	}
	expect_none(b);
	shmq_consumer_close(b);
	shmq_producer_close(p);
	shmq_close(q);
}

/* ---- issue 17 #8: the layouts compiled callers depend on ---------------- */

TestSuite(abi, .init = h_setup, .fini = h_teardown, .timeout = 10);

/*
 * A change here breaks every compiled caller: it must come with a new
 * soname (lib/meson.build) and docs/decisions.md "ABI". New fields go
 * into the reserved space, which keeps these sizes.
 */
Test(abi, the_caller_allocated_structs_keep_their_size_and_layout)
{
	cr_assert_eq(sizeof(struct shmq_config), 88);
	cr_assert_eq(offsetof(struct shmq_config, checksum), 40);
	cr_assert_eq(offsetof(struct shmq_config, reserved), 48);
	cr_assert_eq(sizeof(struct shmq_producer_opts), 64);
	cr_assert_eq(offsetof(struct shmq_producer_opts, reserved), 16);
	cr_assert_eq(sizeof(struct shmq_consumer_opts), 64);
	cr_assert_eq(offsetof(struct shmq_consumer_opts, flags), 16);
	cr_assert_eq(offsetof(struct shmq_consumer_opts, reserved), 24);
	cr_assert_eq(sizeof(struct shmq_msg), 64);
	cr_assert_eq(offsetof(struct shmq_msg, lost), 32);
	cr_assert_eq(offsetof(struct shmq_msg, reserved), 40);
	cr_assert_eq(sizeof(struct shmq_info), 88);	/* 72, then salt and created_ns */
}

Test(abi, reserved_consumer_options_must_be_zero_and_messages_come_back_zeroed)
{
	struct shmq *q = mkq("q", 16384, 0);
	struct shmq_producer *p = prod(q);
	struct shmq_consumer_opts o = { .reserved[4] = 1 };
	struct shmq_consumer *c;
	struct shmq_msg m;

	cr_assert_eq(shmq_consumer_open(q, &o, &c), -EINVAL);
	o.reserved[4] = 0;
	o.reserved0 = 1;
	cr_assert_eq(shmq_consumer_open(q, &o, &c), -EINVAL);
	o.reserved0 = 0;
	cr_assert_eq(shmq_consumer_open(q, &o, &c), 0);
	send_n(p, 0, 1);
	memset(&m, 0xff, sizeof(m));
	cr_assert_eq(shmq_peek(c, &m, SHMQ_NOWAIT), 0);
	cr_assert_neq(m.inc, 0);	/* the producer's incarnation */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(m.reserved[i], 0);
	shmq_consumer_close(c);
	shmq_producer_close(p);
	shmq_close(q);
}

/* Issue 17 #8: reserved space in caller-allocated structs is checked. */
Test(info, reserved_fields_of_the_option_structs_must_be_zero)
{
	struct shmq_config cfg = { 0 };
	struct shmq_producer_opts po = { 0 };
	struct shmq_producer *p;
	struct shmq *q;

	cfg.reserved[2] = 1;
	cr_assert_eq(shmq_create(h_path("r.q"), &cfg), -EINVAL);
	cfg.reserved[2] = 0;
	cr_assert_eq(shmq_create(h_path("r.q"), &cfg), 0);
	cr_assert_eq(shmq_open(h_path("r.q"), 0, NULL, &q), 0);
	po.reserved[11] = 7;
	cr_assert_eq(shmq_producer_open(q, &po, &p), -EINVAL);
	po.reserved[11] = 0;
	cr_assert_eq(shmq_producer_open(q, &po, &p), 0);
	shmq_producer_close(p);
	shmq_close(q);
}
