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

int cli_parse_u64(const char *text, uint64_t min, uint64_t max,
                  uint64_t *out) {
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

/* Length of the valid UTF-8 sequence at `s`, or 0 if it is not one. */
static int utf8_sequence(const unsigned char *s) {
    int length = s[0] >= 0xf0 && s[0] <= 0xf4   ? 4
                 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
                                                : 0;
    for (int i = 1; i < length; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return length;
}

void cli_json_string(const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    putchar('"');
    while (*s) {
        if (*s == '"' || *s == '\\') {
            printf("\\%c", *s++);
        } else if (*s < 0x20) {
            printf("\\u%04x", *s++);
        } else if (*s < 0x80) {
            putchar(*s++);
        } else {
            int length = utf8_sequence(s);
            if (length == 0) {
                fputs("\\ufffd", stdout);
                s++;
            } else {
                fwrite(s, 1, (size_t)length, stdout);
                s += length;
            }
        }
    }
    putchar('"');
}
