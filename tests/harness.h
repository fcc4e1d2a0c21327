/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the test suites and for xproc_peer: a temporary
 * directory per test, peers spawned with a watchdog, bounded waits, and the
 * deterministic tagged messages the stress tests send and verify.
 * Nothing here uses criterion, so that xproc_peer can link it too.
 */
#ifndef SHMQ_TEST_HARNESS_H
#define SHMQ_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* criterion .init / .fini: make and remove the test's own directory. */
void h_setup(void);
void h_teardown(void);

/* The test's directory, and NAME inside it (one of 8 rotating buffers). */
const char *h_dir(void);
const char *h_path(const char *name);

uint64_t h_now_ns(void);
void h_sleep_ms(unsigned int ms);

/* Write LEN bytes of BUF at OFF of the file PATH (corruption tests). */
int h_poke(const char *path, off_t off, const void *buf, size_t len);
int h_peek_file(const char *path, off_t off, void *buf, size_t len);
int h_copy_file(const char *from, const char *to);

/*
 * A peer process: tests/xproc_peer run with ARGV, its stdout on a pipe we
 * read line by line. It dies with us (PR_SET_PDEATHSIG) and on its own
 * after the watchdog (alarm(), kept across exec).
 */
struct h_peer {
	pid_t pid;
	int out;		/* read end of the peer's stdout */
	char buf[4096];
	size_t len;		/* bytes buffered, not yet returned as lines */
	int status;		/* wait status once reaped */
	int reaped;
};

int h_spawn(struct h_peer *p, unsigned int watchdog_s, const char *const *argv);
/* Read one line (without '\n'). Returns its length, -EPIPE at EOF, -ETIMEDOUT. */
int h_readline(struct h_peer *p, char *line, size_t cap, int timeout_ms);
/* Skip lines until one starts with PREFIX; same returns as h_readline(). */
int h_expect(struct h_peer *p, const char *prefix, char *line, size_t cap,
	     int timeout_ms);
/* Reap within TIMEOUT_MS (0 or -ETIMEDOUT, after which it is SIGKILLed). */
int h_wait(struct h_peer *p, int timeout_ms);
void h_kill(struct h_peer *p, int sig);
/* Exit code, or 128 + signal, or -1 when not reaped. */
int h_exit_code(const struct h_peer *p);

/*
 * Tagged messages. The message with sequence SEQ of stream SEED has a
 * length in 0..MAX chosen by a PRNG and bytes that are a function of
 * (SEED, SEQ) only. From 16 bytes on it starts with a tag:
 *   u64 seq, u32 FNV-1a of bytes 16..len, u32 len
 * so a reader can tell a gap or duplicate (wrong seq) from corruption (bad
 * checksum) before comparing every byte with the regenerated expectation.
 */
#define H_TAG_SIZE 16u

uint32_t h_fnv1a(const void *buf, size_t len);
size_t h_msg_len(uint64_t seed, uint64_t seq, size_t max);
void h_msg_fill(void *buf, size_t len, uint64_t seed, uint64_t seq);
/*
 * Check BUF/LEN against message SEQ. Returns NULL when it is exactly the
 * expected message, else a static description of what is wrong.
 */
const char *h_msg_check(const void *buf, size_t len, uint64_t seed,
			uint64_t seq, size_t max);

#endif /* SHMQ_TEST_HARNESS_H */
