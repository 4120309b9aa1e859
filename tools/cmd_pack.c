/*
 * imgpack pack: options in, a store out, with a progress bar on a terminal
 * and a one-line summary at the end.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "imgpack/pack.h"

/* The bar is redrawn at most this often: drawing costs a write syscall. */
#define REDRAW_SECONDS 0.1
#define BAR_WIDTH 30

static void print_help(void) {
    printf(
        "Usage: imgpack pack [OPTIONS] SRC OUT_DIR\n\n"
        "Packs SRC into a new store OUT_DIR: LMDB records plus a SQLite\n"
        "catalog.db. SRC is an ImageFolder tree (one directory per class;\n"
        "records in torchvision's ImageFolder order), a tar archive of one\n"
        "(.tar read in place, .tar.gz/.xz/.bz2/.zst streamed; <class>.tar\n"
        "members as ImageNet ships them), a directory with --list, or an\n"
        "MNIST-style IDX images file or CSV. Each image is\n"
        "converted to RGB, resized (short side) and center-cropped exactly as\n"
        "torchvision's Resize + CenterCrop on a PIL image.\n\n"
        "Options:\n"
        "  --resize N      short side after resizing (default 256; 0 = keep)\n"
        "  --crop N        center crop side (default 224; 0 = no crop)\n"
        "  --format F      raw, jpeg, webp or webp-lossless (default raw)\n"
        "  --quality Q     quality for jpeg/webp, 1-100 (default 90)\n"
        "  --jobs N        worker threads (default: online cores)\n"
        "  --synsets FILE  'wnid description' lines for class descriptions\n"
        "  --list FILE     pack the files FILE names under SRC: lines\n"
        "                  'relative/path label' (a class id or name), or\n"
        "                  ImageNet's Kaggle LOC_val_solution.csv\n"
        "  --sort          with --list: in path order, not the file's\n"
        "  --classes-from STORE  use STORE's class table (ids, names); a\n"
        "                  label it lacks is a reject, not a new class\n"
        "  --sha256 SUMS   check the files a sha256sum list names first;\n"
        "                  refuse on a mismatch or a missing file\n"
        "  --labels FILE   with an IDX images file as SRC: its labels file\n"
        "                  (default: the labels-idx1 file beside it)\n"
        "  --class-names N fashion-mnist, mnist, or a file of names, one a\n"
        "                  line, for sources labelled by class ids\n"
        "  --channels C    1 or 3: record channels (default 1 for IDX/CSV,\n"
        "                  3 for images)\n"
        "  --max-pixels N  reject images with more pixels (default %u,\n"
        "                  Pillow's limit; 0 = no limit)\n"
        "  --strict        stop at the first file that cannot be packed\n"
        "  --resume        go on with the interrupted pack in OUT_DIR (same\n"
        "                  options and source; nothing is packed twice);\n"
        "                  with none there, pack from the start\n"
        "  --append        add SRC's files that the complete store in\n"
        "                  OUT_DIR lacks (by path) after its records, new\n"
        "                  classes after its classes (same options; run it\n"
        "                  again if it stopped)\n"
        "  --shard K/N     pack shard K (0-based) of N into "
        "OUT_DIR/shard-K-of-N;\n"
        "                  without it, K and N come from the environment of\n"
        "                  mpirun (OMPI_COMM_WORLD_*, PMI_*), Slurm\n"
        "                  (SLURM_ARRAY_TASK_*, SLURM_PROCID/SLURM_NTASKS) or\n"
        "                  Kubernetes (JOB_COMPLETION_INDEX with --shards)\n"
        "  --shards N      the shard count, for launchers that give only K\n"
        "  --quiet         no progress bar and no summary\n"
        "  --help          this text\n\n"
        "Exit status: 0 all packed, 3 packed but some files rejected,\n"
        "1 failed, 2 bad command line.\n",
        IMGPACK_DEFAULT_MAX_PIXELS);
}

typedef struct pack_ui {
    const char *src_dir;
    int bar;          /* drawing a progress bar */
    int bar_visible;  /* a bar is on the current line */
    double last_draw; /* seconds at the last redraw */
} pack_ui;

static void clear_bar(pack_ui *ui) {
    if (ui->bar_visible) {
        fputs("\r\033[K", stderr);
        ui->bar_visible = 0;
    }
}

/* Images per second handled by this run (a resumed pack's earlier work
   does not count). */
static double rate_of(const imgpack_pack_progress *p) {
    return p->seconds > 0 ? (double)(p->done - p->resumed) / p->seconds : 0;
}

static void draw_bar(pack_ui *ui, const imgpack_pack_progress *p) {
    double rate = rate_of(p);
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    int filled = p->total ? (int)(BAR_WIDTH * p->done / p->total) : BAR_WIDTH;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %llu/%llu images  %.0f img/s  ETA %d:%02d\033[K",
            bar, (unsigned long long)p->done, (unsigned long long)p->total,
            rate, (int)eta / 60, (int)eta % 60);
    ui->bar_visible = 1;
}

static void on_progress(void *user, const imgpack_pack_progress *p) {
    pack_ui *ui = user;
    if (!ui->bar ||
        (p->seconds - ui->last_draw < REDRAW_SECONDS && p->done != p->total))
        return;
    ui->last_draw = p->seconds;
    draw_bar(ui, p);
}

static void on_reject(void *user, const char *path, const char *reason) {
    pack_ui *ui = user;
    clear_bar(ui);
    fprintf(stderr, "imgpack: %s/%s: %s\n", ui->src_dir, path, reason);
}

/* The command line as one string, arguments with spaces quoted, for the
   catalog's record of how the store was made. */
static char *command_line(int argc, char **argv) {
    size_t size = 16;
    for (int i = 0; i < argc; i++)
        size += strlen(argv[i]) * 4 + 3;
    char *line = malloc(size), *end = line;
    if (!line)
        return NULL;
    end += sprintf(end, "imgpack");
    for (int i = 0; i < argc; i++) {
        int plain = strcspn(argv[i], " \t\n'\"\\$`") == strlen(argv[i]) &&
                    argv[i][0] != '\0';
        *end++ = ' ';
        if (plain) {
            end = stpcpy(end, argv[i]);
            continue;
        }
        *end++ = '\'';
        for (const char *c = argv[i]; *c; c++) {
            if (*c == '\'')
                end = stpcpy(end, "'\\''");
            else
                *end++ = *c;
        }
        *end++ = '\'';
        *end = '\0';
    }
    return line;
}

/* Applies one option to `opts`; returns 0 or a usage error's exit code. */
static int apply_option(imgpack_pack_options *opts, int option,
                        const char *value) {
    uint64_t n;
    int32_t format;
    imgpack_status status = IMGPACK_OK;
    switch (option) {
    case 'r':
    case 'c':
        if (cli_parse_u64(value, 0, IMGPACK_MAX_SIDE, &n))
            return cli_usage_error("pack", "--%s takes 0 to %u, not '%s'",
                                   option == 'r' ? "resize" : "crop",
                                   IMGPACK_MAX_SIDE, value);
        status = option == 'r'
                     ? imgpack_pack_options_set_resize(opts, (uint32_t)n)
                     : imgpack_pack_options_set_crop(opts, (uint32_t)n);
        break;
    case 'f':
        if (imgpack_format_parse(value, &format))
            return cli_usage_error(
                "pack",
                "--format takes raw, jpeg, webp or webp-lossless, "
                "not '%s'",
                value);
        status = imgpack_pack_options_set_format(opts, format);
        break;
    case 'q':
        if (cli_parse_u64(value, 1, 100, &n))
            return cli_usage_error("pack", "--quality takes 1 to 100, not '%s'",
                                   value);
        status = imgpack_pack_options_set_quality(opts, (int32_t)n);
        break;
    case 'j':
        if (cli_parse_u64(value, 1, 256, &n))
            return cli_usage_error("pack", "--jobs takes 1 to 256, not '%s'",
                                   value);
        status = imgpack_pack_options_set_jobs(opts, (uint32_t)n);
        break;
    case 'm':
        if (cli_parse_u64(value, 0, UINT64_MAX, &n))
            return cli_usage_error("pack",
                                   "--max-pixels takes a number, "
                                   "not '%s'",
                                   value);
        status = imgpack_pack_options_set_max_pixels(opts, n);
        break;
    case 's':
        status = imgpack_pack_options_set_synsets(opts, value);
        break;
    case 'C':
        status = imgpack_pack_options_set_classes_from(opts, value);
        break;
    case '2':
        status = imgpack_pack_options_set_checksums(opts, value);
        break;
    case 'L':
        status = imgpack_pack_options_set_labels(opts, value);
        break;
    case 'N':
        status = imgpack_pack_options_set_class_names(opts, value);
        break;
    case 'c' + 256:
        if (cli_parse_u64(value, 1, 3, &n) || n == 2)
            return cli_usage_error("pack", "--channels takes 1 or 3, not '%s'",
                                   value);
        status = imgpack_pack_options_set_channels(opts, (uint32_t)n);
        break;
    case 'S':
        status = imgpack_pack_options_set_strict(opts, 1);
        break;
    case 'R':
        status = imgpack_pack_options_set_resume(opts, 1);
        break;
    case 'A':
        status = imgpack_pack_options_set_append(opts, 1);
        break;
    }
    if (status != IMGPACK_OK) {
        cli_error(NULL, "%s", imgpack_strerror(status));
        return EXIT_FAILED;
    }
    return 0;
}

static void print_summary(const imgpack_pack_progress *p) {
    printf("packed %llu, rejected %llu, skipped %llu in %.1f s "
           "(%.0f images/s), %.1f MB\n",
           (unsigned long long)p->packed, (unsigned long long)p->rejected,
           (unsigned long long)p->skipped, p->seconds, rate_of(p),
           (double)p->bytes / 1e6);
}

int cmd_pack(int argc, char **argv) {
    static const struct option options[] = {
        {"resize", required_argument, NULL, 'r'},
        {"crop", required_argument, NULL, 'c'},
        {"format", required_argument, NULL, 'f'},
        {"quality", required_argument, NULL, 'q'},
        {"jobs", required_argument, NULL, 'j'},
        {"synsets", required_argument, NULL, 's'},
        {"list", required_argument, NULL, 'l'},
        {"sort", no_argument, NULL, 'o'},
        {"classes-from", required_argument, NULL, 'C'},
        {"sha256", required_argument, NULL, '2'},
        {"labels", required_argument, NULL, 'L'},
        {"class-names", required_argument, NULL, 'N'},
        {"channels", required_argument, NULL, 'c' + 256},
        {"max-pixels", required_argument, NULL, 'm'},
        {"strict", no_argument, NULL, 'S'},
        {"resume", no_argument, NULL, 'R'},
        {"append", no_argument, NULL, 'A'},
        {"shard", required_argument, NULL, 'k'},
        {"shards", required_argument, NULL, 'K'},
        {"quiet", no_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    imgpack_pack_options *opts = NULL;
    imgpack_packer *packer = NULL;
    imgpack_pack_progress progress;
    pack_ui ui = {0};
    int quiet = 0, code = EXIT_FAILED, option, shard_given = 0, sort = 0;
    const char *list = NULL;
    uint32_t shard = 0, shards = 0, count;
    uint64_t n;
    const char *origin = "--shard";
    char why[CLI_SHARD_WHY_SIZE];
    char *command = command_line(argc, argv);

    if (imgpack_pack_options_create(&opts) != IMGPACK_OK || !command) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    imgpack_pack_options_set_command(opts, command);
    opterr = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (option == 'h') {
            print_help();
            code = EXIT_OK;
            goto out;
        }
        if (option == '?') {
            code = cli_usage_error("pack", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
            goto out;
        }
        if (option == 'Q') {
            quiet = 1;
            continue;
        }
        if (option == 'l' || option == 'o') {
            list = option == 'l' ? optarg : list;
            sort |= option == 'o';
            continue;
        }
        if (option == 'k') {
            if (cli_shard_parse(optarg, &shard, &count) != 0) {
                code = cli_usage_error("pack",
                                       "--shard takes K/N with "
                                       "0 <= K < N, not '%s'",
                                       optarg);
                goto out;
            }
            shard_given = 1;
            continue;
        }
        if (option == 'K') {
            if (cli_parse_u64(optarg, 1, IMGPACK_MAX_SHARDS, &n) != 0) {
                code = cli_usage_error("pack",
                                       "--shards takes 1 to %u, not "
                                       "'%s'",
                                       IMGPACK_MAX_SHARDS, optarg);
                goto out;
            }
            shards = (uint32_t)n;
            continue;
        }
        if ((code = apply_option(opts, option, optarg)) != 0)
            goto out;
        code = EXIT_FAILED;
    }
    if (argc - optind != 2) {
        code = cli_usage_error("pack", "expected SRC_DIR and OUT_DIR");
        goto out;
    }
    if (sort && !list) {
        code = cli_usage_error("pack", "--sort goes with --list");
        goto out;
    }
    if (list)
        imgpack_pack_options_set_list(opts, list, sort);
    if (!shard_given &&
        cli_shard_from_env(shards, &shard, &count, &origin, why) != 0) {
        code = cli_usage_error("pack",
                               "no consistent shard index in the "
                               "environment: %s",
                               why);
        goto out;
    }
    if (imgpack_pack_options_set_shard(opts, shard, count) != IMGPACK_OK) {
        code = cli_usage_error("pack", "shard %u of %u is out of range", shard,
                               count);
        goto out;
    }
    if (count > 1 && !quiet)
        fprintf(stderr, "imgpack: packing shard %u of %u (from %s)\n", shard,
                count, origin);
    ui.src_dir = argv[optind];
    ui.bar = !quiet && isatty(STDERR_FILENO);
    if (imgpack_packer_open(&packer, argv[optind], argv[optind + 1], opts)) {
        cli_error(NULL, "%s", imgpack_packer_errmsg(packer));
        goto out;
    }
    if (imgpack_packer_notice(packer) && !quiet)
        cli_error(NULL, "%s", imgpack_packer_notice(packer));
    imgpack_packer_set_callbacks(packer, on_progress, on_reject, &ui);
    imgpack_status status = imgpack_packer_run(packer);
    clear_bar(&ui);
    imgpack_packer_progress(packer, &progress);
    if (!quiet)
        print_summary(&progress);
    if (status != IMGPACK_OK) {
        cli_error(NULL, "%s", imgpack_packer_errmsg(packer));
        goto out;
    }
    code = progress.rejected > 0 ? EXIT_PARTIAL : EXIT_OK;
out:
    imgpack_packer_close(packer);
    imgpack_pack_options_destroy(opts);
    free(command);
    return code;
}
