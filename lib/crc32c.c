/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli) of records, salted with the file's salt so that a
 * record left from another queue file never validates here. SSE4.2's crc32
 * instruction when the CPU has it, a table otherwise.
 */
#include <string.h>

#include "internal.h"

static uint32_t table[8][256];
static int have_hw = -1;

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
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
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
#endif

static void detect(void)
{
	init_table();
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
#else
	have_hw = 0;
#endif
}

uint32_t shmqi_crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* Racing first calls both run detect(); it is idempotent. */
	if (unlikely(have_hw < 0))
		detect();
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
	uint64_t w[3], c;

	memcpy(w, h, sizeof(w));
	c = __builtin_ia32_crc32di(~(uint32_t)salt, salt);
	c = __builtin_ia32_crc32di(c, w[0]);
	c = __builtin_ia32_crc32di(c, w[1]);
	c = __builtin_ia32_crc32di(c, w[2]);
	return crc_hw((uint32_t)c, p, len);
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
	struct shmq_rec h = *rec;
	uint32_t crc;

	_Static_assert(sizeof(h) == 24, "three words");
	h.crc = 0;
	if (unlikely(have_hw < 0))
		detect();
#if defined(__x86_64__)
	if (likely(have_hw))
		return ~rec_crc_hw(salt, &h, payload, len);
#endif
	crc = crc_sw(~(uint32_t)salt, (const uint8_t *)&salt, sizeof(salt));
	crc = crc_sw(crc, (const uint8_t *)&h, sizeof(h));
	return ~crc_sw(crc, payload, len);
}
