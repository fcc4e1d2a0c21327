/* SPDX-License-Identifier: MIT */
/*
 * shmq bench: throughput and one-way latency of shmq on this machine and
 * path, beside a pipe measured in the same run (issue 13, docs/tools.md).
 *
 * For each size, two runs: one through a temporary queue created in DIR,
 * one through a pipe(2). Each run forks a producer and its consumers (one
 * reader for the pipe) and has two phases:
 *   throughput: the producer sends as fast as it can for S seconds, then
 *     waits until every consumer has counted every message; msgs/s is
 *     messages sent over that time (per consumer for broadcast, the
 *     group's sum for a group, which shares the messages);
 *   latency: one message in flight at a time for S/4 seconds, carrying
 *     its CLOCK_MONOTONIC send time; each receiver stores now - send time,
 *     and the producer sends the next one once every consumer has it.
 * The parent only waits, shows progress and cleans up: it removes the
 * queue when a run ends, when a child dies and on any signal that would
 * end it (after killing the children), so no file is left in DIR. The
 * children die with the parent (PR_SET_PDEATHSIG).
 *
 * Counters between the processes live in a shared anonymous mapping, one
 * cache line per consumer, so that polling them does not slow the data
 * path measured. Each counter has one writer; relaxed stores of the new
 * value, acquire loads where a reader acts on the count (the producer
 * moving on to the next latency message needs nothing else ordered, but
 * acquire keeps the parent's reading of the samples after their count).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmq.h>

#include "cmds.h"
#include "common.h"
#include "progress.h"

#define BENCH_HDR	16u		/* seq (bit 63: latency) and time */
#define BENCH_MIN_SIZE	BENCH_HDR
#define BENCH_MAX_SIZE	(64u << 20)
#define BENCH_MAX_SIZES	16
#define LAT_FLAG	(1ull << 63)
#define LAT_TOTAL	(1u << 20)	/* latency samples over all consumers */
#define CACHE_LINE	64

static const char bench_usage[] =
"Usage: shmq bench [DIR] [--size BYTES[,BYTES...]] [--consumers N]\n"
"                  [--group N] [--seconds S] [--json] [--progress]\n"
"Measure shmq on this machine: a producer and consumers in separate\n"
"processes, through a temporary queue created in DIR (default /dev/shm,\n"
"else $TMPDIR, else /tmp; an existing file is never touched, and the\n"
"queue is removed at exit), and a pipe measured in the same run. Prints,\n"
"for each size, messages/s, GB/s (1e9 bytes) and one-way p50/p99 latency\n"
"of both, and shmq's throughput over the pipe's.\n"
"  --size BYTES[,...]  message sizes, 16 to 64M (default 64,64K)\n"
"  --consumers N       N broadcast consumers, each gets every message\n"
"                      (default 1; the pipe always has one reader)\n"
"  --group N           instead, one consumer group of N members, which\n"
"                      share the messages\n"
"  --seconds S         throughput time per size and path (default 1);\n"
"                      latency is measured for a quarter of it after\n"
"  --json              one JSON object on stdout instead of the table\n"
"  --progress          a progress line on stderr even when it is not a\n"
"                      terminal (on a terminal it is always shown)\n";

/* One consumer's counters, written by it alone, on a line of its own. */
struct peer {
	_Alignas(CACHE_LINE) _Atomic uint64_t count;	/* messages received */
	_Atomic uint32_t ready;		/* attached */
	_Atomic uint32_t nsamples;	/* latency samples stored */
};

struct shared {
	_Alignas(CACHE_LINE) _Atomic uint64_t t_start;	/* producer */
	_Atomic uint64_t t_end;		/* throughput phase over */
	_Atomic uint64_t sent;		/* throughput messages */
	_Atomic uint32_t phase;		/* 0 attach, 1 tput, 2 lat, 3 done */
	_Alignas(CACHE_LINE) struct peer peer[];
};

struct bench_opts {
	const char *dir;
	uint64_t sizes[BENCH_MAX_SIZES];
	int nsizes;
	uint32_t consumers;
	bool group;
	int64_t tput_ns;
	bool json;
	bool progress;		/* show the progress line */
	bool tty;		/* stderr is a terminal: redraw it */
};

struct result {
	double msgs_s, gb_s;
	uint64_t msgs;
	uint64_t p50, p99;	/* ns; 0 when no sample */
	uint64_t nsamples;
};

enum path { PATH_SHMQ, PATH_PIPE };

/* ---- state the signal handlers and the cleanup share ------------------- */

static volatile sig_atomic_t got_signal;
/*
 * The signals whose default action ends the process and that another
 * process (or the terminal, or a limit) sends: each would leave the queue
 * file behind, so the parent catches them all, cleans up and dies of the
 * signal. SIGPIPE is ignored by tool_init. A signal ignored when we start
 * stays ignored (nohup's SIGHUP: the run goes on after a logout), except
 * SIGINT and SIGTERM: a shell script starts its background jobs with
 * SIGINT ignored, and its `kill -INT` still stops the bench (as before).
 */
static const int stop_signals[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM,
	SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO,
#ifdef SIGPWR
	SIGPWR,
#endif
#ifdef SIGSTKFLT
	SIGSTKFLT,
#endif
};
#define NSTOP (sizeof(stop_signals) / sizeof(stop_signals[0]))
static sigset_t caught;		/* the signals on_signal handles */
static char queue_path[PATH_MAX];
static volatile sig_atomic_t have_queue;
static pid_t kids[SHMQ_MAX_SLOTS + 1];
static uint32_t nkids;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void kill_kids(void)
{
	for (uint32_t i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	for (uint32_t i = 0; i < nkids; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	nkids = 0;
}

static void remove_queue(void)
{
	if (have_queue)
		unlink(queue_path);
	have_queue = 0;
}

/* After SIGINT/SIGTERM/SIGHUP: clean up, then die of the signal. */
static void die_of_signal(int sig)
{
	kill_kids();
	remove_queue();
	fflush(stdout);
	signal(sig, SIG_DFL);
	raise(sig);
	_exit(128 + sig);
}

static int lat_cap(const struct bench_opts *o)
{
	uint32_t cap = LAT_TOTAL / o->consumers;

	return cap < 1024 ? 1024 : (int)cap;
}

static uint64_t now_ns(void)
{
	return (uint64_t)now_mono_ns();
}

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * Spin, then yield: on a machine with fewer CPUs than processes the
 * consumer needs the CPU this waiter holds.
 */
static void wait_step(uint64_t *polls)
{
	if (++*polls % 256 == 0)
		sched_yield();
	else
		relax();
}

/* ---- the children ------------------------------------------------------ */

static void child_setup(pid_t parent)
{
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(&caught, sig) == 1)
			signal(sig, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(EXIT_ERROR);
}

/* Every consumer has COUNT messages (the group: all of them together). */
static bool all_have(struct shared *sh, const struct bench_opts *o,
		     uint32_t n, uint64_t count)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t c = atomic_load_explicit(&sh->peer[i].count,
						  memory_order_acquire);

		if (!o->group && c < count)
			return false;
		sum += c;
	}
	return !o->group || sum >= count;
}

/*
 * The producer's loop, for both paths: SEND sends one message of SIZE
 * bytes from BUF; returns 0 or a negative error (reported by it).
 */
typedef int (*send_fn)(void *ctx, const void *buf, size_t size);

static int produce(struct shared *sh, const struct bench_opts *o, uint32_t n,
		   size_t size, send_fn send, void *ctx)
{
	uint64_t *hdr, seq = 0, t0, end, polls = 0, lat_end;
	char *buf = calloc(1, size);
	int every = size >= 4096 ? 1 : 256, cap = lat_cap(o);

	if (!buf)
		return tool_msg("out of memory"), -ENOMEM;
	hdr = (uint64_t *)buf;
	for (uint32_t i = 0; i < n; i++)
		while (!atomic_load_explicit(&sh->peer[i].ready,
					     memory_order_acquire))
			usleep(200);
	t0 = now_ns();
	end = t0 + (uint64_t)o->tput_ns;
	atomic_store_explicit(&sh->t_start, t0, memory_order_relaxed);
	atomic_store_explicit(&sh->phase, 1, memory_order_relaxed);
	for (;;) {
		hdr[0] = seq;
		if (send(ctx, buf, size) < 0)
			return -1;
		seq++;
		if (seq % every == 0 && now_ns() >= end)
			break;
	}
	atomic_store_explicit(&sh->sent, seq, memory_order_relaxed);
	/* The phase ends when the consumers have it all. */
	while (!all_have(sh, o, n, seq))
		wait_step(&polls);
	atomic_store_explicit(&sh->t_end, now_ns(), memory_order_relaxed);
	atomic_store_explicit(&sh->phase, 2, memory_order_relaxed);
	lat_end = now_ns() + (uint64_t)o->tput_ns / 4;
	for (int i = 0; i < cap; i++) {
		hdr[0] = LAT_FLAG | seq;
		hdr[1] = now_ns();
		if (send(ctx, buf, size) < 0)
			return -1;
		seq++;
		while (!all_have(sh, o, n, seq))
			wait_step(&polls);
		if (hdr[1] >= lat_end)
			break;
	}
	atomic_store_explicit(&sh->phase, 3, memory_order_relaxed);
	free(buf);
	return 0;
}

/* One received message: count it, and time it when it carries a time. */
static inline void received(struct peer *me, uint64_t *samples, int cap,
			    const char *buf)
{
	uint64_t h[2], t;
	uint64_t c = atomic_load_explicit(&me->count, memory_order_relaxed);

	memcpy(h, buf, sizeof(h));
	if (h[0] & LAT_FLAG) {
		uint32_t ns = atomic_load_explicit(&me->nsamples,
						   memory_order_relaxed);

		t = now_ns();
		if ((int)ns < cap) {
			samples[ns] = t > h[1] ? t - h[1] : 0;
			atomic_store_explicit(&me->nsamples, ns + 1,
					      memory_order_release);
		}
	}
	/* Release: the sample is stored before the count that acks it. */
	atomic_store_explicit(&me->count, c + 1, memory_order_release);
}

struct shmq_send_ctx {
	struct shmq_producer *p;
};

static int send_shmq(void *ctx, const void *buf, size_t size)
{
	struct shmq_send_ctx *s = ctx;
	int r = shmq_send(s->p, buf, size, SHMQ_FOREVER);

	if (r < 0)
		tool_fail(queue_path, "send failed", r);
	return r;
}

static int send_pipe(void *ctx, const void *buf, size_t size)
{
	int r = write_all(*(int *)ctx, buf, size);

	if (r < 0)
		tool_msg("pipe: write failed: %s", strerror(-r));
	return r;
}

static void shmq_producer_child(struct shared *sh, const struct bench_opts *o,
				size_t size)
{
	struct shmq_send_ctx s;
	struct shmq *q;
	int r;

	r = tool_open(queue_path, 0, &q);
	if (r)
		_exit(r);
	r = shmq_producer_open(q, NULL, &s.p);
	if (r < 0)
		_exit(tool_fail(queue_path, "cannot open the producer", r));
	if (produce(sh, o, o->consumers, size, send_shmq, &s) < 0)
		_exit(EXIT_ERROR);
	r = shmq_producer_close(s.p);
	if (r < 0)
		_exit(tool_fail(queue_path, "cannot close the producer", r));
	shmq_close(q);
	_exit(EXIT_OK);
}

static void shmq_consumer_child(struct shared *sh, uint64_t *samples,
				const struct bench_opts *o, uint32_t idx,
				size_t size)
{
	struct shmq_consumer_opts copts = {
		.kind = o->group ? SHMQ_CONSUMER_GROUP : SHMQ_CONSUMER_BROADCAST,
		.name = o->group ? "bench" : NULL,
	};
	struct peer *me = &sh->peer[idx];
	struct shmq_consumer *c;
	char *buf = malloc(size);
	struct shmq *q;
	ssize_t n;
	int r, cap = lat_cap(o);

	if (!buf)
		_exit(EXIT_ERROR);
	r = tool_open(queue_path, 0, &q);
	if (r)
		_exit(r);
	r = shmq_consumer_open(q, &copts, &c);
	if (r < 0)
		_exit(tool_fail(queue_path, "cannot open a consumer", r));
	atomic_store_explicit(&me->ready, 1, memory_order_release);
	samples += (size_t)idx * (size_t)cap;
	while ((n = shmq_recv(c, buf, size, NULL, SHMQ_FOREVER)) >= 0) {
		if ((size_t)n != size) {
			tool_msg("%s: a message of %zd bytes, expected %zu",
				 queue_path, n, size);
			_exit(EXIT_ERROR);
		}
		received(me, samples, cap, buf);
	}
	if (n != SHMQ_EOF)
		_exit(tool_fail(queue_path, "receive failed", (int)n));
	shmq_consumer_close(c);
	shmq_close(q);
	_exit(EXIT_OK);
}

static void pipe_reader_child(struct shared *sh, uint64_t *samples,
			      const struct bench_opts *o, int fd, size_t size)
{
	char *buf = malloc(size);
	size_t have = 0;
	ssize_t n;

	if (!buf)
		_exit(EXIT_ERROR);
	atomic_store_explicit(&sh->peer[0].ready, 1, memory_order_release);
	for (;;) {
		n = read(fd, buf + have, size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			tool_msg("pipe: read failed: %s", strerror(errno));
			_exit(EXIT_ERROR);
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have < size)
			continue;
		have = 0;
		received(&sh->peer[0], samples, lat_cap(o), buf);
	}
	_exit(have ? EXIT_ERROR : EXIT_OK);
}

/* ---- the parent -------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static const char *path_name(enum path p)
{
	return p == PATH_SHMQ ? "shmq" : "pipe";
}

static void show_progress(const struct bench_opts *o, struct shared *sh,
			  uint32_t n, enum path p, size_t size,
			  uint64_t *last_count, uint64_t *last_ns)
{
	uint64_t count = 0, now = now_ns(), t0;
	uint32_t phase = atomic_load_explicit(&sh->phase, memory_order_relaxed);
	char sz[32], rate[64] = "";

	for (uint32_t i = 0; i < n; i++) {
		uint64_t c = atomic_load_explicit(&sh->peer[i].count,
						  memory_order_relaxed);

		if (o->group || i == 0 || c < count)
			count = o->group ? count + c : c;
	}
	if (phase == 1 && *last_ns && now > *last_ns)
		snprintf(rate, sizeof(rate), ", %.3g M msgs/s",
			 (double)(count - *last_count) / ((now - *last_ns) / 1e3));
	t0 = atomic_load_explicit(&sh->t_start, memory_order_relaxed);
	fmt_bytes((double)size, sz, sizeof(sz));
	fprintf(stderr, "%s%s: %s through %s: %s%s, %.1f s%s",
		o->tty ? "\r" : "", tool_name, sz, path_name(p),
		phase == 0 ? "starting" : phase == 1 ? "throughput" :
		"latency", rate, t0 && now > t0 ? (now - t0) / 1e9 : 0.0,
		o->tty ? "\033[K" : "\n");
	fflush(stderr);
	*last_count = count;
	*last_ns = now;
}

/* A child of the run exited with ST: say why, unless it was cleanly. */
static int child_status(enum path p, int st)
{
	if (WIFSIGNALED(st)) {
		tool_msg("a %s bench process died of signal %d (%s)",
			 path_name(p), WTERMSIG(st), strsignal(WTERMSIG(st)));
		return EXIT_ERROR;
	}
	/* Otherwise it said why on stderr. */
	return WEXITSTATUS(st) ? EXIT_ERROR : EXIT_OK;
}

/*
 * Wait for the children of one run. Returns 0 when all exited 0, else
 * the exit status after reporting; dies of a stop signal (cleaning up).
 */
static int wait_run(const struct bench_opts *o, struct shared *sh,
		    uint32_t n, enum path p, size_t size)
{
	uint64_t deadline = now_ns() + 2 * (uint64_t)o->tput_ns + 60000000000ull;
	uint64_t next_show = now_ns() + PROGRESS_INTERVAL_NS, last_count = 0,
		 last_ns = 0;
	uint32_t left = nkids;
	int st, ret = 0;

	while (left) {
		struct timespec ts = { 0, 20000000 };
		pid_t pid;

		if (got_signal)
			die_of_signal(got_signal);
		pid = waitpid(-1, &st, WNOHANG);
		if (pid < 0 && errno != EINTR)
			break;
		if (pid > 0) {
			for (uint32_t i = 0; i < nkids; i++)
				if (kids[i] == pid)
					kids[i] = 0;
			left--;
			/*
			 * Killed with us (the terminal's ^C, timeout(1)'s
			 * kill of the group): stop too. Our own signal is
			 * already caught by then: the kernel queues it to
			 * every process of the group before any can die of
			 * it, and it is handled before waitpid() returns.
			 * A child killed alone is an error of the run.
			 */
			if (got_signal)
				die_of_signal(got_signal);
			ret = child_status(p, st);
			if (ret)
				break;
			continue;
		}
		if (now_ns() >= deadline) {
			tool_msg("%s: no progress for a minute past the run's end; "
				 "stopped", path_name(p));
			ret = EXIT_ERROR;
			break;
		}
		if (o->progress && now_ns() >= next_show) {
			show_progress(o, sh, n, p, size, &last_count, &last_ns);
			next_show = now_ns() + PROGRESS_INTERVAL_NS;
		}
		nanosleep(&ts, NULL);
	}
	if (o->progress && o->tty) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	kill_kids();
	return ret;
}

/*
 * Consumers attach one after the other: the parent starts the next once
 * the last one is ready. A thousand consumers attaching at once on a few
 * CPUs queue on the slot table's lock, and those preempted longest give
 * up waiting for it (a timed-out attach is an error); and a parent busy
 * forking thousands would not see a stop signal until it is done.
 */
static int wait_ready(struct shared *sh, uint32_t i, enum path p)
{
	uint64_t deadline = now_ns() + 60000000000ull;
	int st;

	while (!atomic_load_explicit(&sh->peer[i].ready, memory_order_acquire)) {
		struct timespec ts = { 0, 50000 };

		if (got_signal)
			die_of_signal(got_signal);
		if (waitpid(kids[i], &st, WNOHANG) == kids[i]) {
			kids[i] = 0;
			if (got_signal)
				die_of_signal(got_signal);
			return child_status(p, st) ? EXIT_ERROR :
			       (tool_msg("a %s consumer exited before it "
					 "attached", path_name(p)), EXIT_ERROR);
		}
		if (now_ns() >= deadline) {
			tool_msg("%s: a consumer did not attach in a minute; "
				 "stopped", path_name(p));
			return EXIT_ERROR;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
}

static pid_t spawn(void)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		tool_msg("fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		kids[nkids++] = pid;
	return pid;
}

/* The queue's ring for messages of SIZE: 1 MiB, or four messages if more. */
static uint64_t ring_bytes(uint64_t size)
{
	uint64_t cap = 1u << 20;

	while (cap < 4 * size)
		cap <<= 1;
	return cap;
}

/*
 * Create the run's queue under a fresh name in DIR: O_EXCL (inside
 * shmq_create) never touches an existing file; a taken name is retried
 * with another. Stop signals are held meanwhile so that a queue is never
 * created without the cleanup knowing its name.
 */
static int create_queue(const struct bench_opts *o, size_t size)
{
	struct shmq_config cfg = { 0 };
	sigset_t stop, old;
	uint64_t rnd;
	int r = -EEXIST;

	cfg.capacity = ring_bytes(size);
	cfg.max_message = (uint32_t)size;
	/* A group takes a slot of its own besides its members'. */
	if (o->consumers + o->group > 64)
		cfg.slots = o->consumers + o->group;
	stop = caught;
	for (int i = 0; i < 100 && r == -EEXIST; i++) {
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)i;
		sigprocmask(SIG_BLOCK, &stop, &old);
		/* Cut short, the name would be another, and predictable. */
		if (snprintf(queue_path, sizeof(queue_path),
			     "%s/shmq-bench-%d-%016" PRIx64 ".q", o->dir,
			     (int)getpid(), rnd) >= (int)sizeof(queue_path))
			r = -ENAMETOOLONG;
		else
			r = shmq_create(queue_path, &cfg);
		have_queue = r == 0;
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	if (r == 0)
		return 0;
	if (r == -ENOSPC || r == -EDQUOT)
		tool_msg("%s: no space for a %s queue of %" PRIu64 " bytes%s%s",
			 o->dir, r == -ENOSPC ? "temporary" : "(quota)",
			 (uint64_t)cfg.capacity,
			 shmq_errdetail() ? ": " : "",
			 shmq_errdetail() ? shmq_errdetail() : "");
	else if (r == -ENAMETOOLONG)
		/* The reason first: a path this long fills the message. */
		tool_msg("cannot create a temporary queue: the directory's "
			 "path is too long (%zu bytes) for a file in it: %s",
			 strlen(o->dir), o->dir);
	else
		tool_fail(o->dir, "cannot create a temporary queue there", r);
	return EXIT_ERROR;
}

static void percentiles(uint64_t *v, uint64_t n, struct result *res)
{
	res->nsamples = n;
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_u64);
	res->p50 = v[(n - 1) / 2];
	res->p99 = v[(n - 1) * 99 / 100];
}

static int run(const struct bench_opts *o, enum path p, size_t size,
	       struct result *res)
{
	uint32_t n = p == PATH_SHMQ ? o->consumers : 1;
	size_t cap = (size_t)lat_cap(o);
	size_t shlen = sizeof(struct shared) + n * sizeof(struct peer);
	size_t slen = n * cap * sizeof(uint64_t);
	struct shared *sh;
	uint64_t *samples;
	int fds[2] = { -1, -1 }, r;
	pid_t pid, parent = getpid();
	uint64_t total = 0;

	memset(res, 0, sizeof(*res));
	sh = mmap(NULL, shlen, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	samples = mmap(NULL, slen, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sh == MAP_FAILED || samples == MAP_FAILED) {
		tool_msg("cannot map the shared counters: %s", strerror(errno));
		return EXIT_ERROR;
	}
	if (p == PATH_SHMQ) {
		r = create_queue(o, size);
		if (r)
			goto out;
	} else if (pipe2(fds, O_CLOEXEC) < 0) {
		tool_msg("pipe: %s", strerror(errno));
		r = EXIT_ERROR;
		goto out;
	}
	r = EXIT_ERROR;
	for (uint32_t i = 0; i < n; i++) {
		pid = spawn();
		if (pid < 0)
			goto fail;
		if (pid == 0) {
			child_setup(parent);
			if (p == PATH_PIPE) {
				close(fds[1]);
				pipe_reader_child(sh, samples, o, fds[0], size);
			}
			shmq_consumer_child(sh, samples, o, i, size);
		}
		if (wait_ready(sh, i, p))
			goto fail;
	}
	pid = spawn();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		child_setup(parent);
		if (p == PATH_PIPE) {
			int ret;

			close(fds[0]);
			ret = produce(sh, o, 1, size, send_pipe, &fds[1]);
			_exit(ret < 0 ? EXIT_ERROR : EXIT_OK);
		}
		shmq_producer_child(sh, o, size);
	}
	if (fds[0] >= 0) {
		close(fds[0]);
		close(fds[1]);
		fds[0] = fds[1] = -1;
	}
	r = wait_run(o, sh, n, p, size);
	if (r)
		goto out;
	{
		uint64_t t0 = atomic_load(&sh->t_start),
			 t1 = atomic_load(&sh->t_end),
			 sent = atomic_load(&sh->sent);
		double secs = t1 > t0 ? (t1 - t0) / 1e9 : 0;

		res->msgs = sent;
		res->msgs_s = secs > 0 ? sent / secs : 0;
		res->gb_s = res->msgs_s * (double)size / 1e9;
	}
	/* The samples, packed to the front, in one sorted array. */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = atomic_load_explicit(&sh->peer[i].nsamples,
						  memory_order_acquire);

		if (k > cap)
			k = (uint32_t)cap;
		memmove(samples + total, samples + (size_t)i * cap,
			k * sizeof(uint64_t));
		total += k;
	}
	percentiles(samples, total, res);
	r = EXIT_OK;
	goto out;
fail:
	kill_kids();
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	remove_queue();
	munmap(sh, shlen);
	munmap(samples, slen);
	return r;
}

/* ---- output ------------------------------------------------------------ */

static const char *fs_name(const char *dir, char *buf, size_t cap)
{
	struct statfs sf;

	if (statfs(dir, &sf) < 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0x01021994: return "tmpfs";
	case 0x858458f6: return "ramfs";
	case 0xef53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683e: return "btrfs";
	case 0x794c7630: return "overlayfs";
	}
	snprintf(buf, cap, "filesystem 0x%lx", (unsigned long)sf.f_type);
	return buf;
}

static void print_json_string(const char *s)
{
	putchar('"');
	tool_fputs_escaped(s, TOOL_ESC_JSON, stdout);
	putchar('"');
}

static void print_json_result(const char *name, const struct result *r)
{
	printf("\"%s\": {\"msgs_per_s\": %.1f, \"gb_per_s\": %.6f, "
	       "\"messages\": %" PRIu64 ", \"p50_ns\": %" PRIu64 ", "
	       "\"p99_ns\": %" PRIu64 ", \"latency_samples\": %" PRIu64 "}",
	       name, r->msgs_s, r->gb_s, r->msgs, r->p50, r->p99, r->nsamples);
}

static void print_results(const struct bench_opts *o, const struct result *sq,
			  const struct result *pp)
{
	char fsb[64];
	const char *fs = fs_name(o->dir, fsb, sizeof(fsb));

	if (o->json) {
		printf("{\"dir\": ");
		print_json_string(o->dir);
		printf(", \"filesystem\": ");
		print_json_string(fs);
		printf(", \"consumers\": %u, \"kind\": \"%s\", \"seconds\": %.3f, "
		       "\"pipe_readers\": 1, \"results\": [", o->consumers,
		       o->group ? "group" : "broadcast", o->tput_ns / 1e9);
		for (int i = 0; i < o->nsizes; i++) {
			printf("%s{\"size\": %" PRIu64 ", ", i ? ", " : "",
			       o->sizes[i]);
			print_json_result("shmq", &sq[i]);
			printf(", ");
			print_json_result("pipe", &pp[i]);
			printf(", \"ratio\": %.3f}", pp[i].msgs_s > 0 ?
			       sq[i].msgs_s / pp[i].msgs_s : 0.0);
		}
		printf("]}\n");
		return;
	}
	printf("shmq bench: queue in ");
	tool_fputs_escaped(o->dir, TOOL_ESC_TEXT, stdout);
	printf(" (%s), 1 producer, %u %s; pipe: 1 writer, 1 reader; "
	       "%.3g s per size and path\n", fs, o->consumers,
	       o->group ? (o->consumers == 1 ? "group member" : "group members") :
	       (o->consumers == 1 ? "consumer" : "consumers"), o->tput_ns / 1e9);
	printf("%10s  %-5s %14s %10s %10s %10s\n", "size", "path", "msgs/s",
	       "GB/s", "p50 ns", "p99 ns");
	for (int i = 0; i < o->nsizes; i++) {
		const struct result *r[2] = { &sq[i], &pp[i] };

		for (int k = 0; k < 2; k++)
			printf("%10" PRIu64 "  %-5s %14.0f %10.3f %10" PRIu64
			       " %10" PRIu64 "\n", o->sizes[i], k ? "pipe" : "shmq",
			       r[k]->msgs_s, r[k]->gb_s, r[k]->p50, r[k]->p99);
		printf("%10" PRIu64 "  %-5s %13.2fx  (shmq msgs/s over pipe "
		       "msgs/s)\n", o->sizes[i], "ratio", pp[i].msgs_s > 0 ?
		       sq[i].msgs_s / pp[i].msgs_s : 0.0);
	}
	if (o->consumers > 1 && !o->group)
		printf("msgs/s is per consumer: each of the %u consumers got "
		       "every message\n", o->consumers);
	else if (o->group)
		printf("msgs/s is the group's: its %u members share the "
		       "messages\n", o->consumers);
}

/* ---- options ----------------------------------------------------------- */

static int parse_sizes(const char *s, struct bench_opts *o)
{
	char *copy = strdup(s), *tok, *save = NULL;
	int r = 0;

	if (!copy)
		return tool_msg("out of memory"), EXIT_ERROR;
	o->nsizes = 0;
	for (tok = strtok_r(copy, ",", &save); tok && !r;
	     tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (o->nsizes == BENCH_MAX_SIZES) {
			r = tool_usage_error("--size: at most %d sizes",
					     BENCH_MAX_SIZES);
			break;
		}
		if (parse_size("--size", tok, &v)) {
			r = EXIT_USAGE;
			break;
		}
		if (v < BENCH_MIN_SIZE || v > BENCH_MAX_SIZE) {
			r = tool_usage_error("--size: invalid value '%s': %u "
					     "bytes to 64M (a message carries a "
					     "%u-byte sequence and time)", tok,
					     BENCH_MIN_SIZE, BENCH_HDR);
			break;
		}
		o->sizes[o->nsizes++] = v;
	}
	if (!r && o->nsizes == 0)
		r = tool_usage_error("--size: no size in '%s'", s);
	free(copy);
	return r;
}

static int parse_count(const char *opt, const char *s, uint32_t *out,
		       bool group)
{
	if (parse_u32(opt, s, out))
		return EXIT_USAGE;
	if (*out == 0)
		return tool_usage_error("%s: invalid value '%s': at least 1",
					opt, s);
	/* A group takes a slot of its own besides its members'. */
	if (*out > SHMQ_MAX_SLOTS - group)
		return tool_usage_error("%s: %s consumers, but a queue has at "
					"most %u consumer slots%s", opt, s,
					SHMQ_MAX_SLOTS, group ?
					" (one of them the group's own)" : "");
	return 0;
}

/*
 * Each consumer copies into a buffer of the largest size (and touches all
 * of it), and the ring, 4 such messages at least, sits in DIR (/dev/shm by
 * default: memory too). A run that needs more than half of this machine's
 * memory is refused before it forks, rather than left to swap or to the
 * OOM killer (4096 consumers of 64M would need 256 GiB).
 */
static int check_memory(const struct bench_opts *o)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t max = 0, need, phys;
	char a[32], b[32], c[32];

	for (int i = 0; i < o->nsizes; i++)
		if (o->sizes[i] > max)
			max = o->sizes[i];
	/* + 1: the producer's buffer (the pipe's reader has one, too). */
	need = ((uint64_t)o->consumers + 1) * max + ring_bytes(max);
	if (pages <= 0 || psz <= 0)
		return 0;
	phys = (uint64_t)pages * (uint64_t)psz;
	if (need <= phys / 2)
		return 0;
	return tool_usage_error("--consumers %u with --size %s: about %s of "
				"memory (a buffer per consumer, and the ring), "
				"more than half of this machine's %s",
				o->consumers,
				fmt_bytes((double)max, a, sizeof(a)),
				fmt_bytes((double)need, b, sizeof(b)),
				fmt_bytes((double)phys, c, sizeof(c)));
}

static const char *default_dir(void)
{
	struct stat st;
	const char *t = getenv("TMPDIR");

	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
		return "/dev/shm";
	return t && *t ? t : "/tmp";
}

/* A directory we can create files in; the error said otherwise. */
static int check_dir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		tool_msg("%s: cannot use the directory: %s", dir,
			 strerror(errno));
		return EXIT_ERROR;
	}
	if (!S_ISDIR(st.st_mode)) {
		tool_msg("%s: not a directory", dir);
		return EXIT_ERROR;
	}
	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0) {
		tool_msg("%s: cannot create files in this directory: %s", dir,
			 strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "consumers", required_argument, NULL, 'c' },
		{ "group", required_argument, NULL, 'g' },
		{ "seconds", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "progress", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct bench_opts o = {
		.sizes = { 64, 65536 },
		.nsizes = 2,
		.consumers = 1,
		.tput_ns = 1000000000,
	};
	struct result *sq, *pp;
	struct sigaction sa;
	bool have_c = false, have_g = false;
	int c, r;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			return fputs(bench_usage, stdout), EXIT_OK;
		case 'V':
			return cmd_version();
		case 's':
			if ((r = parse_sizes(optarg, &o)))
				return r;
			break;
		case 'c':
		case 'g':
			if ((r = parse_count(c == 'c' ? "--consumers" : "--group",
					     optarg, &o.consumers, c == 'g')))
				return r;
			*(c == 'c' ? &have_c : &have_g) = true;
			o.group = c == 'g';
			break;
		case 't':
			if (parse_seconds("--seconds", optarg, &o.tput_ns))
				return EXIT_USAGE;
			if (o.tput_ns < 10000000 || o.tput_ns > 3600000000000ll)
				return tool_usage_error("--seconds: invalid value "
							"'%s': 0.01 to 3600",
							optarg);
			break;
		case 'j':
			o.json = true;
			break;
		case 'p':
			o.progress = true;
			break;
		default:
			return tool_getopt_error(c, argv);
		}
	}
	if (have_c && have_g)
		return tool_usage_error("--consumers and --group exclude each "
					"other (--group N: a group of N)");
	if (optind + 1 < argc)
		return tool_usage_error("unexpected argument '%s'",
					argv[optind + 1]);
	if ((r = check_memory(&o)) != 0)
		return r;
	o.dir = optind < argc ? argv[optind] : default_dir();
	o.tty = isatty(STDERR_FILENO);
	o.progress = o.progress || o.tty;
	r = check_dir(o.dir);
	if (r)
		return r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: waits end early */
	sigemptyset(&sa.sa_mask);
	sigemptyset(&caught);
	for (size_t i = 0; i < NSTOP; i++) {
		struct sigaction old;

		if (stop_signals[i] != SIGINT && stop_signals[i] != SIGTERM &&
		    sigaction(stop_signals[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		sigaction(stop_signals[i], &sa, NULL);
		sigaddset(&caught, stop_signals[i]);
	}
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
		struct sigaction old;

		if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
		    sigaction(sig, &sa, NULL) == 0)
			sigaddset(&caught, sig);
	}

	sq = calloc((size_t)o.nsizes, sizeof(*sq));
	pp = calloc((size_t)o.nsizes, sizeof(*pp));
	if (!sq || !pp)
		return tool_msg("out of memory"), EXIT_ERROR;
	for (int i = 0; i < o.nsizes; i++) {
		/* shmq first, then the pipe: the same minutes for both. */
		r = run(&o, PATH_SHMQ, o.sizes[i], &sq[i]);
		if (!r)
			r = run(&o, PATH_PIPE, o.sizes[i], &pp[i]);
		if (got_signal)
			die_of_signal(got_signal);
		if (r) {
			free(sq);
			free(pp);
			return r;
		}
	}
	print_results(&o, sq, pp);
	free(sq);
	free(pp);
	return EXIT_OK;
}
