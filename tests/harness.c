/* SPDX-License-Identifier: MIT */
/*
 * Test helpers (see harness.h). Every wait here is bounded: a test that
 * hangs on a peer would hang CI, so each one ends in a timeout and a
 * SIGKILL instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef XPROC_PEER_PATH
#define XPROC_PEER_PATH "tests/xproc_peer"
#endif

/*
 * LeakSanitizer hook: criterion 2.4's runner leaks a few of its own
 * allocations at exit, which would fail every sanitizer run for nothing.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libcriterion.so\n";
}

static char tmpdir[PATH_MAX];

/* Peers still running at teardown are killed there, whatever failed. */
#define H_MAX_PEERS 32
static pid_t live_peers[H_MAX_PEERS];

void h_setup(void)
{
	const char *base = getenv("TMPDIR");

	if (!base || !*base)
		base = "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/shmq-test-XXXXXX", base);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		abort();
	}
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void h_teardown(void)
{
	for (int i = 0; i < H_MAX_PEERS; i++) {
		if (live_peers[i] > 0) {
			kill(live_peers[i], SIGKILL);
			waitpid(live_peers[i], NULL, 0);
			live_peers[i] = 0;
		}
	}
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

const char *h_dir(void)
{
	return tmpdir;
}

const char *h_path(const char *name)
{
	static char bufs[8][PATH_MAX];
	static unsigned int next;
	char *b = bufs[next++ % 8];

	/* A truncated path would point a test at some other file. */
	if (snprintf(b, PATH_MAX, "%s/%s", tmpdir, name) >= PATH_MAX)
		abort();
	return b;
}

uint64_t h_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void h_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int h_poke(const char *path, off_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pwrite(fd, buf, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

int h_peek_file(const char *path, off_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

int h_copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in, out, err = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		err = -errno;
		close(in);
		return err;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			err = -EIO;
			break;
		}
	}
	if (n < 0)
		err = -errno;
	close(in);
	close(out);
	return err;
}

static void track(pid_t pid, int add)
{
	for (int i = 0; i < H_MAX_PEERS; i++) {
		if (add && live_peers[i] == 0) {
			live_peers[i] = pid;
			return;
		}
		if (!add && live_peers[i] == pid) {
			live_peers[i] = 0;
			return;
		}
	}
}

int h_spawn(struct h_peer *p, unsigned int watchdog_s, const char *const *argv)
{
	const char *peer = getenv("SHMQ_XPROC_PEER");
	pid_t parent = getpid();
	int pfd[2];
	size_t n = 0;

	if (!peer || !*peer)
		peer = XPROC_PEER_PATH;
	while (argv[n])
		n++;
	char *args[n + 2];

	args[0] = (char *)peer;
	for (size_t i = 0; i < n; i++)
		args[i + 1] = (char *)argv[i];
	args[n + 1] = NULL;

	memset(p, 0, sizeof(*p));
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	/* The peer's output must reach the pipe now, not at exit. */
	fflush(stdout);
	fflush(stderr);
	p->pid = fork();
	if (p->pid < 0) {
		int err = -errno;

		close(pfd[0]);
		close(pfd[1]);
		return err;
	}
	if (p->pid == 0) {
		/*
		 * Die with the test, and on our own if the test forgets us:
		 * both survive execve. The getppid() check closes the race
		 * where the parent died before prctl().
		 */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		alarm(watchdog_s);
		dup2(pfd[1], STDOUT_FILENO);
		execv(peer, args);
		fprintf(stderr, "exec %s: %s\n", peer, strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	p->out = pfd[0];
	track(p->pid, 1);
	return 0;
}

int h_readline(struct h_peer *p, char *line, size_t cap, int timeout_ms)
{
	uint64_t deadline = h_now_ns() + (uint64_t)timeout_ms * 1000000u;
	bool polled = false;	/* a zero timeout still reads what is there */

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);

		if (nl) {
			size_t l = (size_t)(nl - p->buf);
			size_t c = l < cap - 1 ? l : cap - 1;

			memcpy(line, p->buf, c);
			line[c] = '\0';
			memmove(p->buf, nl + 1, p->len - l - 1);
			p->len -= l + 1;
			return (int)c;
		}
		if (p->len == sizeof(p->buf))
			p->len = 0;	/* an absurd line: drop it */

		uint64_t now = h_now_ns();

		if (now >= deadline && polled)
			return -ETIMEDOUT;

		struct pollfd pfd = { .fd = p->out, .events = POLLIN };
		int r = poll(&pfd, 1, now >= deadline ? 0 :
			     (int)((deadline - now) / 1000000u) + 1);

		polled = true;

		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;

		ssize_t n = read(p->out, p->buf + p->len, sizeof(p->buf) - p->len);

		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n == 0)
			return -EPIPE;
		if (n > 0)
			p->len += (size_t)n;
	}
}

int h_expect(struct h_peer *p, const char *prefix, char *line, size_t cap,
	     int timeout_ms)
{
	uint64_t deadline = h_now_ns() + (uint64_t)timeout_ms * 1000000u;
	size_t pl = strlen(prefix);

	for (;;) {
		uint64_t now = h_now_ns();
		int left = now >= deadline ? 0 :
			   (int)((deadline - now) / 1000000u);
		int r = h_readline(p, line, cap, left);

		if (r < 0)
			return r;
		if (strncmp(line, prefix, pl) == 0)
			return r;
		/* Other lines are diagnostics: keep them in the test log. */
		fprintf(stderr, "[peer %d] %s\n", (int)p->pid, line);
	}
}

int h_wait(struct h_peer *p, int timeout_ms)
{
	uint64_t deadline = h_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int st;

	if (p->reaped)
		return 0;
	for (;;) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);

		if (r == p->pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (h_now_ns() >= deadline) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			p->status = st;
			p->reaped = 1;
			track(p->pid, 0);
			close(p->out);
			return -ETIMEDOUT;
		}
		h_sleep_ms(5);
	}
	p->status = st;
	p->reaped = 1;
	track(p->pid, 0);
	close(p->out);
	return 0;
}

void h_kill(struct h_peer *p, int sig)
{
	if (!p->reaped && p->pid > 0)
		kill(p->pid, sig);
}

int h_exit_code(const struct h_peer *p)
{
	if (!p->reaped)
		return -1;
	if (WIFEXITED(p->status))
		return WEXITSTATUS(p->status);
	if (WIFSIGNALED(p->status))
		return 128 + WTERMSIG(p->status);
	return -1;
}

uint32_t h_fnv1a(const void *buf, size_t len)
{
	const uint8_t *b = buf;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	return h;
}

/* splitmix64: a good, cheap hash of (seed, seq) into a PRNG state. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

size_t h_msg_len(uint64_t seed, uint64_t seq, size_t max)
{
	uint64_t r = mix(seed ^ mix(seq));

	/*
	 * A third of the messages take a boundary size (0, tag-only, max)
	 * so that the edges are hit often, not once in a million.
	 */
	switch (r % 12) {
	case 0:
		return 0;
	case 1:
		return max < H_TAG_SIZE ? max : H_TAG_SIZE;
	case 2:
		return max;
	default:
		return (size_t)((r >> 8) % ((uint64_t)max + 1));
	}
}

static void fill_stream(uint8_t *b, size_t len, uint64_t seed, uint64_t seq)
{
	uint64_t s = mix(seed * 31 + seq) | 1;
	size_t i = 0;

	while (i < len) {
		/* xorshift64 */
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		for (int k = 0; k < 8 && i < len; k++, i++)
			b[i] = (uint8_t)(s >> (k * 8));
	}
}

void h_msg_fill(void *buf, size_t len, uint64_t seed, uint64_t seq)
{
	uint8_t *b = buf;

	if (len < H_TAG_SIZE) {
		fill_stream(b, len, seed, seq);
		return;
	}
	fill_stream(b + H_TAG_SIZE, len - H_TAG_SIZE, seed, seq);

	uint32_t sum = h_fnv1a(b + H_TAG_SIZE, len - H_TAG_SIZE);
	uint32_t l32 = (uint32_t)len;

	memcpy(b, &seq, 8);
	memcpy(b + 8, &sum, 4);
	memcpy(b + 12, &l32, 4);
}

const char *h_msg_check(const void *buf, size_t len, uint64_t seed,
			uint64_t seq, size_t max)
{
	static __thread char why[160];
	size_t want = h_msg_len(seed, seq, max);
	const uint8_t *b = buf;

	if (len >= H_TAG_SIZE) {
		uint64_t tseq;
		uint32_t sum, l32;

		memcpy(&tseq, b, 8);
		memcpy(&sum, b + 8, 4);
		memcpy(&l32, b + 12, 4);
		if (tseq != seq) {
			snprintf(why, sizeof(why),
				 "tag says seq %llu, expected %llu (gap, duplicate or reorder)",
				 (unsigned long long)tseq,
				 (unsigned long long)seq);
			return why;
		}
		if (l32 != len) {
			snprintf(why, sizeof(why),
				 "tag says len %u, got %zu", l32, len);
			return why;
		}
		if (h_fnv1a(b + H_TAG_SIZE, len - H_TAG_SIZE) != sum) {
			snprintf(why, sizeof(why),
				 "payload checksum mismatch at seq %llu",
				 (unsigned long long)seq);
			return why;
		}
	}
	if (len != want) {
		snprintf(why, sizeof(why), "seq %llu: len %zu, expected %zu",
			 (unsigned long long)seq, len, want);
		return why;
	}

	uint8_t exp[len ? len : 1];

	h_msg_fill(exp, len, seed, seq);
	if (memcmp(exp, b, len) != 0) {
		snprintf(why, sizeof(why), "seq %llu: payload differs",
			 (unsigned long long)seq);
		return why;
	}
	return NULL;
}
