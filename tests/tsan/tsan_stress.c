/* SPDX-License-Identifier: MIT */
/*
 * The threaded stress harness: one producer thread and three broadcast
 * consumer threads over one mapping of one queue, N messages (10^6 by
 * default). Sanitizers cannot see across processes, so this is where
 * ThreadSanitizer checks the ring's orderings (lib/order.h maps the verbs
 * to __atomic builtins under TSan); scripts/extra-checks.sh builds it with
 * -Db_sanitize=thread and requires zero reports. Every consumer checks
 * every message: no gap, no duplicate, bytes intact.
 * Usage: tsan_stress [N]
 * SHMQ_TSAN_PLANT=race plants a data race for the self-test of
 * extra-checks.sh: the producer stores into a message again after
 * publishing it (the same bytes, so only ThreadSanitizer can tell).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq.h"

#define NCONS	3
#define MAXLEN	64u

static uint64_t total = 1000000;
static struct shmq *q;
static int plant_race;

static size_t msg_len(uint64_t i)
{
	return 8 + (size_t)(i * 2654435761u % (MAXLEN - 7));
}

static void msg_fill(unsigned char *buf, uint64_t i)
{
	size_t len = msg_len(i);

	memcpy(buf, &i, 8);
	for (size_t k = 8; k < len; k++)
		buf[k] = (unsigned char)(i * 31 + k);
}

static void die(const char *who, const char *what, long long a, long long b)
{
	fprintf(stderr, "tsan_stress: %s: %s (%lld, %lld)\n", who, what, a, b);
	exit(1);
}

static void *producer(void *arg)
{
	unsigned char buf[MAXLEN];
	struct shmq_producer *p;
	int err;

	(void)arg;
	err = shmq_producer_open(q, NULL, &p);
	if (err)
		die("producer", shmq_strerror(err), err, 0);
	for (uint64_t i = 0; i < total; i++) {
		msg_fill(buf, i);
		/* Mix single sends with deferred batches of up to 8. */
		if (i % 64 < 56) {
			err = shmq_send(p, buf, msg_len(i), SHMQ_FOREVER);
		} else {
			void *dst;

			err = shmq_reserve(p, msg_len(i), &dst, SHMQ_FOREVER);
			if (!err) {
				memcpy(dst, buf, msg_len(i));
				err = shmq_commit(p, i % 8 == 7 ? 0 : SHMQ_COMMIT_DEFER);
			}
			/*
			 * The plant: published, so the consumers may be
			 * reading it; nothing orders this store before their
			 * loads (W1 was before it).
			 */
			if (!err && plant_race && i % 8 == 7) {
				memcpy(dst, buf, 8);
				/*
				 * Let the consumers read it before our next
				 * publish: a read after a later W1 would be
				 * ordered after this store, and no race would
				 * be left to find (the fast paths let the
				 * producer run far ahead).
				 */
				usleep(200);
			}
		}
		if (err)
			die("producer send", shmq_strerror(err), err, (long long)i);
	}
	shmq_producer_close(p);
	return NULL;
}

struct cons {
	struct shmq_consumer *c;
	int n;
};

static void *consumer(void *arg)
{
	struct cons *cs = arg;
	unsigned char buf[MAXLEN], want[MAXLEN];
	struct shmq_msg m;
	uint64_t i = 0;
	ssize_t r;

	for (;;) {
		/* Consumer 0 reads in place; the others copy. */
		if (cs->n == 0) {
			r = shmq_peek(cs->c, &m, SHMQ_FOREVER);
			if (r == 0) {
				if (m.len > sizeof(buf))
					die("consumer", "peeked length", (long long)m.len, 0);
				memcpy(buf, m.data, m.len);
				r = (ssize_t)m.len;
				shmq_release(cs->c);
			}
		} else {
			r = shmq_recv(cs->c, buf, sizeof(buf), &m, SHMQ_FOREVER);
		}
		if (r == SHMQ_EOF)
			break;
		if (r < 0)
			die("consumer", shmq_strerror((int)r), r, (long long)i);
		msg_fill(want, i);
		if ((size_t)r != msg_len(i) || memcmp(buf, want, (size_t)r))
			die("consumer", "message differs (gap, duplicate or torn)",
			    cs->n, (long long)i);
		i++;
	}
	if (i != total)
		die("consumer", "EOF before every message", (long long)i,
		    (long long)total);
	return NULL;
}

int main(int argc, char **argv)
{
	struct shmq_config cfg = { .capacity = 65536, .slots = 8 };
	const char *base = getenv("TMPDIR");
	char dir[4096], path[4200];
	struct cons cs[NCONS];
	pthread_t tp, tc[NCONS];
	int err;

	if (argc > 1)
		total = strtoull(argv[1], NULL, 10);
	plant_race = getenv("SHMQ_TSAN_PLANT") &&
		     !strcmp(getenv("SHMQ_TSAN_PLANT"), "race");
	snprintf(dir, sizeof(dir), "%s/shmq-tsan-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(dir))
		die("main", "mkdtemp", errno, 0);
	snprintf(path, sizeof(path), "%s/q", dir);
	err = shmq_open(path, SHMQ_OPEN_CREATE, &cfg, &q);
	if (err)
		die("main", shmq_strerror(err), err, 0);
	/* Attach before the producer starts: each must see message 0. */
	for (int k = 0; k < NCONS; k++) {
		cs[k].n = k;
		err = shmq_consumer_open(q, NULL, &cs[k].c);
		if (err)
			die("main", shmq_strerror(err), err, k);
		pthread_create(&tc[k], NULL, consumer, &cs[k]);
	}
	pthread_create(&tp, NULL, producer, NULL);
	pthread_join(tp, NULL);
	for (int k = 0; k < NCONS; k++) {
		pthread_join(tc[k], NULL);
		shmq_consumer_close(cs[k].c);
	}
	shmq_close(q);
	unlink(path);
	rmdir(dir);
	printf("tsan_stress: %llu messages to %d consumers, all intact\n",
	       (unsigned long long)total, NCONS);
	return 0;
}
