/* Writing the dump's JSON values into a growing buffer: shared by the C modules that turn a
 * server's plain column values into a backup's rows (dialects/postgresql/_copy_out.c,
 * dialects/mysql/_wire.c), so that both write strings and base64 by one rule.
 *
 * Strings are escaped as each server's own JSON function escapes them (PostgreSQL's
 * to_json, MariaDB's JSON_QUOTE): '"' and '\\', \b \f \n \r \t, and every other byte below
 * 0x20 as \u00XX, in lower-case hex for PostgreSQL and upper-case for MariaDB. Every other
 * byte is copied as it is (the text is UTF-8 already). Bytes are standard base64 with
 * padding and no line breaks.
 */
#ifndef ZENMIGRATE_JSON_OUT_H
#define ZENMIGRATE_JSON_OUT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t size, room;
} JsonOut;

/* Room for `more` bytes past what is written; -1 when memory ran out. */
static int json_reserve(JsonOut *out, size_t more) {
    if (out->size + more <= out->room)
        return 0;
    size_t room = out->room ? out->room : 1 << 16;
    while (room < out->size + more)
        room *= 2;
    char *data = realloc(out->data, room);
    if (data == NULL)
        return -1;
    out->data = data;
    out->room = room;
    return 0;
}

/* The most bytes a value of n bytes takes as a JSON string (escaped or base64), quotes in. */
static size_t json_most(size_t n) { return n * 6 + 2; }

static void json_put(JsonOut *out, const char *bytes, size_t n) {
    memcpy(out->data + out->size, bytes, n);
    out->size += n;
}

/* What each byte becomes in a JSON string: 0 itself, else the escape's letter ('u': \u00XX). */
static char json_escape[256];

static void json_init(void) {
    for (int b = 0; b < 0x20; b++)
        json_escape[b] = 'u';
    json_escape['\b'] = 'b';
    json_escape['\f'] = 'f';
    json_escape['\n'] = 'n';
    json_escape['\r'] = 'r';
    json_escape['\t'] = 't';
    json_escape['"'] = '"';
    json_escape['\\'] = '\\';
}

/* The n bytes at p as a JSON string; room for json_most(n) must be reserved. */
static void json_put_string(JsonOut *out, const unsigned char *p, size_t n, const char *hex) {
    char *o = out->data + out->size;
    const unsigned char *end = p + n;
    *o++ = '"';
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && !json_escape[*p])
            p++;
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
        if (p == end)
            break;
        char letter = json_escape[*p];
        *o++ = '\\';
        *o++ = letter;
        if (letter == 'u') {
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
        p++;
    }
    *o++ = '"';
    out->size = (size_t)(o - out->data);
}

/* The n bytes at p as a base64 JSON string; room for json_most(n) must be reserved. */
static void json_put_base64(JsonOut *out, const unsigned char *p, size_t n) {
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = out->data + out->size;
    size_t i = 0;
    *o++ = '"';
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = digits[v >> 18];
        *o++ = digits[v >> 12 & 63];
        *o++ = digits[v >> 6 & 63];
        *o++ = digits[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = digits[v >> 18];
        *o++ = digits[v >> 12 & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = digits[v >> 18];
        *o++ = digits[v >> 12 & 63];
        *o++ = digits[v >> 6 & 63];
        *o++ = '=';
    }
    *o++ = '"';
    out->size = (size_t)(o - out->data);
}

#endif
