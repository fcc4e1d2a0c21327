/* SPDX-License-Identifier: MIT */
/*
 * Baselines shmq is measured against, one configuration per invocation,
 * producer and consumer in separate forked processes:
 *   bench_base tput pipe|fifo|sock|mq|ring|memcpy|crc32c|crc32c3 SIZE
 *   bench_base lat cacheline|futex|futexwake
 * Prints one result line (see bench.h) and never judges the numbers.
 */
#include "bench.h"

#include <fcntl.h>
#include <mqueue.h>
#include <sys/socket.h>
#include <sys/stat.h>

static struct ctl *ctl;
static uint64_t dur_ns;

/* ---- byte streams: pipe, FIFO, socketpair -------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Returns 1 for a whole message, 0 at EOF, -1 on error. */
static int read_msg(int fd, char *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);

		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 1;
}

/*
 * The producer writes one message per write(); the consumer reads exactly
 * one message per read loop, as a program that uses the stream as a
 * message transport must (it cannot know what the next write holds).
 */
static void stream_producer(int fd, size_t size)
{
	char *buf = calloc(1, size);
	uint64_t n = 0, every = clock_every(size), t0, end;

	maybe_pin(0);
	ctl_wait_ready(ctl, 1);
	t0 = now_ns();
	end = t0 + dur_ns;
	atomic_store(&ctl->t_start, t0);
	for (;;) {
		if (size >= 8)
			memcpy(buf, &n, 8);
		if (write_all(fd, buf, size))
			die("write");
		if (++n % every == 0 && now_ns() >= end)
			break;
	}
	atomic_store(&ctl->sent, n);
	close(fd);
	exit(0);
}

static void stream_consumer(int fd, size_t size)
{
	char *buf = malloc(size);
	uint64_t n = 0;
	int r;

	maybe_pin(1);
	atomic_fetch_add(&ctl->ready, 1);
	while ((r = read_msg(fd, buf, size)) == 1)
		n++;
	if (r < 0)
		die("read");
	ctl_consumer_done(ctl, n);
	exit(0);
}

static void tput_stream(const char *kind, size_t size)
{
	int fd[2], rfd, wfd;
	char path[64] = "";

	if (!strcmp(kind, "pipe")) {
		if (pipe(fd))
			die("pipe");
		rfd = fd[0];
		wfd = fd[1];
	} else if (!strcmp(kind, "sock")) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd))
			die("socketpair");
		rfd = fd[0];
		wfd = fd[1];
	} else {
		snprintf(path, sizeof(path), "/tmp/shmq-bench-fifo.%d",
			 (int)getpid());
		unlink(path);
		if (mkfifo(path, 0600))
			die("mkfifo");
		rfd = wfd = -1;
	}
	if (fork() == 0) {
		if (path[0] && (rfd = open(path, O_RDONLY)) < 0)
			die("open fifo");
		if (wfd >= 0)
			close(wfd);
		stream_consumer(rfd, size);
	}
	if (fork() == 0) {
		if (path[0] && (wfd = open(path, O_WRONLY)) < 0)
			die("open fifo");
		if (rfd >= 0)
			close(rfd);
		stream_producer(wfd, size);
	}
	if (rfd >= 0)
		close(rfd);
	if (wfd >= 0)
		close(wfd);
	if (wait_children())
		exit(2);
	if (path[0])
		unlink(path);
	print_tput(kind, size, 1, atomic_load(&ctl->received),
		   atomic_load(&ctl->t_end) - atomic_load(&ctl->t_start));
}

/* ---- POSIX message queue ------------------------------------------- */

static long proc_long(const char *path, long dflt)
{
	FILE *f = fopen(path, "r");
	long v = dflt;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

static void tput_mq(size_t size)
{
	long max = proc_long("/proc/sys/fs/mqueue/msgsize_max", 8192);
	struct mq_attr attr = { .mq_maxmsg = 10, .mq_msgsize = (long)size };
	char name[64];
	mqd_t mq;

	if ((long)size > max) {
		/* run.sh prints why this size has no POSIX mq figure. */
		printf("skip,mq,%zu,1,msgsize_max=%ld,,\n", size, max);
		return;
	}
	attr.mq_maxmsg = proc_long("/proc/sys/fs/mqueue/msg_max", 10);
	snprintf(name, sizeof(name), "/shmq-bench.%d", (int)getpid());
	mq_unlink(name);
	mq = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
	if (mq == (mqd_t)-1)
		die("mq_open");
	mq_unlink(name);	/* the descriptors keep it alive */

	if (fork() == 0) {
		char *buf = malloc(size);
		uint64_t n = 0;
		ssize_t r;

		maybe_pin(1);
		atomic_fetch_add(&ctl->ready, 1);
		/* A zero-length message is the end marker. */
		while ((r = mq_receive(mq, buf, size, NULL)) > 0)
			n++;
		if (r < 0)
			die("mq_receive");
		ctl_consumer_done(ctl, n);
		exit(0);
	}
	if (fork() == 0) {
		char *buf = calloc(1, size);
		uint64_t n = 0, every = clock_every(size), t0, end;

		maybe_pin(0);
		ctl_wait_ready(ctl, 1);
		t0 = now_ns();
		end = t0 + dur_ns;
		atomic_store(&ctl->t_start, t0);
		for (;;) {
			if (size >= 8)
				memcpy(buf, &n, 8);
			if (mq_send(mq, buf, size, 0))
				die("mq_send");
			if (++n % every == 0 && now_ns() >= end)
				break;
		}
		if (mq_send(mq, buf, 0, 0))
			die("mq_send");
		exit(0);
	}
	mq_close(mq);
	if (wait_children())
		exit(2);
	print_tput("mq", size, 1, atomic_load(&ctl->received),
		   atomic_load(&ctl->t_end) - atomic_load(&ctl->t_start));
}

/* ---- reference ring: the limit line -------------------------------- */

/*
 * The least a shared-memory queue can do: fixed 64-byte slots, no header,
 * no framing, no wakeups, one consumer; a message of more than 64 bytes
 * takes consecutive slots. Both sides spin and cache the other's index,
 * and the consumer copies each message out, as shmq_recv() does. Waits
 * go through spin_wait(), which yields now and then so that on two busy
 * vCPUs the limit line does not measure the scheduler.
 */
struct ref_ring {
	_Alignas(CACHELINE) _Atomic uint64_t head;	/* producer writes */
	_Atomic uint32_t closed;
	_Alignas(CACHELINE) _Atomic uint64_t tail;	/* consumer writes */
	_Alignas(CACHELINE) char slots[];
};

static void ring_copy_in(struct ref_ring *r, uint64_t nslots, uint64_t pos,
			 const char *src, size_t size)
{
	size_t off = (size_t)(pos % nslots) * CACHELINE;
	size_t room = (size_t)nslots * CACHELINE - off;

	if (size <= room) {
		memcpy(r->slots + off, src, size);
	} else {
		memcpy(r->slots + off, src, room);
		memcpy(r->slots, src + room, size - room);
	}
}

static void ring_copy_out(struct ref_ring *r, uint64_t nslots, uint64_t pos,
			  char *dst, size_t size)
{
	size_t off = (size_t)(pos % nslots) * CACHELINE;
	size_t room = (size_t)nslots * CACHELINE - off;

	if (size <= room) {
		memcpy(dst, r->slots + off, size);
	} else {
		memcpy(dst, r->slots + off, room);
		memcpy(dst + room, r->slots, size - room);
	}
}

/* Same ring size as the shmq runs: 1 MiB, or four messages if larger. */
static size_t ring_bytes(size_t size)
{
	size_t b = 1u << 20;

	while (b < 4 * size)
		b <<= 1;
	return b;
}

static void tput_ring(size_t size)
{
	uint64_t nslots = ring_bytes(size) / CACHELINE;
	uint64_t need = (size + CACHELINE - 1) / CACHELINE;
	struct ref_ring *r;

	if (need == 0)
		need = 1;
	r = shared_alloc(sizeof(*r) + nslots * CACHELINE);

	if (fork() == 0) {
		char *buf = malloc(size);
		uint64_t pos = 0, head = 0, n = 0, idle = 0;

		maybe_pin(1);
		atomic_fetch_add(&ctl->ready, 1);
		for (;;) {
			if (pos == head) {
				/* A1 pairs with R1: slots visible before head. */
				head = atomic_load_explicit(&r->head,
							    memory_order_acquire);
				if (pos == head) {
					if (atomic_load_explicit(&r->closed,
						memory_order_acquire) &&
					    atomic_load_explicit(&r->head,
						memory_order_acquire) == pos)
						break;
					spin_wait(&idle);
					continue;
				}
			}
			ring_copy_out(r, nslots, pos, buf, size);
			pos += need;
			n++;
			/* R2 pairs with A2: our reads done before reuse. */
			atomic_store_explicit(&r->tail, pos,
					      memory_order_release);
		}
		clobber(buf);
		ctl_consumer_done(ctl, n);
		exit(0);
	}
	if (fork() == 0) {
		char *buf = calloc(1, size);
		uint64_t pos = 0, tail = 0, n = 0, every = clock_every(size);
		uint64_t t0, end, idle = 0;

		maybe_pin(0);
		ctl_wait_ready(ctl, 1);
		t0 = now_ns();
		end = t0 + dur_ns;
		atomic_store(&ctl->t_start, t0);
		for (;;) {
			while (pos + need - tail > nslots) {
				/* A2 pairs with R2. */
				tail = atomic_load_explicit(&r->tail,
							    memory_order_acquire);
				if (pos + need - tail <= nslots)
					break;
				spin_wait(&idle);
			}
			if (size >= 8)
				memcpy(buf, &n, 8);
			ring_copy_in(r, nslots, pos, buf, size);
			pos += need;
			/* R1 pairs with A1 in the consumer. */
			atomic_store_explicit(&r->head, pos,
					      memory_order_release);
			if (++n % every == 0 && now_ns() >= end)
				break;
		}
		atomic_store_explicit(&r->closed, 1, memory_order_release);
		exit(0);
	}
	if (wait_children())
		exit(2);
	print_tput("ring", size, 1, atomic_load(&ctl->received),
		   atomic_load(&ctl->t_end) - atomic_load(&ctl->t_start));
}

/* ---- memcpy: one core, cache-hot source and destination ------------ */

static void tput_memcpy(size_t size)
{
	char *src = malloc(size), *dst = malloc(size);
	uint64_t n = 0, every = clock_every(size), t0, t1;

	memset(src, 1, size);
	memset(dst, 2, size);
	t0 = now_ns();
	for (;;) {
		memcpy(dst, src, size);
		clobber(dst);
		if (++n % every == 0 && (t1 = now_ns()) - t0 >= dur_ns)
			break;
	}
	print_tput("memcpy", size, 1, n, t1 - t0);
}

/*
 * ---- CRC32C: what a per-record checksum costs on one core -----------
 * "crc32c" is the plain loop of the SSE4.2 instruction (one 8-byte step
 * per 3-cycle latency); "crc32c3" runs three independent streams over
 * the thirds of the buffer, the throughput a combined 3-way CRC reaches
 * before its (small, constant) combine step.
 */
#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint64_t crc_serial(uint64_t c, const char *p, size_t len)
{
	uint64_t w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	for (; len; p++, len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, (unsigned char)*p);
	return c;
}

__attribute__((target("sse4.2")))
static uint64_t crc_3way(const char *p, size_t len)
{
	size_t third = len / 24 * 8, i;
	uint64_t a = ~0u, b = ~0u, c = ~0u, x, y, z;

	for (i = 0; i < third; i += 8) {
		memcpy(&x, p + i, 8);
		memcpy(&y, p + third + i, 8);
		memcpy(&z, p + 2 * third + i, 8);
		a = __builtin_ia32_crc32di(a, x);
		b = __builtin_ia32_crc32di(b, y);
		c = __builtin_ia32_crc32di(c, z);
	}
	return crc_serial(a ^ b ^ c, p + 3 * third, len - 3 * third);
}

static void tput_crc(const char *kind, size_t size)
{
	char *src = malloc(size);
	uint64_t n = 0, every = clock_every(size), t0, t1, acc = 0;
	int three = !strcmp(kind, "crc32c3");

	memset(src, 1, size);
	t0 = now_ns();
	for (;;) {
		acc += three ? crc_3way(src, size) : crc_serial(~0u, src, size);
		if (++n % every == 0 && (t1 = now_ns()) - t0 >= dur_ns)
			break;
	}
	clobber(&acc);
	print_tput(kind, size, 1, n, t1 - t0);
}
#else
static void tput_crc(const char *kind, size_t size)
{
	printf("skip,%s,%zu,1,not x86-64,,\n", kind, size);
}
#endif

/* ---- latency: cache-line and futex ping-pong ----------------------- */

#define MAX_SAMPLES (4u << 20)
#define WARMUP 200
#define MIN_SAMPLES 1000

struct pingpong {
	_Alignas(CACHELINE) _Atomic uint32_t ping;	/* initiator writes */
	_Alignas(CACHELINE) _Atomic uint32_t pong;	/* responder writes */
	_Alignas(CACHELINE) _Atomic uint32_t turn;	/* futex word */
	_Atomic uint32_t stop;
};

/*
 * One round trip per sample; one-way is half of it, which is what the
 * issue's targets compare against.
 */
static void lat_pingpong(const char *kind)
{
	struct pingpong *pp = shared_alloc(sizeof(*pp));
	int futex_mode = !strcmp(kind, "futex");

	if (fork() == 0) {
		pin_pingpong(1);
		if (!futex_mode) {
			uint64_t polls = 0;
			uint32_t i = 0;

			for (;;) {
				uint32_t v;

				while ((v = atomic_load_explicit(&pp->ping,
					memory_order_acquire)) == i)
					spin_wait(&polls);
				if (v == UINT32_MAX)
					exit(0);
				i = v;
				atomic_store_explicit(&pp->pong, i,
						      memory_order_release);
			}
		}
		for (;;) {
			while (atomic_load(&pp->turn) == 0)
				futex(&pp->turn, FUTEX_WAIT, 0, NULL);
			if (atomic_load(&pp->stop))
				exit(0);
			atomic_store(&pp->turn, 0);
			futex(&pp->turn, FUTEX_WAKE, 1, NULL);
		}
	}
	if (fork() == 0) {
		uint64_t *v = malloc(MAX_SAMPLES * sizeof(*v));
		double tpn;
		uint64_t end, n = 0, polls = 0;
		uint32_t i;

		pin_pingpong(0);
		tpn = ticks_per_ns();
		end = now_ns() + dur_ns;
		for (i = 1; n < MAX_SAMPLES; i++) {
			uint64_t t0 = ticks(), t1;

			if (futex_mode) {
				atomic_store(&pp->turn, 1);
				futex(&pp->turn, FUTEX_WAKE, 1, NULL);
				while (atomic_load(&pp->turn) == 1)
					futex(&pp->turn, FUTEX_WAIT, 1, NULL);
			} else {
				atomic_store_explicit(&pp->ping, i,
						      memory_order_release);
				while (atomic_load_explicit(&pp->pong,
					memory_order_acquire) != i)
					spin_wait(&polls);
			}
			t1 = ticks();
			if (i > WARMUP)
				v[n++] = (uint64_t)((double)(t1 - t0) / tpn / 2);
			/* A loaded machine can make a round trip a time
			 * slice long: keep MIN_SAMPLES, up to 10x the run. */
			if ((i & 63) == 0 && now_ns() >= end &&
			    (n >= MIN_SAMPLES || now_ns() >= end + 9 * dur_ns))
				break;
		}
		if (futex_mode) {
			atomic_store(&pp->stop, 1);
			atomic_store(&pp->turn, 1);
			futex(&pp->turn, FUTEX_WAKE, 1, NULL);
		} else {
			atomic_store(&pp->ping, UINT32_MAX);
		}
		print_lat(futex_mode ? "futex-pingpong" : "cacheline-pingpong",
			  futex_mode ? 4 : 64, v, n);
		exit(0);
	}
	if (wait_children())
		exit(2);
}

/*
 * The kernel part of waking a sleeper, measured as shmq_sleep measures
 * its sleeping consumer: the waker pauses BENCH_GAP_US (200 us) so that
 * the waiter is asleep, then stamps CLOCK_MONOTONIC, bumps the futex word
 * and wakes it; the waiter takes one-way time from the stamp.
 */
static void lat_futex_wake(void)
{
	struct pingpong *pp = shared_alloc(sizeof(*pp));
	_Atomic uint64_t *stamp = &ctl->stamp;
	const char *g = getenv("BENCH_GAP_US");
	long gap_us = g ? atol(g) : 200;

	if (fork() == 0) {
		uint64_t *v = malloc(MAX_SAMPLES * sizeof(*v)), n = 0;
		uint32_t seen = 0, w;

		pin_pingpong(1);
		atomic_fetch_add(&ctl->ready, 1);
		for (;;) {
			while ((w = atomic_load(&pp->turn)) == seen)
				futex(&pp->turn, FUTEX_WAIT, seen, NULL);
			/* The stamp was stored before the word: seq_cst. */
			if (w > 20 && n < MAX_SAMPLES)
				v[n++] = now_ns() - atomic_load(stamp);
			seen = w;
			if (atomic_load(&pp->stop))
				break;
		}
		print_lat("futex-wake", 4, v, n);
		exit(0);
	}
	if (fork() == 0) {
		struct timespec ts = { 0, gap_us * 1000 };
		uint64_t end;
		uint32_t i;

		pin_pingpong(0);
		ctl_wait_ready(ctl, 1);
		end = now_ns() + 2 * dur_ns;
		for (i = 1; now_ns() < end; i++) {
			nanosleep(&ts, NULL);
			atomic_store(stamp, now_ns());
			atomic_store(&pp->turn, i);
			futex(&pp->turn, FUTEX_WAKE, 1, NULL);
		}
		nanosleep(&ts, NULL);
		atomic_store(&pp->stop, 1);
		atomic_store(stamp, now_ns());
		atomic_store(&pp->turn, i);
		futex(&pp->turn, FUTEX_WAKE, 1, NULL);
		exit(0);
	}
	if (wait_children())
		exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_base tput pipe|fifo|sock|mq|ring|memcpy|crc32c|crc32c3 SIZE\n"
		"       bench_base lat cacheline|futex|futexwake\n"
		"env: BENCH_TIME seconds per run (0.25), BENCH_PIN=1\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t size;

	if (argc < 3)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	dur_ns = run_ns();
	ctl = shared_alloc(sizeof(*ctl));
	if (!strcmp(argv[1], "lat")) {
		if (!strcmp(argv[2], "futexwake"))
			lat_futex_wake();
		else if (!strcmp(argv[2], "cacheline") ||
			 !strcmp(argv[2], "futex"))
			lat_pingpong(argv[2]);
		else
			usage();
		return 0;
	}
	if (strcmp(argv[1], "tput") || argc < 4)
		usage();
	size = parse_size(argv[3]);
	if (size == 0)
		usage();
	if (!strcmp(argv[2], "pipe") || !strcmp(argv[2], "fifo") ||
	    !strcmp(argv[2], "sock"))
		tput_stream(argv[2], size);
	else if (!strcmp(argv[2], "mq"))
		tput_mq(size);
	else if (!strcmp(argv[2], "ring"))
		tput_ring(size);
	else if (!strcmp(argv[2], "memcpy"))
		tput_memcpy(size);
	else if (!strcmp(argv[2], "crc32c") || !strcmp(argv[2], "crc32c3"))
		tput_crc(argv[2], size);
	else
		usage();
	return 0;
}
