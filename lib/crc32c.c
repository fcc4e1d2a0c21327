/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli) of records, salted with the file's salt so that a
 * record left from another queue file never validates here. SSE4.2's crc32
 * instruction when the CPU has it, a table otherwise.
 */
#include <pthread.h>
#include <string.h>

#include "internal.h"

static uint32_t table[8][256];
static int have_hw = -1;	/* set once, under pthread_once */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & -(c & 1));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^
				      table[0][table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc;
		crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
		      table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
		      table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
		      table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
/*
 * Hardware CRC32C. One crc32 instruction has a latency of three cycles
 * and a throughput of one, so a single chain runs at a third of the
 * speed: long buffers are cut into three blocks of STRIDE bytes whose CRCs
 * run interleaved and are then combined. CRC is linear: the CRC of A|B
 * from state c is shift(crc(c, A)) ^ crc(0, B), where shift advances a
 * state over STRIDE zero bytes, a fixed linear map of 32 bits that the
 * tables below apply one byte at a time.
 */
#define STRIDE 512
static uint32_t shift_tab[4][256];

__attribute__((target("sse4.2")))
static uint32_t crc_hw1(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}

static uint32_t shift(uint32_t c)
{
	return shift_tab[0][c & 0xff] ^ shift_tab[1][(c >> 8) & 0xff] ^
	       shift_tab[2][(c >> 16) & 0xff] ^ shift_tab[3][c >> 24];
}

static void init_shift(void)
{
	static const uint8_t zeros[STRIDE];
	uint32_t basis[32];

	for (int i = 0; i < 32; i++)
		basis[i] = crc_hw1(1u << i, zeros, STRIDE);
	for (int k = 0; k < 4; k++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t r = 0;

			for (int b = 0; b < 8; b++)
				if (v & (1u << b))
					r ^= basis[8 * k + b];
			shift_tab[k][v] = r;
		}
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len >= 3 * STRIDE) {
		uint64_t a = crc, b = 0, d = 0;

		for (size_t i = 0; i < STRIDE; i += 8) {
			uint64_t x, y, z;

			memcpy(&x, p + i, 8);
			memcpy(&y, p + STRIDE + i, 8);
			memcpy(&z, p + 2 * STRIDE + i, 8);
			a = __builtin_ia32_crc32di(a, x);
			b = __builtin_ia32_crc32di(b, y);
			d = __builtin_ia32_crc32di(d, z);
		}
		crc = shift(shift((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
		p += 3 * STRIDE;
		len -= 3 * STRIDE;
	}
	return crc_hw1(crc, p, len);
}
#endif

static void detect(void)
{
	init_table();
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		init_shift();
	store_relaxed(&have_hw, __builtin_cpu_supports("sse4.2"));
#else
	store_relaxed(&have_hw, 0);
#endif
}

uint32_t shmqi_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (unlikely(load_relaxed(&have_hw) < 0))
		pthread_once(&once, detect);
#if defined(__x86_64__)
	if (likely(have_hw))
		return crc_hw(crc, buf, len);
#endif
	return crc_sw(crc, buf, len);
}

#if defined(__x86_64__)
/* The whole record checksum in one call: no per-piece dispatch. */
__attribute__((target("sse4.2")))
static uint32_t rec_crc_hw(uint64_t salt, const struct shmq_rec *h,
			   const uint8_t *p, size_t len)
{
	return crc_hw(shmqi_hdr_crc_hw(salt, h), p, len);
}
#endif

bool shmqi_crc_have_hw(void)
{
	if (unlikely(load_relaxed(&have_hw) < 0))
		pthread_once(&once, detect);
	return have_hw > 0;
}

#if defined(__x86_64__)
/* Only after shmqi_crc_have_hw() returned true. */
uint32_t shmqi_crc_hw(uint32_t crc, const void *buf, size_t len)
{
	return crc_hw(crc, buf, len);
}
#endif

/*
 * CRC32C over the salt, the record header with crc = 0, then the payload:
 * docs/format.md defines it. The salt makes a record copied from another
 * queue file (or left from an earlier one at the same path) fail.
 */
uint32_t shmqi_rec_crc(uint64_t salt, const struct shmq_rec *rec,
		       const void *payload, size_t len)
{
	struct shmq_rec h;
	uint32_t crc;

	_Static_assert(sizeof(h) == 32, "four words");
	if (unlikely(load_relaxed(&have_hw) < 0))
		pthread_once(&once, detect);
#if defined(__x86_64__)
	/* The header's words as they are, crc masked (no copy to forward). */
	if (likely(have_hw))
		return ~rec_crc_hw(salt, rec, payload, len);
#endif
	h = *rec;
	h.crc = 0;
	crc = crc_sw(~(uint32_t)salt, (const uint8_t *)&salt, sizeof(salt));
	crc = crc_sw(crc, (const uint8_t *)&h, sizeof(h));
	return ~crc_sw(crc, payload, len);
}
