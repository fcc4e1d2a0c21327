/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the bench programs: clocks, a shared control page for
 * the processes of one run, percentiles, and the one-line result format
 * that bench/run.sh parses.
 */
#ifndef SHMQ_BENCH_H
#define SHMQ_BENCH_H

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CACHELINE 64

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * Spin-wait step: pause, and yield the CPU every 4096 empty polls. When the
 * peer shares our vCPU (two vCPUs, busy neighbours), pure spinning makes
 * each hand-off cost a whole time slice; when the peer runs elsewhere the
 * hand-off comes long before the yield, so the fast path is unchanged.
 */
static inline void spin_wait(uint64_t *polls)
{
	if (++*polls % 4096 == 0)
		sched_yield();
	else
		cpu_relax();
}

/* Keeps the compiler from proving a copy or a fill is dead. */
static inline void clobber(void *p)
{
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

static inline void die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(2);
}

static inline void dief(const char *what, int err)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(2);
}

static inline void *shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

/*
 * The control page every process of one run shares. Counters a party
 * writes sit on their own line so that polling them does not slow the
 * data path being measured.
 */
struct ctl {
	_Alignas(CACHELINE) _Atomic uint32_t ready;	/* consumers attached */
	_Alignas(CACHELINE) _Atomic uint64_t t_start;	/* producer, first send */
	_Atomic uint64_t sent;			/* producer, at the end */
	_Alignas(CACHELINE) _Atomic uint64_t t_end;	/* max over consumers */
	_Atomic uint64_t received;		/* min over consumers */
	_Atomic uint64_t received_sum;		/* sum over consumers */
	_Atomic uint64_t stamp;			/* futexwake: send time */
};

static inline void ctl_wait_ready(struct ctl *c, uint32_t n)
{
	/* Sleep-poll: on two cores a spinning waiter would steal the CPU the
	 * consumers need to finish attaching. */
	while (atomic_load(&c->ready) < n)
		usleep(100);
}

static inline void ctl_consumer_done(struct ctl *c, uint64_t msgs)
{
	uint64_t t = now_ns(), old;

	atomic_fetch_add(&c->received_sum, msgs);

	old = atomic_load(&c->t_end);
	while (old < t && !atomic_compare_exchange_weak(&c->t_end, &old, t))
		;
	old = atomic_load(&c->received);
	while ((old == 0 || msgs < old) &&
	       !atomic_compare_exchange_weak(&c->received, &old, msgs))
		;
}

/* Waits for every child; returns non-zero if one failed. */
static inline int wait_children(void)
{
	int st, bad = 0;

	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad = 1;
	return bad;
}

/* Result lines: kind,name,size,consumers,a,b,c (see bench/run.sh). */
static inline void print_tput(const char *name, size_t size, int nc,
			      uint64_t msgs, uint64_t ns)
{
	double s = (double)ns / 1e9;

	printf("tput,%s,%zu,%d,%.6g,%.6g,\n", name, size, nc,
	       (double)msgs / s, (double)msgs * (double)size / s / 1e9);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Samples are one-way times in ns; prints p50, p99, p99.9. */
static inline void print_lat(const char *name, size_t size, uint64_t *v,
			     size_t n)
{
	if (n == 0) {
		fprintf(stderr, "bench: %s: no samples\n", name);
		exit(2);
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	printf("lat,%s,%zu,1,%llu,%llu,%llu\n", name, size,
	       (unsigned long long)v[n / 2],
	       (unsigned long long)v[(size_t)(n * 0.99)],
	       (unsigned long long)v[(size_t)(n * 0.999)]);
}

/* Resident set of this process in KiB (VmRSS: anon + file + shmem). */
static inline uint64_t rss_kb(void)
{
	char line[256];
	uint64_t kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu", (unsigned long long *)&kb) == 1)
			break;
	fclose(f);
	return kb;
}

static inline long futex(_Atomic uint32_t *uaddr, int op, uint32_t val,
			 const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

/* Parses "64", "1K", "4M" (powers of 1024). */
static inline size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'K': case 'k': v <<= 10; break;
	case 'M': case 'm': v <<= 20; break;
	case 'G': case 'g': v <<= 30; break;
	}
	return (size_t)v;
}

/* Run length per configuration, from BENCH_TIME (seconds, default 0.25). */
static inline uint64_t run_ns(void)
{
	const char *e = getenv("BENCH_TIME");
	double s = e ? atof(e) : 0.25;

	if (s <= 0)
		s = 0.25;
	return (uint64_t)(s * 1e9);
}

/* How often the producer looks at the clock: about every 64 KiB. */
static inline uint64_t clock_every(size_t size)
{
	return size >= 65536 ? 1 : 65536 / (size ? size : 1);
}

/*
 * Cycle counter for the ping-pongs: a round trip is 100-800 ns and even the
 * vDSO clock read costs 15-30 ns, so samples use the TSC (constant and
 * synchronised across CPUs on the x86 machines we run on), scaled with a
 * factor measured against CLOCK_MONOTONIC.
 */
#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t ticks(void)
{
	unsigned int aux;

	return __rdtscp(&aux);
}
#else
static inline uint64_t ticks(void)
{
	return now_ns();
}
#endif

static inline double ticks_per_ns(void)
{
	uint64_t n0 = now_ns(), t0 = ticks(), n1, t1;

	do
		n1 = now_ns();
	while (n1 - n0 < 20000000);
	t1 = ticks();
	return (double)(t1 - t0) / (double)(n1 - n0);
}

static inline void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* BENCH_PIN=1 puts the producer on CPU 0 and consumers on CPU 1. */
static inline void maybe_pin(int cpu)
{
	const char *e = getenv("BENCH_PIN");

	if (e && strcmp(e, "1") == 0)
		pin(cpu);
}

/*
 * The ping-pongs measure a cross-core hand-off, so their two sides are
 * pinned to different CPUs unless BENCH_PIN=0: left to itself, the
 * scheduler of a busy two-vCPU machine often puts both on one CPU, and
 * the figure becomes a context switch.
 */
static inline void pin_pingpong(int cpu)
{
	const char *e = getenv("BENCH_PIN");

	if (!e || strcmp(e, "0") != 0)
		pin(cpu);
}

#endif /* SHMQ_BENCH_H */
