/* SPDX-License-Identifier: MIT */
/*
 * Shared by the fuzz targets, their replay driver and the corpus maker:
 * where the image goes, and one bounded exercise of every role over it.
 */
#ifndef SHMQ_FUZZ_H
#define SHMQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/*
 * The fixed identity of the consume target's images: a 4 KiB ring, two
 * slots, 1 KiB messages, a known salt so that seeds carry valid checksums.
 */
#define FZ_CAPACITY	4096u
#define FZ_SLOTS	2u
#define FZ_MAX_MSG	1024u
#define FZ_SALT		0x5eed5eed5eed5eedull

/* The consume target's input: flags byte, header tail, slots, ring. */
#define FZ_HDR_FROM	72u
#define FZ_IN_HDR	(512u - FZ_HDR_FROM)
#define FZ_IN_SLOTS	(FZ_SLOTS * 128u)
#define FZ_IN_MAX	(1u + FZ_IN_HDR + FZ_IN_SLOTS + FZ_CAPACITY)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Called first by every target. With SHMQ_FUZZ_PLANT=crash, leak, ub or
 * hang in the environment, an input that contains "PLNT" overflows a
 * heap buffer, leaks, overflows a signed int or never returns: the
 * self-tests of scripts/extra-checks.sh show that the replay and the fuzz
 * runs report each kind. Without the variable it does nothing.
 */
void fz_plant(const uint8_t *data, size_t size);

/* A path in a private directory, made once per process. */
const char *fz_path(void);
/* Write LEN bytes as the whole file at fz_path(). Aborts on I/O errors. */
void fz_write(const void *buf, size_t len);
/*
 * Attach to fz_path() and use every role without ever waiting: stat,
 * drain with an anonymous and a named consumer (peek and recv), take the
 * producer role and send, drain again, sync, close everything. Aborts
 * when the library hands out something impossible (a message longer than
 * the maximum, or a message this exercise sent that comes back altered).
 */
void fz_exercise(void);

#endif /* SHMQ_FUZZ_H */
