/*
 * What the subcommands of the `imgpack` command share: exit statuses, the
 * one way to print a message, and number parsing. Every subcommand is a
 * file tools/cmd_<name>.c with one entry point listed in tools/imgpack.c.
 */
#ifndef IMGPACK_TOOLS_CLI_H
#define IMGPACK_TOOLS_CLI_H

#include <stdint.h>

/* Exit statuses, documented in README.md and `imgpack --help`. */
enum {
    EXIT_OK = 0,       /* everything asked was done */
    EXIT_FAILED = 1,   /* a fatal error: nothing or only part was done */
    EXIT_USAGE = 2,    /* bad command line */
    EXIT_PARTIAL = 3,  /* pack finished, but some files were rejected */
    EXIT_PROBLEMS = 4, /* verify found problems */
};

/* Prints "imgpack: <subject>: <message>" (subject may be NULL) on stderr. */
void cli_error(const char *subject, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the misuse hint "imgpack: <message>\nTry 'imgpack <cmd> --help'."
   and returns EXIT_USAGE. */
int cli_usage_error(const char *command, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses a whole decimal number in [min, max]; returns 0 on success. */
int cli_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Writes `text` as a JSON string literal, quotes included: the one JSON
   escaper of every --json output. A byte that is not part of well-formed
   UTF-8 becomes the escape \udcXY (XY its hex value), as Python's
   surrogateescape decodes it: the output always parses, and
   os.fsencode(json.loads(...)) gives the original bytes back. */
void cli_json_string(const char *text);

/* Parses "K/N" (0 <= K < N); returns 0 on success. */
int cli_shard_parse(const char *text, uint32_t *index, uint32_t *count);

/* Room for cli_shard_from_env's reason. */
#define CLI_SHARD_WHY_SIZE 256

/* The shard from the launchers' environment (Open MPI, MPICH/Hydra PMI,
   Slurm arrays, with a step too, Slurm tasks, Kubernetes
   JOB_COMPLETION_INDEX with `shards`), in that order; `shards` (0 if not
   given) overrides the launcher's count. *origin names the variable used,
   NULL when none was set (then shard 0 of `shards`, or of 1). Returns -1
   when the variables are inconsistent, saying why in `why`. */
int cli_shard_from_env(uint32_t shards, uint32_t *index, uint32_t *count,
                       const char **origin, char why[CLI_SHARD_WHY_SIZE]);

int cmd_pack(int argc, char **argv);
int cmd_combine(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_grid(int argc, char **argv);
int cmd_classes(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_select(int argc, char **argv);

#endif
