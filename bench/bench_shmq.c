/* SPDX-License-Identifier: MIT */
/*
 * shmq measured the way bench_base measures the baselines: one
 * configuration per invocation, producer and consumers in separate forked
 * processes attached by path, one result line out.
 *   bench_shmq tput copy|zc|batch|defer SIZE [CONSUMERS [group]]
 *   bench_shmq lat spin|sleep
 *   bench_shmq mem RINGSIZE
 *   bench_shmq idle
 */
#include "bench.h"

#include <shmq.h>
#include <sys/resource.h>

static struct ctl *ctl;
static uint64_t dur_ns;
static char qdir[256];

#define BATCH_MAX 64

static void check(int err, const char *what)
{
	if (err < 0) {
		fprintf(stderr, "bench: %s: %s (%s)\n", what,
			shmq_strerror(err), shmq_errdetail());
		exit(2);
	}
}

/* Queue files go to tmpfs so that page writeback is not measured. */
static void make_qdir(void)
{
	const char *base = getenv("BENCH_DIR");

	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(qdir, sizeof(qdir), "%s/shmq-bench.XXXXXX", base);
	if (!mkdtemp(qdir))
		die("mkdtemp");
}

static void qpath(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", qdir, name);
}

static void cleanup(const char *path)
{
	unlink(path);
	rmdir(qdir);
}

/* Same geometry as the reference ring: 1 MiB, or four messages if larger. */
static void make_queue(const char *path, size_t size, uint64_t capacity)
{
	struct shmq_config cfg = { 0 };

	if (!capacity) {
		capacity = 1u << 20;
		while (capacity < 4 * size)
			capacity <<= 1;
	}
	cfg.capacity = capacity;
	cfg.max_message = size < 64 ? 64 : (uint32_t)size;
	unlink(path);
	check(shmq_create(path, &cfg), "shmq_create");
}

static struct shmq *attach(const char *path)
{
	struct shmq *q;

	check(shmq_open(path, 0, NULL, &q), "shmq_open");
	return q;
}

/* ---- throughput ---------------------------------------------------- */

static void touch_lines(const void *p, size_t len)
{
	const volatile char *c = p;
	size_t i;

	/* One read per cache line: the data crosses to this core without a
	 * copy, as a consumer that parses in place would make it. */
	for (i = 0; i < len; i += CACHELINE)
		(void)c[i];
	if (len)
		(void)c[len - 1];
}

static void consumer(const char *path, const char *api, size_t size, int cpu,
		     int group)
{
	struct shmq_consumer_opts opts = {
		.kind = group ? SHMQ_CONSUMER_GROUP : SHMQ_CONSUMER_BROADCAST,
		.name = group ? "bench" : NULL,
	};
	struct shmq *q = attach(path);
	struct shmq_consumer *c;
	struct shmq_msg m;
	char *buf = malloc(size ? size : 1);
	uint64_t n = 0;
	int zc = !strcmp(api, "zc");
	ssize_t r;

	maybe_pin(cpu);
	check(shmq_consumer_open(q, &opts, &c), "shmq_consumer_open");
	atomic_fetch_add(&ctl->ready, 1);
	for (;;) {
		if (zc) {
			r = shmq_peek(c, &m, SHMQ_FOREVER);
			if (r < 0)
				break;
			touch_lines(m.data, m.len);
			shmq_release(c);
		} else {
			r = shmq_recv(c, buf, size, NULL, SHMQ_FOREVER);
			if (r < 0)
				break;
		}
		n++;
	}
	if (r != SHMQ_EOF)
		check((int)r, "recv");
	clobber(buf);
	ctl_consumer_done(ctl, n);
	shmq_consumer_close(c);
	shmq_close(q);
	exit(0);
}

static size_t batch_of(size_t size)
{
	size_t b = 65536 / size;

	return b < 1 ? 1 : b > BATCH_MAX ? BATCH_MAX : b;
}

static void producer(const char *path, const char *api, size_t size, int nc)
{
	struct shmq *q = attach(path);
	struct shmq_producer *p;
	size_t nb = batch_of(size), i;
	char *buf = calloc(nb, size);
	struct iovec iov[BATCH_MAX];
	uint64_t n = 0, every = clock_every(size), t0, end;
	int mode = !strcmp(api, "copy") ? 0 : !strcmp(api, "zc") ? 1 :
		   !strcmp(api, "batch") ? 2 : 3;

	maybe_pin(0);
	check(shmq_producer_open(q, NULL, &p), "shmq_producer_open");
	for (i = 0; i < nb; i++) {
		iov[i].iov_base = buf + i * size;
		iov[i].iov_len = size;
	}
	ctl_wait_ready(ctl, (uint32_t)nc);
	t0 = now_ns();
	end = t0 + dur_ns;
	atomic_store(&ctl->t_start, t0);
	for (;;) {
		void *dst;
		ssize_t r;

		switch (mode) {
		case 0:
			if (size >= 8)
				memcpy(buf, &n, 8);
			check(shmq_send(p, buf, size, SHMQ_FOREVER), "send");
			n++;
			break;
		case 1:
			/* Zero copy: the payload is generated in place. */
			check(shmq_reserve(p, size, &dst, SHMQ_FOREVER),
			      "reserve");
			memset(dst, (int)n, size);
			check(shmq_commit(p, 0), "commit");
			n++;
			break;
		case 2:
			r = shmq_send_batch(p, iov, nb, SHMQ_FOREVER);
			check((int)r, "send_batch");
			/* A short batch leaves the rest for the next call;
			 * counting what went keeps the figure honest. */
			n += (uint64_t)r;
			break;
		default:
			for (i = 0; i < nb; i++) {
				check(shmq_reserve(p, size, &dst, SHMQ_FOREVER),
				      "reserve");
				memcpy(dst, buf + i * size, size);
				check(shmq_commit(p, SHMQ_COMMIT_DEFER),
				      "commit");
			}
			check(shmq_publish(p), "publish");
			n += nb;
			break;
		}
		if (mode >= 2 || n % every == 0)
			if (now_ns() >= end)
				break;
	}
	atomic_store(&ctl->sent, n);
	check(shmq_producer_close(p), "producer_close");
	shmq_close(q);
	exit(0);
}

/*
 * Broadcast: every consumer sees every message; the rate is per consumer
 * (the slowest). Group: each message goes to one member; the rate is the
 * members' sum.
 */
static void tput(const char *api, size_t size, int nc, int group)
{
	int bad;
	char path[300], name[64];
	int i;

	make_qdir();
	qpath(path, sizeof(path), "q");
	make_queue(path, size, 0);
	for (i = 0; i < nc; i++)
		if (fork() == 0)
			consumer(path, api, size, 1 + i, group);
	if (fork() == 0)
		producer(path, api, size, nc);
	bad = wait_children();
	cleanup(path);	/* a failed run leaves no queue file behind */
	if (bad)
		exit(2);
	snprintf(name, sizeof(name), "shmq-%s%s", group ? "group-" : "", api);
	print_tput(name, size, nc, atomic_load(group ? &ctl->received_sum :
					       &ctl->received),
		   atomic_load(&ctl->t_end) - atomic_load(&ctl->t_start));
}

/* ---- latency ------------------------------------------------------- */

#define MAX_SAMPLES (4u << 20)
#define WARMUP 200
#define MIN_SAMPLES 1000
#define LAT_SIZE 64

/* Busy-polls with SHMQ_NOWAIT: the consumer never enters the kernel. */
static ssize_t recv_spin(struct shmq_consumer *c, void *buf)
{
	uint64_t polls = 0;
	ssize_t r;

	while ((r = shmq_recv(c, buf, LAT_SIZE, NULL, SHMQ_NOWAIT)) == -EAGAIN)
		spin_wait(&polls);
	return r;
}

/*
 * Spinning: a ping-pong over two queues (A->B, B->A), both ends polling
 * with SHMQ_NOWAIT; one-way is half the round trip, as for the cache-line
 * ping-pong it is compared with.
 */
static void lat_spin(void)
{
	int bad;
	char ab[300], ba[300];
	pid_t kid;

	make_qdir();
	qpath(ab, sizeof(ab), "ab");
	qpath(ba, sizeof(ba), "ba");
	make_queue(ab, LAT_SIZE, 0);
	make_queue(ba, LAT_SIZE, 0);
	kid = fork();
	if (kid == 0 || fork() == 0) {
		int echo = kid == 0;
		struct shmq *qin = attach(echo ? ab : ba);
		struct shmq *qout = attach(echo ? ba : ab);
		struct shmq_consumer *c;
		struct shmq_producer *p;
		char buf[LAT_SIZE] = { 0 };
		uint64_t *v = NULL, n = 0, end;
		double tpn = 0;
		ssize_t r;
		uint64_t i;

		pin_pingpong(echo);
		check(shmq_consumer_open(qin, NULL, &c), "consumer_open");
		check(shmq_producer_open(qout, NULL, &p), "producer_open");
		atomic_fetch_add(&ctl->ready, 1);
		ctl_wait_ready(ctl, 2);
		if (echo) {
			while ((r = recv_spin(c, buf)) >= 0)
				check(shmq_send(p, buf, LAT_SIZE, SHMQ_NOWAIT),
				      "send");
			if (r != SHMQ_EOF)
				check((int)r, "recv");
			goto out;
		}
		v = malloc(MAX_SAMPLES * sizeof(*v));
		tpn = ticks_per_ns();
		end = now_ns() + dur_ns;
		for (i = 1; n < MAX_SAMPLES; i++) {
			uint64_t t0 = ticks(), t1;

			memcpy(buf, &i, 8);
			check(shmq_send(p, buf, LAT_SIZE, SHMQ_NOWAIT), "send");
			check((int)recv_spin(c, buf), "recv");
			t1 = ticks();
			if (i > WARMUP)
				v[n++] = (uint64_t)((double)(t1 - t0) / tpn / 2);
			/* A loaded machine can make a round trip a time
			 * slice long: keep MIN_SAMPLES, up to 10x the run. */
			if ((i & 63) == 0 && now_ns() >= end &&
			    (n >= MIN_SAMPLES || now_ns() >= end + 9 * dur_ns))
				break;
		}
out:
		shmq_producer_close(p);
		shmq_consumer_close(c);
		shmq_close(qin);
		shmq_close(qout);
		if (!echo)
			print_lat("shmq-spin", LAT_SIZE, v, n);
		exit(0);
	}
	bad = wait_children();
	unlink(ab);
	cleanup(ba);
	if (bad)
		exit(2);
}

/*
 * Sleeping: the consumer waits with SHMQ_FOREVER and the producer pauses
 * BENCH_GAP_US (200 us) between messages, so that each message finds the
 * consumer asleep on the futex. One-way time is measured directly from a
 * CLOCK_MONOTONIC stamp in the message (the same clock on every CPU).
 */
static void lat_sleep(void)
{
	int bad;
	char path[300];
	const char *g = getenv("BENCH_GAP_US");
	long gap_us = g ? atol(g) : 200;

	make_qdir();
	qpath(path, sizeof(path), "q");
	make_queue(path, LAT_SIZE, 0);
	if (fork() == 0) {
		struct shmq *q = attach(path);
		struct shmq_consumer *c;
		uint64_t *v = malloc(MAX_SAMPLES * sizeof(*v)), n = 0, i = 0;
		char buf[LAT_SIZE];
		ssize_t r;

		pin_pingpong(1);
		check(shmq_consumer_open(q, NULL, &c), "consumer_open");
		atomic_fetch_add(&ctl->ready, 1);
		while ((r = shmq_recv(c, buf, sizeof(buf), NULL,
				      SHMQ_FOREVER)) >= 0) {
			uint64_t t = now_ns(), t0;

			memcpy(&t0, buf, 8);
			if (++i > WARMUP / 10 && n < MAX_SAMPLES)
				v[n++] = t - t0;
		}
		if (r != SHMQ_EOF)
			check((int)r, "recv");
		shmq_consumer_close(c);
		shmq_close(q);
		print_lat("shmq-sleep", LAT_SIZE, v, n);
		exit(0);
	}
	if (fork() == 0) {
		struct shmq *q = attach(path);
		struct shmq_producer *p;
		struct timespec ts = { 0, gap_us * 1000 };
		char buf[LAT_SIZE] = { 0 };
		uint64_t end, n;

		pin_pingpong(0);
		check(shmq_producer_open(q, NULL, &p), "producer_open");
		ctl_wait_ready(ctl, 1);
		/* Twice the run, and at least 400 samples: each costs a gap. */
		end = now_ns() + 2 * dur_ns;
		for (n = 0; n < 400 || now_ns() < end; n++) {
			uint64_t t;

			nanosleep(&ts, NULL);
			t = now_ns();
			memcpy(buf, &t, 8);
			check(shmq_send(p, buf, LAT_SIZE, SHMQ_FOREVER), "send");
		}
		shmq_producer_close(p);
		shmq_close(q);
		exit(0);
	}
	bad = wait_children();
	cleanup(path);	/* a failed run leaves no queue file behind */
	if (bad)
		exit(2);
}

/* ---- memory and idle cost ------------------------------------------ */

static void mem_side(const char *path, size_t size, uint64_t per_ring,
		     uint64_t ring, int side)
{
	uint64_t r0 = rss_kb(), r1 = 0, r2, i;
	struct shmq *q = attach(path);
	char *buf = calloc(1, size);

	if (side == 0) {
		struct shmq_producer *p;

		check(shmq_producer_open(q, NULL, &p), "producer_open");
		ctl_wait_ready(ctl, 1);
		for (i = 1; i <= 11 * per_ring; i++) {
			check(shmq_send(p, buf, size, SHMQ_FOREVER), "send");
			if (i == per_ring)
				r1 = rss_kb();
		}
		r2 = rss_kb();
		shmq_producer_close(p);
	} else {
		struct shmq_consumer *c;
		ssize_t r;

		check(shmq_consumer_open(q, NULL, &c), "consumer_open");
		atomic_fetch_add(&ctl->ready, 1);
		for (i = 1; (r = shmq_recv(c, buf, size, NULL,
					   SHMQ_FOREVER)) >= 0; i++)
			if (i == per_ring)
				r1 = rss_kb();
		if (r != SHMQ_EOF)
			check((int)r, "recv");
		r2 = rss_kb();
		shmq_consumer_close(c);
	}
	shmq_close(q);
	printf("mem,%s,%llu,1,%llu,%llu,%llu\n",
	       side ? "consumer" : "producer", (unsigned long long)ring,
	       (unsigned long long)r0, (unsigned long long)r1,
	       (unsigned long long)r2);
	exit(0);
}

/*
 * Resident set of each side before attaching, after one ring's worth of
 * messages and after eleven: the last two must be equal (nothing grows
 * with the number of messages); the step from the first is the ring.
 */
static void mem(uint64_t ring)
{
	int bad;
	char path[300];
	size_t size = ring / 4 < 1024 ? (size_t)ring / 4 : 1024;
	int side;

	make_qdir();
	qpath(path, sizeof(path), "q");
	make_queue(path, size, ring);
	for (side = 0; side < 2; side++)
		if (fork() == 0)
			mem_side(path, size, ring / size, ring, side);
	bad = wait_children();
	cleanup(path);	/* a failed run leaves no queue file behind */
	if (bad)
		exit(2);
}

/*
 * CPU an idle consumer burns: attached with SHMQ_FOREVER to a queue whose
 * producer is open but silent for max(1 s, run time).
 */
static void idle(void)
{
	int bad;
	char path[300];
	uint64_t quiet = dur_ns < 1000000000u ? 1000000000u : dur_ns;

	make_qdir();
	qpath(path, sizeof(path), "q");
	make_queue(path, 64, 0);
	if (fork() == 0) {
		struct shmq *q = attach(path);
		struct shmq_consumer *c;
		struct rusage ru;
		char buf[64];
		uint64_t t0 = now_ns(), t1;
		double cpu;
		ssize_t r;

		check(shmq_consumer_open(q, NULL, &c), "consumer_open");
		atomic_fetch_add(&ctl->ready, 1);
		while ((r = shmq_recv(c, buf, sizeof(buf), NULL,
				      SHMQ_FOREVER)) >= 0)
			;
		t1 = now_ns();
		getrusage(RUSAGE_SELF, &ru);
		cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
		      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
		shmq_consumer_close(c);
		shmq_close(q);
		printf("idle,consumer,0,1,%.4g,,\n", 100.0 * cpu /
		       ((double)(t1 - t0) / 1e9));
		exit(0);
	}
	if (fork() == 0) {
		struct shmq *q = attach(path);
		struct shmq_producer *p;
		struct timespec ts = { (time_t)(quiet / 1000000000u),
				       (long)(quiet % 1000000000u) };

		check(shmq_producer_open(q, NULL, &p), "producer_open");
		ctl_wait_ready(ctl, 1);
		nanosleep(&ts, NULL);
		shmq_producer_close(p);
		shmq_close(q);
		exit(0);
	}
	bad = wait_children();
	cleanup(path);	/* a failed run leaves no queue file behind */
	if (bad)
		exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_shmq tput copy|zc|batch|defer SIZE [CONSUMERS [group]]\n"
		"       bench_shmq lat spin|sleep\n"
		"       bench_shmq mem RINGSIZE\n"
		"       bench_shmq idle\n"
		"env: BENCH_TIME seconds per run (0.25), BENCH_PIN=1,\n"
		"     BENCH_DIR for queue files (/dev/shm), BENCH_GAP_US (200)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	dur_ns = run_ns();
	ctl = shared_alloc(sizeof(*ctl));
	if (argc >= 4 && !strcmp(argv[1], "tput")) {
		size_t size = parse_size(argv[3]);
		int nc = argc > 4 ? atoi(argv[4]) : 1;
		int group = argc > 5 && !strcmp(argv[5], "group");

		if (size == 0 || nc < 1 || nc > 64 ||
		    (strcmp(argv[2], "copy") && strcmp(argv[2], "zc") &&
		     strcmp(argv[2], "batch") && strcmp(argv[2], "defer")))
			usage();
		tput(argv[2], size, nc, group);
	} else if (argc >= 3 && !strcmp(argv[1], "lat")) {
		if (!strcmp(argv[2], "spin"))
			lat_spin();
		else if (!strcmp(argv[2], "sleep"))
			lat_sleep();
		else
			usage();
	} else if (argc >= 3 && !strcmp(argv[1], "mem")) {
		mem(parse_size(argv[2]));
	} else if (argc >= 2 && !strcmp(argv[1], "idle")) {
		idle();
	} else {
		usage();
	}
	return 0;
}
