/*
 * A plain main for the fuzz targets: feeds each file named on the command
 * line, or each file in each directory named, to LLVMFuzzerTestOneInput
 * once. Linked with a target instead of libFuzzer, it replays the
 * committed corpus under CTest in any build, gcc included (as libvips:
 * fuzz/StandaloneFuzzTargetMain.c). A crash or sanitizer report fails the
 * test; so does an unreadable file or an empty corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Corpus files are seeds and fuzzer finds, kilobytes each; anything much
   larger is a mistake in the corpus. */
#define REPLAY_MAX_BYTES (16u << 20)

/* Runs the target on one file's bytes; 0 or -1 if it cannot be read. */
static int replay_file(const char *path) {
    int rc = -1;
    uint8_t *data = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || st.st_size > REPLAY_MAX_BYTES) {
        fprintf(stderr, "replay: %s: %s\n", path,
                f ? "cannot stat or too large" : strerror(errno));
        goto out;
    }
    /* Exactly sized, so that a read past the end is caught by ASan, as
       libFuzzer's own copy would catch it. */
    data = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!data || fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        goto out;
    }
    LLVMFuzzerTestOneInput(data, (size_t)st.st_size);
    rc = 0;
out:
    free(data);
    if (f)
        fclose(f);
    return rc;
}

/* Replays every regular file in `dir`; adds to *count. */
static int replay_dir(const char *dir, unsigned *count) {
    int rc = 0;
    char path[4096];
    struct dirent *entry;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while (rc == 0 && (entry = readdir(d)) != NULL) {
        struct stat st;
        if (entry->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        rc = replay_file(path);
        ++*count;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv) {
    unsigned count = 0;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            rc = replay_dir(argv[i], &count);
        } else {
            rc = replay_file(argv[i]);
            count++;
        }
    }
    if (rc == 0 && count == 0) {
        fprintf(stderr, "replay: no inputs\n");
        rc = -1;
    }
    if (rc == 0)
        printf("replay: %u inputs, no failures\n", count);
    return rc == 0 ? 0 : 1;
}
