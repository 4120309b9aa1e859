/* The shared helpers of the imgpack command: messages and numbers. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void cli_error(const char *subject, const char *format, ...) {
    va_list args;
    fputs("imgpack: ", stderr);
    if (subject)
        fprintf(stderr, "%s: ", subject);
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
}

int cli_usage_error(const char *command, const char *format, ...) {
    va_list args;
    fputs("imgpack: ", stderr);
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "\nTry 'imgpack %s%s--help'.\n", command ? command : "",
            command ? " " : "");
    return EXIT_USAGE;
}

int cli_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
    char *end;
    if (*text < '0' || *text > '9')
        return -1;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

/* Length of the well-formed UTF-8 sequence at `s` (RFC 3629: no overlong
   forms, no surrogates, nothing past U+10FFFF), or 0 if it is not one. */
static int utf8_sequence(const unsigned char *s) {
    /* The second byte's range depends on the first; later bytes are
       80..BF. */
    unsigned char low = 0x80, high = 0xbf;
    int length;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        length = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        length = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        length = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        low = 0xa0;
    else if (s[0] == 0xed)
        high = 0x9f;
    else if (s[0] == 0xf0)
        low = 0x90;
    else if (s[0] == 0xf4)
        high = 0x8f;
    if (s[1] < low || s[1] > high)
        return 0;
    for (int i = 2; i < length; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return length;
}

void cli_json_string(const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    putchar('"');
    while (*s) {
        int length = *s < 0x80 ? 1 : utf8_sequence(s);
        if (*s == '"' || *s == '\\') {
            printf("\\%c", *s++);
        } else if (*s < 0x20) {
            printf("\\u%04x", *s++);
        } else if (length == 0) {
            /* Python's surrogateescape: byte XY is U+DCXY, which no
               well-formed UTF-8 text holds, so the bytes come back. */
            printf("\\udc%02x", *s++);
        } else {
            fwrite(s, 1, (size_t)length, stdout);
            s += length;
        }
    }
    putchar('"');
}
