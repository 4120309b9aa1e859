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
    if (end == slash + 1 || *end != '\0' || n == 0 || k >= n || n > UINT32_MAX)
        return -1;
    *index = (uint32_t)k;
    *count = (uint32_t)n;
    return 0;
}

/* Reads a whole decimal variable: 1 when set and a number, 0 when unset
   (or NULL), -1 when set to something else. */
static int env_number(const char *name, long *value) {
    const char *text = name ? getenv(name) : NULL;
    uint64_t n;
    if (!text)
        return 0;
    if (cli_parse_u64(text, 0, UINT32_MAX, &n) != 0)
        return -1;
    *value = (long)n;
    return 1;
}

/*
 * A launcher's variables: its task id and task count (the count may
 * instead come from --shards: Kubernetes sets only the index), and for a
 * Slurm array its lowest id, highest id and step (--array=MIN-MAX:STEP),
 * whose tasks are ids MIN, MIN+STEP, ..., MAX: shard (ID - MIN) / STEP.
 */
typedef struct launcher {
    const char *rank;
    const char *size;
    const char *first; /* first id, or NULL for 0 */
    const char *last;  /* last id, or NULL when not set */
    const char *step;  /* id increment, or NULL for 1 */
} launcher;

/* In this order: a job started by mpirun under Slurm has both MPI's and
   Slurm's variables, and MPI's describe the processes of this job. */
static const launcher launchers[] = {
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", NULL, NULL, NULL},
    {"PMI_RANK", "PMI_SIZE", NULL, NULL, NULL},
    {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
     "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"},
    {"SLURM_PROCID", "SLURM_NTASKS", NULL, NULL, NULL},
    {"JOB_COMPLETION_INDEX", NULL, NULL, NULL, NULL},
};

/* Turns launcher l's variables into shard *index of *count; on failure
   says why in `why` and returns -1. */
static int shard_of(const launcher *l, uint32_t shards, uint32_t *index,
                    uint32_t *count, char why[CLI_SHARD_WHY_SIZE]) {
    long rank = 0, size = shards, first = 0, last = -1, step = 1;
    if (env_number(l->rank, &rank) < 0 || env_number(l->size, &size) < 0 ||
        env_number(l->first, &first) < 0 || env_number(l->last, &last) < 0 ||
        env_number(l->step, &step) < 0) {
        snprintf(why, CLI_SHARD_WHY_SIZE,
                 "%s or a variable beside it is "
                 "not a number",
                 l->rank);
        return -1;
    }
    if (shards > 0)
        size = shards; /* --shards overrides the launcher's count */
    if (size <= 0) {
        if (l->size)
            snprintf(why, CLI_SHARD_WHY_SIZE,
                     "%s is set but %s is not 1 "
                     "or more (or pass --shards N)",
                     l->rank, l->size);
        else
            snprintf(why, CLI_SHARD_WHY_SIZE,
                     "%s gives no shard count: "
                     "pass --shards N",
                     l->rank);
        return -1;
    }
    if (step == 0 || rank < first || (rank - first) % step != 0) {
        snprintf(why, CLI_SHARD_WHY_SIZE,
                 "%s=%ld is not MIN + k*STEP "
                 "(%s=%ld, %s=%ld)",
                 l->rank, rank, l->first, first, l->step, step);
        return -1;
    }
    /* A Slurm array given as a list (--array=0,3,7) or a range with gaps
       has ids that do not map to 0..COUNT-1: refuse it on every task
       rather than pack some shards and miss others. */
    if (last >= 0 && !shards &&
        (last < first || (last - first) % step != 0 ||
         (last - first) / step + 1 != size)) {
        snprintf(why, CLI_SHARD_WHY_SIZE,
                 "%s=%ld, %s=%ld, %s=%ld and "
                 "%s=%ld are not one evenly stepped range (pass --shard K/N)",
                 l->first, first, l->last, last, l->step, step, l->size, size);
        return -1;
    }
    rank = (rank - first) / step;
    if (rank >= size) {
        snprintf(why, CLI_SHARD_WHY_SIZE,
                 "%s gives shard %ld, past the %ld "
                 "shards",
                 l->rank, rank, size);
        return -1;
    }
    *index = (uint32_t)rank;
    *count = (uint32_t)size;
    return 0;
}

int cli_shard_from_env(uint32_t shards, uint32_t *index, uint32_t *count,
                       const char **origin, char why[CLI_SHARD_WHY_SIZE]) {
    for (size_t i = 0; i < sizeof launchers / sizeof *launchers; i++) {
        const launcher *l = &launchers[i];
        if (!getenv(l->rank))
            continue;
        *origin = l->rank;
        return shard_of(l, shards, index, count, why);
    }
    *index = 0;
    *count = shards > 0 ? shards : 1;
    *origin = NULL;
    if (shards > 1) {
        snprintf(why, CLI_SHARD_WHY_SIZE,
                 "--shards %u needs a shard index: "
                 "no launcher variable is set",
                 shards);
        return -1;
    }
    return 0;
}
