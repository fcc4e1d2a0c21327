/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: an arbitrary file image at the queue's path, then attach,
 * validate and use every role (fz_exercise). The "ready" word is forced
 * so that no input makes attach wait its two seconds for a creator; the
 * unfinished-creator paths have their own unit tests.
 */
#include <stdlib.h>
#include <string.h>

#include "../../lib/format.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size < SHMQ_HDR_SIZE ? SHMQ_HDR_SIZE : size;
	uint32_t ready = SHMQ_READY;
	uint8_t *img;

	fz_plant(data, size);
	if (size > (1u << 20))
		return 0;
	img = calloc(1, n);
	if (!img)
		abort();
	memcpy(img, data, size);
	memcpy(img + offsetof(struct shmq_hdr, ready), &ready, sizeof(ready));
	fz_write(img, n);
	free(img);
	fz_exercise();
	return 0;
}
