/*
 * imgpack_verify's checks of the store itself: every metadata value
 * against its checksum (imgpack_reader_check_meta), then each record
 * 0..count-1 through the reader opened with IMGPACK_OPEN_VERIFY (there,
 * sound header, payload matching its CRC, label below the class count,
 * payload CRC equal to "payload_crcs", and for jpeg and webp a payload
 * that decodes to the header's size), then a complete store's "labels"
 * metadata against the records. What the records say (label, size) is
 * kept for the catalog's check.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "record.h"
#include "verify.h"

static void report_meta(void *ctx, const char *message) {
    imgpack__verify_problem(ctx, IMGPACK_PROBLEM_STORE,
                            IMGPACK_PROBLEM_NO_RECORD, "store: %s", message);
}

void imgpack__verify_meta(imgpack__verify *v) {
    uint64_t found;
    int32_t checked;
    imgpack__verify_set_phase(v, IMGPACK__VERIFY_META);
    if (imgpack_reader_check_meta(v->reader, report_meta, v, &found,
                                  &checked) != IMGPACK_OK)
        imgpack__verify_problem(v, IMGPACK_PROBLEM_STORE,
                                IMGPACK_PROBLEM_NO_RECORD,
                                "store: cannot walk the metadata: %s",
                                imgpack_reader_errmsg(v->reader));
}

/* Decodes a jpeg or webp record; the reader checks that it comes out at
   the header's size. */
static void check_decodes(imgpack__verify *v, uint64_t index,
                          const imgpack_record *rec) {
    imgpack_record decoded;
    uint64_t need = (uint64_t)rec->width * rec->height * rec->channels;
    if (need > v->pixels_capacity) {
        free(v->pixels);
        v->pixels_capacity = 0;
        if (!(v->pixels = malloc(need))) {
            imgpack__verify_problem(v, IMGPACK_PROBLEM_RECORD, index,
                                    "record %" PRIu64 ": cannot allocate "
                                    "%" PRIu64 " bytes to decode it",
                                    index, need);
            return;
        }
        v->pixels_capacity = need;
    }
    if (imgpack_reader_decode(v->reader, index, v->pixels, v->pixels_capacity,
                              &decoded) != IMGPACK_OK)
        imgpack__verify_problem(v, IMGPACK_PROBLEM_RECORD, index,
                                "record %" PRIu64 ": %s", index,
                                imgpack_reader_errmsg(v->reader));
}

void imgpack__verify_records(imgpack__verify *v) {
    int compressed = imgpack_reader_format(v->reader) != IMGPACK_FORMAT_RAW;
    imgpack__verify_set_phase(v, IMGPACK__VERIFY_RECORDS);
    for (uint64_t i = 0; i < v->count; i++) {
        imgpack_record rec;
        atomic_store_explicit(&v->progress->record, i, memory_order_relaxed);
        v->labels[i] = IMGPACK__VERIFY_NO_LABEL;
        v->sizes[i] = 0;
        if (imgpack_reader_get(v->reader, i, &rec) != IMGPACK_OK) {
            imgpack__verify_problem(v, IMGPACK_PROBLEM_RECORD, i,
                                    "record %" PRIu64 ": %s", i,
                                    imgpack_reader_errmsg(v->reader));
            continue;
        }
        v->labels[i] = rec.label;
        /* The catalog's stored_bytes counts the header too. */
        v->sizes[i] = rec.size + IMGPACK__RECORD_HEADER_SIZE;
        if (compressed)
            check_decodes(v, i, &rec);
    }
}

/* A complete store's "labels" metadata, which trainers read instead of
   the records, must say what the records say. */
void imgpack__verify_label_metadata(imgpack__verify *v) {
    imgpack__verify_set_phase(v, IMGPACK__VERIFY_LABELS);
    uint32_t *meta = malloc(v->count ? v->count * sizeof *meta : 1);
    if (!meta) {
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_STORE, IMGPACK_PROBLEM_NO_RECORD,
            "store: cannot allocate room for %" PRIu64 " labels", v->count);
        return;
    }
    if (imgpack_reader_labels(v->reader, meta, v->count) != IMGPACK_OK) {
        imgpack__verify_problem(
            v, IMGPACK_PROBLEM_STORE, IMGPACK_PROBLEM_NO_RECORD,
            "store: labels metadata: %s", imgpack_reader_errmsg(v->reader));
    } else {
        for (uint64_t i = 0; i < v->count; i++)
            if (v->labels[i] != IMGPACK__VERIFY_NO_LABEL &&
                meta[i] != v->labels[i])
                imgpack__verify_problem(v, IMGPACK_PROBLEM_STORE, i,
                                        "record %" PRIu64 ": label %" PRIu32
                                        ", the labels metadata says %" PRIu32,
                                        i, v->labels[i], meta[i]);
    }
    free(meta);
}
