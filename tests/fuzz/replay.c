/* SPDX-License-Identifier: MIT */
/*
 * Replays files or directories of inputs through a fuzz target without
 * libFuzzer, so that every build (gcc, plain and ASan+UBSan) runs the
 * seed corpus and every crash reproducer kept in it.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0) {
		perror(path);
		return -1;
	}
	rewind(f);
	buf = malloc((size_t)len + 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		perror(path);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	int runs = 0;

	for (int i = 1; i < argc; i++) {
		struct dirent **ents;
		struct stat sb;
		char p[4096];
		int n;

		if (stat(argv[i], &sb) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(sb.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			runs++;
			continue;
		}
		n = scandir(argv[i], &ents, NULL, by_name);
		for (int j = 0; j < n; j++) {
			snprintf(p, sizeof(p), "%s/%s", argv[i], ents[j]->d_name);
			if (ents[j]->d_name[0] != '.' &&
			    stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
				if (run_file(p) < 0)
					return 1;
				runs++;
			}
			free(ents[j]);
		}
		free(ents);
	}
	printf("replayed %d inputs\n", runs);
	return runs ? 0 : 1;
}
