/*
 * Which shard this process packs: from --shard K/N, or else from the
 * environment the usual launchers set, so one command line serves a whole
 * Slurm array, an MPI job or a Kubernetes Indexed Job.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_shard_parse(const char *text, uint32_t *index, uint32_t *count) {
    unsigned long k, n;
    char *slash, *end;
    k = strtoul(text, &slash, 10);
    if (slash == text || *slash != '/')
        return -1;
    n = strtoul(slash + 1, &end, 10);
    if (end == slash + 1 || *end != '\0' || n == 0 || k >= n ||
        n > UINT32_MAX)
        return -1;
    *index = (uint32_t)k;
    *count = (uint32_t)n;
    return 0;
}

/* Reads a whole decimal variable; -1 when unset or not a number. */
static long env_number(const char *name) {
    const char *text = getenv(name);
    uint64_t value;
    if (!text || cli_parse_u64(text, 0, UINT32_MAX, &value) != 0)
        return -1;
    return (long)value;
}

/* A launcher's rank variable and count variable; the count may instead come
   from --shards (Kubernetes sets only the index). */
typedef struct launcher {
    const char *rank;
    const char *size;
    const char *first; /* variable holding the first rank, or NULL for 0 */
} launcher;

/* In this order: a job started by mpirun under Slurm has both MPI's and
   Slurm's variables, and MPI's describe the processes of this job. */
static const launcher launchers[] = {
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", NULL},
    {"PMI_RANK", "PMI_SIZE", NULL},
    {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"},
    {"SLURM_PROCID", "SLURM_NTASKS", NULL},
    {"JOB_COMPLETION_INDEX", NULL, NULL},
};

int cli_shard_from_env(uint32_t shards, uint32_t *index, uint32_t *count,
                       const char **origin) {
    for (size_t i = 0; i < sizeof launchers / sizeof *launchers; i++) {
        const launcher *l = &launchers[i];
        long rank = env_number(l->rank);
        long size = l->size ? env_number(l->size) : (long)shards;
        long first = l->first ? env_number(l->first) : 0;
        if (rank < 0)
            continue;
        if (first < 0)
            first = 0;
        if (shards > 0)
            size = shards; /* --shards overrides the launcher's count */
        rank -= first;
        if (size <= 0 || rank < 0 || rank >= size)
            return -1;
        *index = (uint32_t)rank;
        *count = (uint32_t)size;
        *origin = l->rank;
        return 0;
    }
    *index = 0;
    *count = shards > 0 ? shards : 1;
    *origin = NULL;
    return shards > 1 ? -1 : 0; /* --shards N needs an index from somewhere */
}
