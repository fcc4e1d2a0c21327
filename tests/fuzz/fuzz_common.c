/* SPDX-License-Identifier: MIT */
/*
 * One bounded pass of every role over whatever file image a fuzz target
 * wrote. Nothing here may wait: every call uses SHMQ_NOWAIT, so that an
 * input can only make an iteration slow by a bug (libFuzzer's -timeout
 * then reports it as a hang).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmq.h"
#include "fuzz.h"

static char fz_dir[256];
static char fz_file[300];

static void fz_cleanup(void)
{
	unlink(fz_file);
	rmdir(fz_dir);
}

const char *fz_path(void)
{
	const char *base = getenv("TMPDIR");

	if (fz_file[0])
		return fz_file;
	if (!base || !*base)
		base = "/tmp";
	snprintf(fz_dir, sizeof(fz_dir), "%s/shmq-fuzz-XXXXXX", base);
	if (!mkdtemp(fz_dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(fz_file, sizeof(fz_file), "%s/q", fz_dir);
	atexit(fz_cleanup);
	return fz_file;
}

void fz_write(const void *buf, size_t len)
{
	int fd = open(fz_path(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = buf;

	if (fd < 0) {
		perror("fuzz image");
		abort();
	}
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n <= 0) {
			perror("writing the fuzz image");
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
	close(fd);
}

/*
 * The planted bugs of the self-tests in scripts/extra-checks.sh. The
 * marker may sit anywhere in the input: libFuzzer hooks memmem() and
 * learns its needle, so a fuzz run from the real seeds inserts it within
 * seconds. Without SHMQ_FUZZ_PLANT in the environment nothing is searched.
 */
void fz_plant(const uint8_t *data, size_t size)
{
	static const char *kind;
	static int read_env;
	char *volatile p;
	volatile int big = INT_MAX;

	if (!read_env) {
		kind = getenv("SHMQ_FUZZ_PLANT");
		read_env = 1;
	}
	if (!kind || !memmem(data, size, "PLNT", 4))
		return;
	fprintf(stderr, "fuzz: planted %s\n", kind);
	if (!strcmp(kind, "crash")) {		/* like the fill() of issue 11 */
		p = malloc(8);
		if (!p)
			abort();
		memset(p, 'x', 8 + size % 8 + 1);
		free(p);
	} else if (!strcmp(kind, "leak")) {
		p = malloc(64);
		p = NULL;
	} else if (!strcmp(kind, "ub")) {
		big += 1 + (int)(size & 1);
		(void)big;
	} else if (!strcmp(kind, "hang")) {
		for (;;)
			sleep(1);
	}
}

static void impossible(const char *what, long long a, long long b)
{
	fprintf(stderr, "fuzz: impossible result: %s (%lld, %lld)\n", what, a, b);
	abort();
}

/*
 * Read everything C will give without waiting. Every byte of a peeked
 * message is touched, so a length that lies shows up under ASan.
 */
static void drain(struct shmq_consumer *c, char *buf, size_t max, int peek)
{
	struct shmq_msg m;
	unsigned int sum = 0;
	ssize_t r;

	for (int i = 0; i < 4096; i++) {
		if (peek) {
			if (shmq_peek(c, &m, SHMQ_NOWAIT) < 0)
				break;
			if (m.len > max)
				impossible("peeked length above max", (long long)m.len,
					   (long long)max);
			for (size_t j = 0; j < m.len; j++)
				sum += ((const unsigned char *)m.data)[j];
			if (shmq_release(c) < 0)
				impossible("release after peek", 0, 0);
		} else {
			r = shmq_recv(c, buf, max, &m, SHMQ_NOWAIT);
			if (r < 0)
				break;
			if ((size_t)r > max || (size_t)r != m.len)
				impossible("received length", (long long)r,
					   (long long)max);
		}
	}
	(void)sum;
}

static void fill(char *buf, size_t len, unsigned int k)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 31 + k * 7 + 1);
}

/*
 * The producer's own messages must reach a consumer that started at the
 * write position exactly as sent, whatever the rest of the image says.
 */
static void produce_and_check(struct shmq *q, char *buf, char *want,
			      size_t max)
{
	struct shmq_consumer_opts latest = { .start = SHMQ_START_LATEST };
	/* BUF and WANT hold MAX + 1 bytes: no length here may exceed MAX. */
	size_t lens[3] = { 0, max < 37 ? max : 37, max };
	struct shmq_consumer *c = NULL;
	struct shmq_producer *p = NULL;
	struct shmq_msg m;
	uint64_t seq0 = 0;
	int sent = 0;
	ssize_t r;

	if (shmq_producer_open(q, NULL, &p) < 0)
		return;
	if (shmq_consumer_open(q, &latest, &c) < 0)
		c = NULL;
	for (int k = 0; k < 3; k++) {
		fill(want, lens[k], (unsigned int)k);
		if (shmq_send(p, want, lens[k], SHMQ_NOWAIT) < 0)
			break;
		sent++;
	}
	for (int k = 0; c && k < sent; k++) {
		r = shmq_recv(c, buf, max, &m, SHMQ_NOWAIT);
		if (r < 0)
			impossible("own message not received", (long long)r, k);
		fill(want, lens[k], (unsigned int)k);
		if ((size_t)r != lens[k] || memcmp(buf, want, lens[k]))
			impossible("own message altered", (long long)r,
				   (long long)lens[k]);
		if (k == 0)
			seq0 = m.seq;
		else if (m.seq != seq0 + (uint64_t)k)
			impossible("own message sequence", (long long)m.seq,
				   (long long)(seq0 + (uint64_t)k));
	}
	shmq_producer_close(p);
	if (c) {
		r = shmq_recv(c, buf, max, &m, SHMQ_NOWAIT);
		if (r != SHMQ_EOF)
			impossible("no EOF after the producer closed", (long long)r, 0);
		shmq_consumer_close(c);
	}
}

void fz_exercise(void)
{
	struct shmq_consumer_opts named = { .name = "fz" };
	struct shmq_consumer *c1 = NULL, *c2 = NULL;
	struct shmq_stat *st;
	struct shmq *q, *ro;
	char *buf, *want;
	size_t max;

	if (shmq_open(fz_path(), SHMQ_OPEN_RDONLY, NULL, &ro) == 0) {
		if (shmq_stat_get(ro, &st) == 0)
			shmq_stat_free(st);
		shmq_close(ro);
	}
	if (shmq_open(fz_path(), 0, NULL, &q) < 0)
		return;
	if (shmq_stat_get(q, &st) < 0)
		impossible("stat of an attached queue", 0, 0);
	max = st->max_message;
	if (st->nconsumers > st->slots)
		impossible("more consumers than slots", st->nconsumers, st->slots);
	shmq_stat_free(st);
	buf = malloc(max + 1);
	want = malloc(max + 1);
	if (!buf || !want)
		abort();

	if (shmq_consumer_open(q, NULL, &c1) == 0)
		drain(c1, buf, max, 0);
	if (shmq_consumer_open(q, &named, &c2) == 0)
		drain(c2, buf, max, 1);
	produce_and_check(q, buf, want, max);
	if (c1)
		drain(c1, buf, max, 1);
	shmq_consumer_close(c2);
	shmq_consumer_close(c1);
	shmq_consumer_remove(q, "fz");
	shmq_sync(q);
	shmq_close(q);
	free(want);
	free(buf);
}
