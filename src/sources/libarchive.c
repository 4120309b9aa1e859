/* Loading libarchive on first use (libarchive.h says why). */
#include "libarchive.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

/* Every libarchive 3 release has this soname. */
#define LIBARCHIVE_SONAME "libarchive.so.13"

static imgpack__libarchive functions;
static char failure[256]; /* empty once loaded */
static pthread_once_t loaded = PTHREAD_ONCE_INIT;

static void load(void) {
    void *library = dlopen(LIBARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(failure, sizeof failure, "%s", dlerror());
        return;
    }
    /* POSIX's way to store dlsym's result in a function pointer. */
#define IMGPACK__LIBARCHIVE_LOOK_UP(name)                                    \
    if (!failure[0] && !(*(void **)&functions.name = dlsym(library, #name))) \
        snprintf(failure, sizeof failure, "%s: no %s", LIBARCHIVE_SONAME,    \
                 #name);
    IMGPACK__LIBARCHIVE_FUNCTIONS(IMGPACK__LIBARCHIVE_LOOK_UP)
#undef IMGPACK__LIBARCHIVE_LOOK_UP
}

imgpack_status imgpack__libarchive_load(const imgpack__libarchive **out,
                                        imgpack__error *err) {
    pthread_once(&loaded, load);
    *out = &functions;
    if (failure[0])
        return imgpack__error_set(err, IMGPACK_ERR_UNSUPPORTED,
                                  "archives need libarchive, which cannot "
                                  "be loaded: %s",
                                  failure);
    return IMGPACK_OK;
}
