/* SPDX-License-Identifier: MIT */
/*
 * The seed's student record {id, name, age} as one fixed-width, 48-byte
 * message. The bytes are defined here, not by a C struct, so that builds
 * with other compilers, ABIs or endianness read the same records:
 *
 *   offset  size  field
 *        0     8  id    unsigned, little-endian
 *        8    32  name  bytes, NUL-padded; at most 31 bytes + NUL
 *       40     4  age   unsigned, little-endian
 *       44     4  zero  reserved, written as 0, ignored on read
 */
#ifndef SHMQ_TOOLS_STUDENT_H
#define SHMQ_TOOLS_STUDENT_H

#include <stdint.h>
#include <string.h>

#define STUDENT_RECORD_SIZE	48
#define STUDENT_NAME_SIZE	32	/* including the terminating NUL */

struct student {
	uint64_t id;
	char name[STUDENT_NAME_SIZE];
	uint32_t age;
};

static inline void put_le(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void student_encode(const struct student *s,
				  unsigned char rec[STUDENT_RECORD_SIZE])
{
	memset(rec, 0, STUDENT_RECORD_SIZE);
	put_le(rec, s->id, 8);
	/* strnlen: the name is NUL-padded, never NUL-terminated past 31. */
	memcpy(rec + 8, s->name, strnlen(s->name, STUDENT_NAME_SIZE - 1));
	put_le(rec + 40, s->age, 4);
}

/* A record whose name is not NUL-terminated is still read safely. */
static inline void student_decode(const unsigned char rec[STUDENT_RECORD_SIZE],
				  struct student *s)
{
	s->id = get_le(rec, 8);
	memcpy(s->name, rec + 8, STUDENT_NAME_SIZE - 1);
	s->name[STUDENT_NAME_SIZE - 1] = '\0';
	s->age = (uint32_t)get_le(rec + 40, 4);
}

#endif /* SHMQ_TOOLS_STUDENT_H */
