/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a queue with a fixed, valid identity (fuzz.h) whose
 * cursors, producer state, slot table and ring come from the input, so
 * that every mutation reaches the record, position and slot validation
 * instead of dying at the geometry checks. Input: one byte whose bit 0
 * is the overwrite flag, then header bytes 72..511, the slots, the ring.
 */
#include <string.h>

#include "../../lib/format.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t img[SHMQ_PAGE + FZ_CAPACITY];
	struct shmq_hdr *h = (struct shmq_hdr *)img;
	size_t n;

	fz_plant(data, size);
	if (size > FZ_IN_MAX)
		size = FZ_IN_MAX;
	memset(img, 0, sizeof(img));
	h->magic = SHMQ_MAGIC;
	h->version = SHMQ_FORMAT_VERSION;
	h->layout = SHMQ_LAYOUT;
	h->capacity = FZ_CAPACITY;
	h->data_off = SHMQ_PAGE;
	h->file_size = sizeof(img);
	h->max_message = FZ_MAX_MSG;
	h->nslots = FZ_SLOTS;
	h->salt = FZ_SALT;
	h->ready = SHMQ_READY;
	if (size) {
		h->flags = data[0] & SHMQ_FLAG_OVERWRITE;
		data++, size--;
	}
	n = size < FZ_IN_HDR ? size : FZ_IN_HDR;
	memcpy(img + FZ_HDR_FROM, data, n);
	data += n, size -= n;
	n = size < FZ_IN_SLOTS ? size : FZ_IN_SLOTS;
	memcpy(img + SHMQ_HDR_SIZE, data, n);
	data += n, size -= n;
	memcpy(img + SHMQ_PAGE, data, size);
	fz_write(img, sizeof(img));
	fz_exercise();
	return 0;
}
