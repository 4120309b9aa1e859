/*
 * MNIST-style sources: the IDX files (images and labels, gzip or not, read
 * through zlib) and the Kaggle CSV form (label,pixel1,...,pixel784). The
 * checks tutorials do by hand happen here, before anything is written:
 * magic numbers, 28x28 images, as many labels as images, labels within the
 * class count. The pixels stay in memory (47 MB for Fashion-MNIST's train
 * set) and become gray records: reading an item is pointing at them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sources.h"

#define IDX_UBYTE 0x08
#define MNIST_SIDE 28
#define MNIST_PIXELS (MNIST_SIDE * MNIST_SIDE)
/* More items than this in one IDX file is not MNIST-like data. */
#define IDX_MAX_ITEMS 100000000u

static const char *const fashion_mnist_names[] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
/* torchvision's MNIST.classes, so names match what users print there. */
static const char *const mnist_names[] = {
    "0 - zero", "1 - one", "2 - two",   "3 - three", "4 - four",
    "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"};

static uint32_t big_endian(const uint8_t b[4]) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           b[3];
}

/* Reads exactly `size` bytes; 0 on success. */
static int read_exact(gzFile f, void *buffer, size_t size) {
    uint8_t *p = buffer;
    while (size > 0) {
        unsigned piece = size > (1u << 30) ? (1u << 30) : (unsigned)size;
        int n = gzread(f, p, piece);
        if (n <= 0)
            return -1;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Opens an IDX file and checks its header: unsigned bytes, `dims`
   dimensions; fills the dimensions. */
static imgpack_status open_idx(const char *path, int dims, uint32_t *sizes,
                               gzFile *out, imgpack__error *err) {
    uint8_t header[4 + 4 * 3];
    gzFile f = gzopen(path, "rb");
    if (!f)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: cannot open: %s", path, strerror(errno));
    if (read_exact(f, header, 4 + 4 * (size_t)dims) != 0 || header[0] ||
        header[1] || header[2] != IDX_UBYTE || header[3] != dims) {
        gzclose(f);
        return imgpack__error_set(
            err, IMGPACK_ERR_INVALID_ARG,
            "%s: not an IDX file of unsigned bytes with %d dimension%s "
            "(magic 0x%08" PRIx32 ", expected 0x%08x)",
            path, dims, dims > 1 ? "s" : "", big_endian(header),
            IDX_UBYTE << 8 | dims);
    }
    for (int d = 0; d < dims; d++)
        sizes[d] = big_endian(header + 4 + 4 * d);
    *out = f;
    return IMGPACK_OK;
}

/* The labels file beside an images file: "images-idx3" -> "labels-idx1",
   with or without ".gz". */
static char *labels_beside(const char *images_path) {
    const char *mark = strstr(images_path, "images-idx3");
    size_t n = strlen(images_path);
    char *path = mark ? malloc(n + 4) : NULL;
    if (!path)
        return NULL;
    memcpy(path, images_path, n + 1);
    memcpy(path + (mark - images_path), "labels-idx1", 11);
    FILE *f = fopen(path, "rb");
    if (!f) {
        /* The other spelling: add or drop the .gz. */
        if (n > 3 && strcmp(path + n - 3, ".gz") == 0)
            path[n - 3] = '\0';
        else
            strcat(path, ".gz");
    } else {
        fclose(f);
    }
    return path;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Gives every item a path "<file>#<index>" and its label. */
static imgpack_status make_items(imgpack__source *src, const char *file,
                                 const uint8_t *labels, size_t count,
                                 imgpack__error *err) {
    size_t capacity = 0;
    imgpack_status status = IMGPACK_OK;
    for (size_t i = 0; i < count && status == IMGPACK_OK; i++) {
        char *path;
        if (asprintf(&path, "%s#%zu", file, i) < 0)
            path = NULL;
        status = path
                     ? imgpack__source_add_item(src, path, labels[i], &capacity)
                     : IMGPACK_ERR_NOMEM;
    }
    if (status != IMGPACK_OK)
        imgpack__error_set(err, status, "out of memory");
    return status;
}

/* Class names "0".."max" for the labels seen. */
static imgpack_status number_classes(imgpack__source *src,
                                     const uint8_t *labels, size_t count,
                                     imgpack__error *err) {
    uint32_t classes = 0;
    for (size_t i = 0; i < count; i++)
        if (labels[i] + 1u > classes)
            classes = labels[i] + 1u;
    src->class_names = calloc(classes ? classes : 1, sizeof(char *));
    src->class_descriptions = calloc(classes ? classes : 1, sizeof(char *));
    if (!src->class_names || !src->class_descriptions)
        return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    for (uint32_t c = 0; c < classes; c++) {
        char name[16]; /* a uint32 in decimal */
        snprintf(name, sizeof name, "%" PRIu32, c);
        if (!(src->class_names[c] = strdup(name)))
            return imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    }
    src->num_classes = classes;
    src->labels_are_ids = 1;
    return IMGPACK_OK;
}

static imgpack_status open_idx_pair(const imgpack__source_request *request,
                                    imgpack__source *src, imgpack__error *err) {
    const char *images_path = request->path, *labels_path = request->labels;
    imgpack_status status;
    gzFile images = NULL, labels = NULL;
    uint32_t image_dims[3] = {0}, label_dims[1] = {0};
    uint8_t *label_bytes = NULL;
    char *found = labels_path ? NULL : labels_beside(images_path);

    memset(src, 0, sizeof *src);
    src->ops = &imgpack__source_pixels;
    if (!labels_path && !(labels_path = found)) {
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: no labels file beside it (name it "
                                    "with --labels)",
                                    images_path);
        goto out;
    }
    if ((status = open_idx(images_path, 3, image_dims, &images, err)) ||
        (status = open_idx(labels_path, 1, label_dims, &labels, err)))
        goto out;
    if (image_dims[1] != MNIST_SIDE || image_dims[2] != MNIST_SIDE) {
        status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                    "%s: images are %" PRIu32 "x%" PRIu32
                                    ", not 28x28",
                                    images_path, image_dims[2], image_dims[1]);
        goto out;
    }
    if (image_dims[0] != label_dims[0] || image_dims[0] > IDX_MAX_ITEMS) {
        status = imgpack__error_set(
            err, IMGPACK_ERR_INVALID_ARG,
            "%s holds %" PRIu32 " images but %s %" PRIu32 " labels",
            images_path, image_dims[0], labels_path, label_dims[0]);
        goto out;
    }
    src->width = src->height = MNIST_SIDE;
    src->pixels = malloc((size_t)image_dims[0] * MNIST_PIXELS + 1);
    label_bytes = malloc((size_t)label_dims[0] + 1);
    src->root = strdup(images_path);
    if (!src->pixels || !label_bytes || !src->root) {
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (read_exact(images, src->pixels, (size_t)image_dims[0] * MNIST_PIXELS) !=
            0 ||
        read_exact(labels, label_bytes, label_dims[0]) != 0) {
        status = imgpack__error_set(err, IMGPACK_ERR_DECODE,
                                    "%s or %s: shorter than its header says",
                                    images_path, labels_path);
        goto out;
    }
    if (!(status = number_classes(src, label_bytes, label_dims[0], err)))
        status = make_items(src, base_name(images_path), label_bytes,
                            label_dims[0], err);
out:
    if (images)
        gzclose(images);
    if (labels)
        gzclose(labels);
    free(label_bytes);
    free(found);
    if (status != IMGPACK_OK)
        imgpack__source_free(src);
    return status;
}

/* Parses one CSV row of a label and 784 pixel values. */
static int parse_row(char *line, uint8_t *label, uint8_t *pixels) {
    char *p = line, *end;
    for (int i = 0; i <= MNIST_PIXELS; i++) {
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 255 ||
            (i < MNIST_PIXELS ? *end != ',' : *end != '\0'))
            return -1;
        if (i == 0)
            *label = (uint8_t)v;
        else
            pixels[i - 1] = (uint8_t)v;
        p = end + 1;
    }
    return 0;
}

static imgpack_status open_csv(const imgpack__source_request *request,
                               imgpack__source *src, imgpack__error *err) {
    const char *csv_path = request->path;
    imgpack_status status = IMGPACK_OK;
    char *line = NULL;
    size_t capacity = 0, rows = 0, allocated = 0, number = 0;
    uint8_t *labels = NULL;
    gzFile f = gzopen(csv_path, "rb");

    memset(src, 0, sizeof *src);
    src->ops = &imgpack__source_pixels;
    src->width = src->height = MNIST_SIDE;
    if (!f)
        return imgpack__error_set(err, imgpack__status_from_errno(errno),
                                  "%s: cannot open: %s", csv_path,
                                  strerror(errno));
    /* Rows are at most 4 * 785 bytes: read them with a fixed buffer. */
    capacity = 8192;
    line = malloc(capacity);
    while (status == IMGPACK_OK && line && gzgets(f, line, (int)capacity)) {
        size_t n = strlen(line);
        number++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (number == 1) {
            if (strncmp(line, "label,pixel1,", 13) != 0)
                status = imgpack__error_set(
                    err, IMGPACK_ERR_INVALID_ARG,
                    "%s: expected the header 'label,pixel1,...,pixel784'",
                    csv_path);
            continue;
        }
        if (n == 0)
            continue;
        if (rows == allocated) {
            allocated = allocated ? allocated * 2 : 4096;
            uint8_t *grown = realloc(src->pixels, allocated * MNIST_PIXELS);
            uint8_t *more = realloc(labels, allocated);
            if (grown)
                src->pixels = grown;
            if (more)
                labels = more;
            if (!grown || !more) {
                status =
                    imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
                break;
            }
        }
        if (parse_row(line, &labels[rows], src->pixels + rows * MNIST_PIXELS))
            status = imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                        "%s: line %zu: expected a label and "
                                        "784 values from 0 to 255",
                                        csv_path, number);
        rows++;
    }
    if (status == IMGPACK_OK && !(src->root = strdup(csv_path)))
        status = imgpack__error_set(err, IMGPACK_ERR_NOMEM, "out of memory");
    if (status == IMGPACK_OK &&
        !(status = number_classes(src, labels, rows, err)))
        status = make_items(src, base_name(csv_path), labels, rows, err);
    gzclose(f);
    free(line);
    free(labels);
    if (status != IMGPACK_OK)
        imgpack__source_free(src);
    return status;
}

/* Item `index` is already pixels: no file to read, nothing to decode. */
static imgpack_status read_pixels(const imgpack__source *src, size_t index,
                                  imgpack__item_buffer *buffer,
                                  imgpack__item_data *out,
                                  char reason[IMGPACK__REASON_SIZE]) {
    size_t bytes = (size_t)src->width * src->height;
    (void)buffer;
    (void)reason;
    out->data = src->pixels + index * bytes;
    out->size = bytes;
    out->decoded = 1;
    out->pixels =
        (imgpack__pixels){out->data, src->width, src->height, 1, src->width};
    return IMGPACK_OK;
}

static void free_pixels(imgpack__source *src) {
    free(src->pixels);
    src->pixels = NULL;
}

static int claims_pixels(const imgpack__source_request *request) {
    const char *path = request->path;
    return !request->is_dir &&
           (strstr(path, "idx3-ubyte") || imgpack__ends_with(path, ".csv") ||
            imgpack__ends_with(path, ".csv.gz"));
}

static imgpack_status open_pixels(const imgpack__source_request *request,
                                  imgpack__source *src, imgpack__error *err) {
    return strstr(request->path, "idx3-ubyte")
               ? open_idx_pair(request, src, err)
               : open_csv(request, src, err);
}

const imgpack__source_ops imgpack__source_pixels = {
    .claims = claims_pixels,
    .open = open_pixels,
    .read = read_pixels,
    .close = free_pixels,
    .gray = 1,
};

imgpack_status imgpack__source_name_classes(imgpack__source *src,
                                            const char *names,
                                            imgpack__error *err) {
    const char *const *table = NULL;
    uint32_t count = 0;
    if (!src->labels_are_ids)
        return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                  "--class-names needs a source labelled by "
                                  "class ids");
    if (strcmp(names, "fashion-mnist") == 0)
        table = fashion_mnist_names, count = 10;
    else if (strcmp(names, "mnist") == 0)
        table = mnist_names, count = 10;
    else
        return imgpack__source_read_class_names(src, names, err);
    if (src->num_classes > count)
        return imgpack__error_set(err, IMGPACK_ERR_INVALID_ARG,
                                  "label %" PRIu32 " is not below the %" PRIu32
                                  " classes of %s",
                                  src->num_classes - 1, count, names);
    return imgpack__source_set_class_names(src, table, count, err);
}
