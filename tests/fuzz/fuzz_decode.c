/*
 * libFuzzer target for the packer's pixel path: any bytes in, a crop out or
 * a reject reason, never a crash, a hang or an unbounded allocation.
 *
 * It runs what imgpack__transform_item runs on a file's bytes: sniff and
 * decode with the window of the crop (so JPEG's partial decoding is
 * exercised), plan torchvision's geometry, resize and crop. Every byte of
 * the crop is read, so a pixel the resizer forgot to write, or wrote past,
 * shows up under the sanitizers.
 *
 * Built as a libFuzzer binary with -DIMGPACK_FUZZ=ON (clang), and replayed
 * over tests/fuzz/corpus/decode by tests/fuzz/replay.c in every build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "decode.h"
#include "resize.h"

/* Far below the packer's default limit, so that a fuzzed header claiming a
   huge image is refused before allocation instead of exhausting the
   fuzzer's memory, while real layouts (progressive, subsampled, 16-bit,
   palettes) all still fit. */
#define FUZZ_MAX_PIXELS (4096u * 4096u)

/* The packer's defaults: Resize(256) + CenterCrop(224). */
#define FUZZ_RESIZE 256u
#define FUZZ_CROP 224u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Made once and reused, as a worker thread reuses its own: reuse across
   inputs of different sizes is part of what is tested. */
static imgpack__decoder *decoder;
static imgpack__resizer *resizer;
static uint8_t crop[FUZZ_CROP * FUZZ_CROP * 3];

/* Keeps the sum of the crop alive, so reading it is not optimised away. */
static volatile uint32_t sink;

static void crop_region(void *user, uint32_t width, uint32_t height,
                        imgpack__region *out) {
    imgpack__geometry g;
    imgpack__geometry_plan(width, height, FUZZ_RESIZE, FUZZ_CROP, &g);
    imgpack__geometry_source_region(&g, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    imgpack__window window = {crop_region, NULL};
    imgpack__pixels px;
    imgpack__geometry g;
    char reason[IMGPACK__REASON_SIZE];
    uint32_t sum = 0;

    if ((!decoder && imgpack__decoder_create(&decoder) != IMGPACK_OK) ||
        (!resizer && imgpack__resizer_create(&resizer) != IMGPACK_OK))
        abort();
    if (imgpack__decode_window(decoder, data, size, FUZZ_MAX_PIXELS, &window,
                               &px, reason) != IMGPACK_OK) {
        /* A reject must say why. */
        if (reason[0] == '\0')
            abort();
        goto out;
    }
    if (px.width == 0 || px.height == 0 ||
        (uint64_t)px.width * px.height > FUZZ_MAX_PIXELS ||
        (px.channels != 1 && px.channels != 3) ||
        px.stride < (size_t)px.width * px.channels)
        abort();
    imgpack__geometry_plan(px.width, px.height, FUZZ_RESIZE, FUZZ_CROP, &g);
    if (g.out_width != FUZZ_CROP || g.out_height != FUZZ_CROP)
        abort();
    if (imgpack__resize_crop(resizer, &px, &g, crop,
                             (size_t)g.out_width * px.channels) != IMGPACK_OK)
        goto out;
    for (size_t i = 0; i < (size_t)g.out_width * g.out_height * px.channels;
         i++)
        sum += crop[i];
    sink = sum;
out:
    return 0;
}
