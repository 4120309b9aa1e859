/*
 * imgpack grid: a contact sheet of records, so a person sees at a glance
 * that crops are centred, colours right and labels correct.
 *
 * Cells are laid out row by row, GAP pixels apart and from the border;
 * under each row runs a caption strip that names, under each cell, the
 * record index and class name, and the class description when the store
 * has one. A cell is as large as the store's records (the largest selected
 * record when sizes vary, each then centred in its cell) and holds the
 * record's pixels unscaled, byte for byte, so the sheet can be checked
 * against the store. --json prints where each record landed.
 *
 * PNG is written through libpng's simplified API, JPEG through libjpeg
 * (whose error exit longjmps: it stays inside write_jpeg).
 */
#include <getopt.h>
#include <inttypes.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* jpeglib.h uses size_t and FILE without including their headers. */
#include <jpeglib.h>

#include "cli.h"
#include "font.h"
#include "imgpack/reader.h"

/* Images on one sheet: 1024 ImageNet records make a 1796 x 32000 sheet,
   already more than a viewer shows comfortably. */
#define MAX_CELLS 1024
/* Columns: wider sheets are not looked at, only scrolled. */
#define MAX_COLS 64
#define DEFAULT_COLS 8
/* Pixels between cells, and between the cells and the border. */
#define GAP 4
/* JPEG cannot hold more pixels than this per side. */
#define MAX_SIDE 65500
/* The sheet's pixel buffer: over this, the selection is a mistake. */
#define MAX_SHEET_BYTES ((uint64_t)1 << 30)
/* Caption characters beyond this are cut whatever the cell width. */
#define MAX_CAPTION 256

static const uint8_t background[3] = {24, 24, 24};
static const uint8_t caption_color[3] = {240, 240, 240};
static const uint8_t description_color[3] = {160, 200, 255};

static void print_help(void) {
    printf("Usage: imgpack grid OUT_DIR -o SHEET [--per-class K] "
           "[--classes A,B,...]\n"
           "                   [--indices LIST] [--cols C] [--quality Q] "
           "[--json]\n\n"
           "Writes a contact sheet of records of the store OUT_DIR: each\n"
           "record unscaled in its cell, with its index, class name and\n"
           "description in a caption strip under each row.\n\n"
           "Which records: --indices LIST (e.g. 0,5,10-20), or else the first\n"
           "K records of each class (default K 1), of every class or of\n"
           "those named by --classes, in the order given. At most 1024.\n\n"
           "Options:\n"
           "  -o, --output SHEET  the image: .png, or .jpg/.jpeg\n"
           "  --per-class K       records per class (default 1)\n"
           "  --classes A,B,...   only these classes (directory names)\n"
           "  --indices LIST      these records, comma-separated, a-b ranges\n"
           "  --cols C            cells per row (default K when K > 1, else "
           "8; at most 64)\n"
           "  --quality Q         JPEG quality 1..100 (default 90)\n"
           "  --json              print the layout: each cell's record and\n"
           "                      where its pixels are on the sheet\n"
           "  --help              this text\n");
}

static int has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcasecmp(name + n - s, suffix) == 0;
}

/* What was asked on the command line. */
typedef struct grid_args {
    const char *dir;
    const char *output;
    const char *classes; /* comma-separated names, or NULL: every class */
    const char *indices; /* LIST, or NULL: per-class selection */
    uint64_t per_class;  /* 0: not given */
    uint64_t cols;       /* 0: not given */
    uint64_t quality;
    int json;
} grid_args;

/* One cell: its record and where the pixels go. */
typedef struct cell {
    uint64_t index;
    uint32_t label;
    uint32_t width, height; /* the record's */
    uint32_t x, y;          /* of the record's top-left pixel on the sheet */
} cell;

typedef struct sheet {
    cell *cells;
    uint32_t n;
    uint32_t cols, rows;
    uint32_t cell_width, cell_height;
    uint32_t scale;   /* font pixel size */
    uint32_t caption; /* height of a caption strip */
    uint32_t width, height;
    uint8_t *rgb;
} sheet;

/* Parses "0,5,10-20" into cells; returns 0, or prints why not and
   returns EXIT_USAGE. */
static int parse_indices(const char *list, sheet *s) {
    const char *p = list;
    char number[32];
    while (*p) {
        uint64_t first, last;
        size_t len = strcspn(p, ",-");
        if (len == 0 || len >= sizeof number)
            goto bad;
        memcpy(number, p, len);
        number[len] = '\0';
        if (cli_parse_u64(number, 0, UINT64_MAX, &first))
            goto bad;
        p += len;
        last = first;
        if (*p == '-') {
            p++;
            len = strcspn(p, ",");
            if (len == 0 || len >= sizeof number)
                goto bad;
            memcpy(number, p, len);
            number[len] = '\0';
            if (cli_parse_u64(number, first, UINT64_MAX, &last))
                goto bad;
            p += len;
        }
        if (*p == ',' && *++p == '\0')
            goto bad;
        for (uint64_t i = first; i <= last; i++) {
            if (s->n == MAX_CELLS)
                return cli_usage_error("grid", "more than %d records asked",
                                       MAX_CELLS);
            s->cells[s->n++].index = i;
            if (i == UINT64_MAX)
                break;
        }
    }
    return 0;
bad:
    return cli_usage_error("grid",
                           "--indices wants numbers and a-b ranges "
                           "separated by commas, not '%s'",
                           list);
}

/* The class named `name` (of length len) into *id; 0 if found. */
static int find_class(imgpack_reader *r, const char *name, size_t len,
                      uint32_t *id) {
    for (uint32_t c = 0; c < imgpack_reader_num_classes(r); c++) {
        const char *have = imgpack_reader_class_name(r, c);
        if (strlen(have) == len && memcmp(have, name, len) == 0) {
            *id = c;
            return 0;
        }
    }
    return -1;
}

/* Adds the first `k` records of class `id` to the sheet; -1 when the
   sheet would exceed MAX_CELLS. */
static int add_class(sheet *s, const uint32_t *labels, uint64_t count,
                     uint32_t id, uint64_t k) {
    uint64_t taken = 0;
    for (uint64_t i = 0; i < count && taken < k; i++)
        if (labels[i] == id) {
            if (s->n == MAX_CELLS)
                return -1;
            s->cells[s->n++].index = i;
            taken++;
        }
    return 0;
}

/* Chooses records per class; returns an exit status, EXIT_OK when done. */
static int select_per_class(imgpack_reader *r, const grid_args *a, sheet *s) {
    uint64_t count = imgpack_reader_count(r);
    uint64_t k = a->per_class ? a->per_class : 1;
    uint32_t *labels = malloc((count ? count : 1) * sizeof *labels);
    int code = EXIT_FAILED, full = 0;
    if (!labels) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    if (imgpack_reader_labels(r, labels, count)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(r));
        goto out;
    }
    if (!a->classes) {
        for (uint32_t c = 0; c < imgpack_reader_num_classes(r) && !full; c++)
            full = add_class(s, labels, count, c, k) != 0;
    } else {
        for (const char *p = a->classes; *p && !full;) {
            size_t len = strcspn(p, ",");
            uint32_t id;
            if (find_class(r, p, len, &id)) {
                cli_error(a->dir, "no class named '%.*s'", (int)len, p);
                goto out;
            }
            full = add_class(s, labels, count, id, k) != 0;
            p += len + (p[len] == ',');
        }
    }
    if (full) {
        code = cli_usage_error("grid",
                               "more than %d records asked; choose "
                               "fewer with --classes or --per-class",
                               MAX_CELLS);
        goto out;
    }
    if (s->n == 0) {
        cli_error(a->dir, "no records to show");
        goto out;
    }
    code = EXIT_OK;
out:
    free(labels);
    return code;
}

/* Reads each cell's record size and label, sizes the cells and the sheet
   and places the records; returns an exit status. */
static int lay_out(imgpack_reader *r, const grid_args *a, sheet *s) {
    imgpack_record rec;
    for (uint32_t i = 0; i < s->n; i++) {
        if (imgpack_reader_get(r, s->cells[i].index, &rec)) {
            cli_error(NULL, "%s", imgpack_reader_errmsg(r));
            return EXIT_FAILED;
        }
        s->cells[i].label = rec.label;
        s->cells[i].width = rec.width;
        s->cells[i].height = rec.height;
        if (rec.width > s->cell_width)
            s->cell_width = rec.width;
        if (rec.height > s->cell_height)
            s->cell_height = rec.height;
    }
    /* K records per class in rows of K: one class per row. */
    if (a->cols)
        s->cols = (uint32_t)a->cols;
    else if (a->per_class > 1 && a->per_class <= MAX_COLS)
        s->cols = (uint32_t)a->per_class;
    else
        s->cols = DEFAULT_COLS;
    if (s->cols > s->n)
        s->cols = s->n;
    s->rows = (s->n + s->cols - 1) / s->cols;
    /* Twice-size text reads well under 224-pixel cells; small ones keep
       the plain 5x7. */
    s->scale = s->cell_width >= 160 ? 2 : 1;
    s->caption = (2 * (FONT_HEIGHT + 3) + 2) * s->scale;
    uint64_t width = GAP + (uint64_t)s->cols * (s->cell_width + GAP);
    uint64_t height =
        GAP + (uint64_t)s->rows * (s->cell_height + s->caption + GAP);
    if (width > MAX_SIDE || height > MAX_SIDE ||
        width * height * 3 > MAX_SHEET_BYTES) {
        cli_error(a->output,
                  "a %" PRIu64 " x %" PRIu64 " sheet is too big; "
                  "choose fewer records or other --cols",
                  width, height);
        return EXIT_FAILED;
    }
    s->width = (uint32_t)width;
    s->height = (uint32_t)height;
    for (uint32_t i = 0; i < s->n; i++) {
        cell *c = &s->cells[i];
        uint32_t col = i % s->cols, row = i / s->cols;
        c->x =
            GAP + col * (s->cell_width + GAP) + (s->cell_width - c->width) / 2;
        c->y = GAP + row * (s->cell_height + s->caption + GAP) +
               (s->cell_height - c->height) / 2;
    }
    return EXIT_OK;
}

/* Copies record pixels (1 or 3 channels) into the sheet at the cell. */
static void paste(sheet *s, const cell *c, const imgpack_record *rec) {
    for (uint32_t y = 0; y < rec->height; y++) {
        const uint8_t *src = rec->data + (size_t)y * rec->width * rec->channels;
        uint8_t *dst = s->rgb + ((size_t)(c->y + y) * s->width + c->x) * 3;
        if (rec->channels == 3) {
            memcpy(dst, src, (size_t)rec->width * 3);
        } else {
            for (uint32_t x = 0; x < rec->width; x++)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
        }
    }
}

/* The caption lines of cell `i`: index and class name, description. */
static void draw_caption(imgpack_reader *r, sheet *s, uint32_t i) {
    const cell *c = &s->cells[i];
    char text[MAX_CAPTION], key[32];
    uint8_t description[MAX_CAPTION];
    uint64_t size = 0;
    uint32_t left = GAP + (i % s->cols) * (s->cell_width + GAP);
    uint32_t top = GAP + (i / s->cols) * (s->cell_height + s->caption + GAP) +
                   s->cell_height + 2 * s->scale;
    uint32_t line = (FONT_HEIGHT + 3) * s->scale;
    size_t stride = (size_t)s->width * 3;

    snprintf(text, sizeof text, "#%" PRIu64 " %s", c->index,
             imgpack_reader_class_name(r, c->label));
    font_draw(s->rgb, stride, left, top, left + s->cell_width, s->scale,
              caption_color, text);
    snprintf(key, sizeof key, IMGPACK_META_DESCRIPTION_FORMAT, c->label);
    if (imgpack_reader_meta(r, key, description, sizeof description - 1,
                            &size) == IMGPACK_OK) {
        description[size < sizeof description - 1 ? size
                                                  : sizeof description - 1] =
            '\0';
        font_draw(s->rgb, stride, left, top + line, left + s->cell_width,
                  s->scale, description_color, (const char *)description);
    }
}

/* Fills the sheet: background, records, captions; returns an exit status. */
static int draw(imgpack_reader *r, sheet *s) {
    uint64_t bytes = (uint64_t)s->cell_width * s->cell_height * 3;
    uint8_t *pixels = malloc(bytes);
    imgpack_record rec;
    int code = EXIT_FAILED;
    if (!pixels || !(s->rgb = malloc((size_t)s->width * s->height * 3))) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    for (size_t p = 0; p < (size_t)s->width * s->height; p++)
        memcpy(s->rgb + 3 * p, background, 3);
    for (uint32_t i = 0; i < s->n; i++) {
        if (imgpack_reader_decode(r, s->cells[i].index, pixels, bytes, &rec)) {
            cli_error(NULL, "%s", imgpack_reader_errmsg(r));
            goto out;
        }
        paste(s, &s->cells[i], &rec);
        draw_caption(r, s, i);
    }
    code = EXIT_OK;
out:
    free(pixels);
    return code;
}

static int write_png(const char *path, const sheet *s) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = s->width;
    image.height = s->height;
    image.format = PNG_FORMAT_RGB;
    int ok = png_image_write_to_file(&image, path, 0, s->rgb, 0, NULL);
    png_image_free(&image);
    return ok ? 0 : -1;
}

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
} jpeg_failure;

static void jpeg_fail(j_common_ptr cinfo) {
    longjmp(((jpeg_failure *)(void *)cinfo->err)->jump, 1);
}

static int write_jpeg(const char *path, const sheet *s, int quality) {
    struct jpeg_compress_struct cinfo;
    jpeg_failure failure;
    /* volatile: changed after setjmp and read after the longjmp. */
    FILE *volatile f = NULL;
    volatile int result = -1;

    cinfo.err = jpeg_std_error(&failure.mgr);
    failure.mgr.error_exit = jpeg_fail;
    if (setjmp(failure.jump))
        goto out;
    jpeg_create_compress(&cinfo);
    if (!(f = fopen(path, "wb")))
        goto out;
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = s->width;
    cinfo.image_height = s->height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    /* Full-resolution chroma: coloured caption text stays sharp. */
    cinfo.comp_info[0].h_samp_factor = cinfo.comp_info[0].v_samp_factor = 1;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = s->rgb + (size_t)cinfo.next_scanline * s->width * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    result = 0;
out:
    jpeg_destroy_compress(&cinfo);
    if (f && fclose(f) != 0)
        result = -1;
    return result;
}

static void print_json(imgpack_reader *r, const grid_args *a, const sheet *s) {
    fputs("{\"output\": ", stdout);
    cli_json_string(a->output);
    printf(
        ", \"width\": %" PRIu32 ", \"height\": %" PRIu32 ", \"cols\": %" PRIu32
        ", \"rows\": %" PRIu32 ", \"cell_width\": %" PRIu32
        ", \"cell_height\": %" PRIu32 ", \"cells\": [",
        s->width, s->height, s->cols, s->rows, s->cell_width, s->cell_height);
    for (uint32_t i = 0; i < s->n; i++) {
        const cell *c = &s->cells[i];
        printf("%s{\"index\": %" PRIu64 ", \"label\": %" PRIu32 ", \"class\": ",
               i ? ", " : "", c->index, c->label);
        cli_json_string(imgpack_reader_class_name(r, c->label));
        printf(", \"x\": %" PRIu32 ", \"y\": %" PRIu32 ", \"width\": %" PRIu32
               ", \"height\": %" PRIu32 "}",
               c->x, c->y, c->width, c->height);
    }
    fputs("]}\n", stdout);
}

/* Reads the options into *a; returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, grid_args *a) {
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},
        {"per-class", required_argument, NULL, 'k'},
        {"classes", required_argument, NULL, 'c'},
        {"indices", required_argument, NULL, 'i'},
        {"cols", required_argument, NULL, 'C'},
        {"quality", required_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int option;
    memset(a, 0, sizeof *a);
    a->quality = 90;
    opterr = 0;
    while ((option = getopt_long(argc, argv, "ho:", options, NULL)) != -1) {
        switch (option) {
        case 'h':
            print_help();
            return EXIT_OK;
        case 'o':
            a->output = optarg;
            break;
        case 'k':
            if (cli_parse_u64(optarg, 1, MAX_CELLS, &a->per_class))
                return cli_usage_error("grid",
                                       "--per-class wants 1..%d, not "
                                       "'%s'",
                                       MAX_CELLS, optarg);
            break;
        case 'c':
            if (!*optarg)
                return cli_usage_error("grid", "--classes wants names");
            a->classes = optarg;
            break;
        case 'i':
            if (!*optarg)
                return cli_usage_error("grid", "--indices wants records");
            a->indices = optarg;
            break;
        case 'C':
            if (cli_parse_u64(optarg, 1, MAX_COLS, &a->cols))
                return cli_usage_error("grid", "--cols wants 1..%d, not '%s'",
                                       MAX_COLS, optarg);
            break;
        case 'q':
            if (cli_parse_u64(optarg, 1, 100, &a->quality))
                return cli_usage_error("grid",
                                       "--quality wants 1..100, not "
                                       "'%s'",
                                       optarg);
            break;
        case 'j':
            a->json = 1;
            break;
        default:
            return cli_usage_error("grid",
                                   "unknown or incomplete option "
                                   "'%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 1 || !a->output)
        return cli_usage_error("grid", "expected OUT_DIR -o SHEET");
    a->dir = argv[optind];
    if (!has_suffix(a->output, ".png") && !has_suffix(a->output, ".jpg") &&
        !has_suffix(a->output, ".jpeg"))
        return cli_usage_error("grid",
                               "SHEET must end in .png, .jpg or "
                               ".jpeg: '%s'",
                               a->output);
    if (a->indices && (a->classes || a->per_class))
        return cli_usage_error("grid", "--indices chooses the records alone: "
                                       "not with --classes or --per-class");
    return -1;
}

int cmd_grid(int argc, char **argv) {
    grid_args a;
    sheet s;
    imgpack_reader *reader = NULL;
    int code = parse_args(argc, argv, &a);
    if (code >= 0)
        return code;
    memset(&s, 0, sizeof s);
    code = EXIT_FAILED;
    if (!(s.cells = calloc(MAX_CELLS, sizeof *s.cells))) {
        cli_error(NULL, "out of memory");
        goto out;
    }
    if (a.indices && (code = parse_indices(a.indices, &s)) != EXIT_OK)
        goto out;
    code = EXIT_FAILED;
    if (imgpack_reader_open(&reader, a.dir, IMGPACK_OPEN_INCOMPLETE)) {
        cli_error(NULL, "%s", imgpack_reader_errmsg(reader));
        goto out;
    }
    if ((!a.indices && (code = select_per_class(reader, &a, &s)) != EXIT_OK) ||
        (code = lay_out(reader, &a, &s)) != EXIT_OK ||
        (code = draw(reader, &s)) != EXIT_OK)
        goto out;
    code = EXIT_FAILED;
    if ((has_suffix(a.output, ".png")
             ? write_png(a.output, &s)
             : write_jpeg(a.output, &s, (int)a.quality)) != 0) {
        cli_error(a.output, "cannot write the sheet");
        goto out;
    }
    if (a.json)
        print_json(reader, &a, &s);
    code = EXIT_OK;
out:
    free(s.rgb);
    free(s.cells);
    imgpack_reader_close(reader);
    return code;
}
