/* A data record's rows read straight from its JSON line into the bulk text that
 * PostgreSQL's COPY and MySQL's LOAD DATA parse (see text_rows.py for that format).
 *
 * Why in C: decoding every value into a Python object and joining it back into text was
 * most of a restore's client CPU, which shares the machine's cores with the server. This
 * takes only the shape the backup itself writes (compact JSON, each row's keys in the
 * declared order, scalar values); anything else returns None and the record goes the
 * Python way, which stays the reference for every value (tests/unit/core/dump/test_bulk.py
 * holds the two to the same output).
 *
 * rows(line, offset, keys, kinds) -> int | bytes | None
 * binary_rows(line, offset, keys, kinds) -> bytes | None: PostgreSQL's binary COPY, below
 *   line    the record, from just after its '"data":['
 *   keys    per declared column, its key as written: b'"name":'
 *   kinds   None: check the rows and count them (an int);
 *           else one byte per column, what its field becomes (bytes):
 *             'n' native: an integer, true/false (1/0) or text
 *             's' text only (decimal, float, date/time, text codecs)
 *             'x' base64 text, written as a bytea hex field (PostgreSQL)
 *             'v' base64 text, checked and written as it is (MySQL decodes it)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Out;

static int out_reserve(Out *o, Py_ssize_t more) {
    if (o->len + more <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + more)
        cap *= 2;
    char *grown = PyMem_RawRealloc(o->data, (size_t)cap);
    if (grown == NULL)
        return -1;
    o->data = grown;
    o->cap = cap;
    return 0;
}

#define PUT(o, c) ((o)->data[(o)->len++] = (char)(c))

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} In;

enum { NOT_TAKEN = 0, TAKEN = 1, NO_MEMORY = -1 };

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u4(In *in, unsigned int *cp) {
    if (in->end - in->p < 4)
        return NOT_TAKEN;
    unsigned int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(in->p[i]);
        if (h < 0)
            return NOT_TAKEN;
        v = (v << 4) | (unsigned int)h;
    }
    in->p += 4;
    *cp = v;
    return TAKEN;
}

/* One code point as a field's UTF-8, with the bulk format's five escapes (raw: none, and
 * NUL refused, which no PostgreSQL text holds: the text path then reports it). */
static int put_codepoint(Out *o, unsigned int cp, int raw) {
    if (out_reserve(o, 4) < 0)
        return NO_MEMORY;
    if (raw && cp == 0)
        return NOT_TAKEN;
    if (!raw)
        switch (cp) {
        case '\\': PUT(o, '\\'); PUT(o, '\\'); return TAKEN;
        case '\t': PUT(o, '\\'); PUT(o, 't'); return TAKEN;
        case '\n': PUT(o, '\\'); PUT(o, 'n'); return TAKEN;
        case '\r': PUT(o, '\\'); PUT(o, 'r'); return TAKEN;
        case 0: PUT(o, '\\'); PUT(o, '0'); return TAKEN;
        }
    if (cp < 0x80) {
        PUT(o, cp);
    } else if (cp < 0x800) {
        PUT(o, 0xC0 | (cp >> 6));
        PUT(o, 0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        PUT(o, 0xE0 | (cp >> 12));
        PUT(o, 0x80 | ((cp >> 6) & 0x3F));
        PUT(o, 0x80 | (cp & 0x3F));
    } else {
        PUT(o, 0xF0 | (cp >> 18));
        PUT(o, 0x80 | ((cp >> 12) & 0x3F));
        PUT(o, 0x80 | ((cp >> 6) & 0x3F));
        PUT(o, 0x80 | (cp & 0x3F));
    }
    return TAKEN;
}

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static Py_ssize_t utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    Py_ssize_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) { n = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) { n = 3; hi = 0x9F; } /* no surrogates */
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) { n = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) { n = 4; hi = 0x8F; }
    else return 0;
    if (end - p < n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (Py_ssize_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* 1 for the bytes a string's plain run holds: ASCII from 0x20 but the quote and the
 * backslash (none of them one the bulk format escapes). */
static unsigned char PLAIN[256];

static void init_plain(void) {
    for (int c = 0x20; c < 0x80; c++)
        PLAIN[c] = c != '"' && c != '\\';
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The bytes of 8 (a 64-bit word) that end a plain run (below 0x20, the quote, the
 * backslash, or from 0x80), as their high bits; 0 when none does. A borrow may mark a byte
 * after a marked one, never before it: the lowest mark is always the first such byte. */
static inline uint64_t specials8(const unsigned char *p) {
    uint64_t x;
    memcpy(&x, p, 8);
    uint64_t quote = x ^ (ONES * '"'), backslash = x ^ (ONES * '\\');
    return (((x - ONES * 0x20) & ~x) | ((quote - ONES) & ~quote) |
            ((backslash - ONES) & ~backslash) | x) &
           HIGHS;
}

/* The end of the plain run from p. */
static inline const unsigned char *plain_run(const unsigned char *p, const unsigned char *end) {
    while (end - p >= 8) {
        uint64_t marks = specials8(p);
        if (marks == 0) {
            p += 8;
            continue;
        }
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return p + (__builtin_ctzll(marks) >> 3);
#else
        break;
#endif
    }
    while (p < end && PLAIN[*p])
        p++;
    return p;
}

/* A JSON string (in->p on its opening quote) as an escaped field (raw: as it is, for a
 * binary COPY), or only checked when o is NULL. */
static int text_field(In *in, Out *o, int raw) {
    const unsigned char *p = in->p + 1, *end = in->end;
    for (;;) {
        const unsigned char *run = p;
        p = plain_run(p, end);
        if (o != NULL && p > run) {
            /* A plain run holds no character the bulk format escapes (all >= 0x20). */
            if (out_reserve(o, p - run) < 0)
                return NO_MEMORY;
            memcpy(o->data + o->len, run, (size_t)(p - run));
            o->len += p - run;
        }
        if (p >= end || *p < 0x20)
            return NOT_TAKEN;
        if (*p == '"') {
            in->p = p + 1;
            return TAKEN;
        }
        if (*p >= 0x80) {
            Py_ssize_t n = utf8_length(p, end);
            if (n == 0)
                return NOT_TAKEN;
            if (o != NULL) {
                if (out_reserve(o, n) < 0)
                    return NO_MEMORY;
                memcpy(o->data + o->len, p, (size_t)n);
                o->len += n;
            }
            p += n;
            continue;
        }
        /* A backslash escape. */
        if (end - p < 2)
            return NOT_TAKEN;
        unsigned int cp;
        switch (p[1]) {
        case '"': cp = '"'; p += 2; break;
        case '\\': cp = '\\'; p += 2; break;
        case '/': cp = '/'; p += 2; break;
        case 'b': cp = '\b'; p += 2; break;
        case 'f': cp = '\f'; p += 2; break;
        case 'n': cp = '\n'; p += 2; break;
        case 'r': cp = '\r'; p += 2; break;
        case 't': cp = '\t'; p += 2; break;
        case 'u': {
            In hex = {p + 2, end};
            if (read_u4(&hex, &cp) != TAKEN)
                return NOT_TAKEN;
            p = hex.p;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return NOT_TAKEN; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned int low;
                if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
                    return NOT_TAKEN;
                In second = {p + 2, end};
                if (read_u4(&second, &low) != TAKEN || low < 0xDC00 || low > 0xDFFF)
                    return NOT_TAKEN;
                p = second.p;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            break;
        }
        default:
            return NOT_TAKEN;
        }
        if (o != NULL) {
            int done = put_codepoint(o, cp, raw);
            if (done != TAKEN)
                return done;
        }
    }
}

static const signed char B64[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
}; /* value + 1; 0: not in the alphabet */

/* Base64 text (in->p on its opening quote) in the form binascii's strict mode takes:
 * whole quads, padding only at the end. 'x' writes COPY's escaped hex (\\x...), 'v' the
 * text as it is, 'r' the bytes it encodes (binary COPY). */
static int bytes_field(In *in, Out *o, char kind) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *start = in->p + 1, *p = start, *end = in->end;
    while (p < end && B64[*p])
        p++;
    const unsigned char *body_end = p;
    int pad = 0;
    while (p < end && *p == '=' && pad < 2) {
        p++;
        pad++;
    }
    if (p >= end || *p != '"')
        return NOT_TAKEN;
    Py_ssize_t n = p - start;
    if (n % 4 != 0)
        return NOT_TAKEN;
    in->p = p + 1;
    if (kind == 'v') {
        if (out_reserve(o, n) < 0)
            return NO_MEMORY;
        memcpy(o->data + o->len, start, (size_t)n);
        o->len += n;
        return TAKEN;
    }
    if (out_reserve(o, 3 + (n / 4) * 6) < 0)
        return NO_MEMORY;
    if (kind == 'x') {
        PUT(o, '\\'); PUT(o, '\\'); PUT(o, 'x');
    }
    /* Whole quads of the alphabet first (all but a padded last one), then that one. */
    const unsigned char *whole_end = start + (body_end - start) / 4 * 4;
    for (const unsigned char *q = start; q < start + n; q += 4) {
        unsigned int v = 0;
        int have = 4;
        if (q < whole_end) {
            v = (unsigned int)(B64[q[0]] - 1) << 18 | (unsigned int)(B64[q[1]] - 1) << 12 |
                (unsigned int)(B64[q[2]] - 1) << 6 | (unsigned int)(B64[q[3]] - 1);
        } else {
            have = 0;
            for (int i = 0; i < 4; i++) {
                if (q + i < body_end) {
                    v = (v << 6) | (unsigned int)(B64[q[i]] - 1);
                    have++;
                } else {
                    v <<= 6;
                }
            }
            if (have < 2)
                return NOT_TAKEN; /* "A===" and the like */
        }
        int count = have - 1;
        for (int i = 0; i < count; i++) {
            unsigned int byte = (v >> (16 - 8 * i)) & 0xFF;
            if (kind == 'r') {
                PUT(o, byte);
            } else {
                PUT(o, digits[byte >> 4]);
                PUT(o, digits[byte & 0xF]);
            }
        }
    }
    return TAKEN;
}

/* An integer of at most 18 digits (no fraction or exponent: those go the Python way). */
static int integer_field(In *in, Out *o) {
    const unsigned char *p = in->p, *start = p, *end = in->end;
    if (*p == '-')
        p++;
    const unsigned char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    Py_ssize_t n = p - digits;
    if (n == 0 || n > 18 || (digits[0] == '0' && n > 1))
        return NOT_TAKEN;
    if (digits[0] == '0' && digits != start)
        return NOT_TAKEN; /* -0 */
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        return NOT_TAKEN;
    in->p = p;
    if (o != NULL) {
        if (out_reserve(o, p - start) < 0)
            return NO_MEMORY;
        memcpy(o->data + o->len, start, (size_t)(p - start));
        o->len += p - start;
    }
    return TAKEN;
}

static int literal(In *in, const char *word, Py_ssize_t n) {
    if (in->end - in->p < n || memcmp(in->p, word, (size_t)n) != 0)
        return 0;
    in->p += n;
    return 1;
}

static int put_text(Out *o, const char *text, Py_ssize_t n) {
    if (o == NULL)
        return TAKEN;
    if (out_reserve(o, n) < 0)
        return NO_MEMORY;
    memcpy(o->data + o->len, text, (size_t)n);
    o->len += n;
    return TAKEN;
}

/* One value; kind 0 (no output): any scalar is taken. */
static int field(In *in, Out *o, char kind) {
    if (in->p >= in->end)
        return NOT_TAKEN;
    unsigned char c = *in->p;
    if (c == 'n')
        return literal(in, "null", 4) ? put_text(o, "\\N", 2) : NOT_TAKEN;
    if (kind != 0 && kind != 'n' && c != '"')
        return NOT_TAKEN; /* another type in a text codec: the Python way decides */
    if (c == '"') {
        if (kind == 'x' || kind == 'v')
            return bytes_field(in, o, kind);
        return text_field(in, o, 0);
    }
    if (c == 't')
        return literal(in, "true", 4) ? put_text(o, "1", 1) : NOT_TAKEN;
    if (c == 'f')
        return literal(in, "false", 5) ? put_text(o, "0", 1) : NOT_TAKEN;
    if (c == '-' || (c >= '0' && c <= '9'))
        return integer_field(in, o);
    return NOT_TAKEN;
}

/* ---- PostgreSQL's binary COPY ------------------------------------------------------
 *
 * The same rows as the tuples of a binary COPY (no signature or trailer: the writer adds
 * those). The server then reads integers, timestamps, numerics and bytea as they are
 * stored instead of parsing their text, about a third of its COPY time. Each field is a
 * 4-byte length (-1 for NULL) and the type's binary form; a row starts with its 2-byte
 * field count. Only values in exactly the form the backup wrote them are taken: anything
 * else (NaN, infinity, a BC or five-digit year, a value out of range) returns None, and
 * the writer sends the record as text, which the server parses and judges as before.
 *
 * Kinds, one byte per column (the writer picks them from the target's column types):
 *   'q' bigint, 'i' integer, 'h' smallint   a JSON integer
 *   'b' boolean                             true / false
 *   's' text, varchar, char(n), json        a JSON string, its UTF-8 as it is
 *   'j' jsonb                               a JSON string, after jsonb's version byte
 *   'r' bytea                               base64 text, its bytes
 *   'd' numeric                             decimal text (digits, one point, a sign)
 *   't' timestamp, 'z' timestamptz          ISO text, microseconds from 2000-01-01 UTC
 *   'D' date                                ISO text, days from 2000-01-01
 *   'u' uuid                                its text, 16 bytes
 */

static void put_be(Out *o, unsigned long long v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--)
        PUT(o, (v >> (8 * i)) & 0xFF);
}

/* A string's content (in->p on its opening quote) with no escape in it, or NOT_TAKEN. */
static int plain_string(In *in, const unsigned char **start, Py_ssize_t *n) {
    const unsigned char *p = in->p + 1, *end = in->end;
    if (in->p >= end || *in->p != '"')
        return NOT_TAKEN;
    while (p < end && *p != '"' && *p != '\\')
        p++;
    if (p >= end || *p != '"')
        return NOT_TAKEN;
    *start = in->p + 1;
    *n = p - *start;
    in->p = p + 1;
    return TAKEN;
}

static int digits_at(const unsigned char *p, int n, long *value) {
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    *value = v;
    return 1;
}

/* Days from 1970-01-01 of a proleptic Gregorian date (PostgreSQL's calendar). */
static long long civil_days(long y, long m, long d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (long long)era * 146097 + doe - 719468;
}

#define POSTGRES_EPOCH_DAYS 10957LL /* 2000-01-01 from 1970-01-01 */

/* "YYYY-MM-DD" (years 0001-9999, a real day), as days from 2000-01-01. */
static int iso_date(const unsigned char *p, Py_ssize_t n, long long *days) {
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    long y, m, d;
    if (n < 10 || p[4] != '-' || p[7] != '-' || !digits_at(p, 4, &y) ||
        !digits_at(p + 5, 2, &m) || !digits_at(p + 8, 2, &d))
        return 0;
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > month_days[m - 1] + (m == 2 && leap))
        return 0;
    *days = civil_days(y, m, d) - POSTGRES_EPOCH_DAYS;
    return 1;
}

/* "YYYY-MM-DD HH:MM:SS[.ffffff]" then, for timestamptz, "+HH[:MM[:SS]]" (or '-'). */
static int iso_timestamp(const unsigned char *p, Py_ssize_t n, int zoned, long long *micros) {
    long long days;
    long h, mi, s, frac = 0, scale = 1000000;
    if (n < 19 || !iso_date(p, 10, &days) || p[10] != ' ' || p[13] != ':' || p[16] != ':' ||
        !digits_at(p + 11, 2, &h) || !digits_at(p + 14, 2, &mi) || !digits_at(p + 17, 2, &s))
        return 0;
    if (h > 23 || mi > 59 || s > 59)
        return 0;
    Py_ssize_t i = 19;
    if (i < n && p[i] == '.') {
        i++;
        Py_ssize_t first = i;
        while (i < n && p[i] >= '0' && p[i] <= '9' && i - first < 6) {
            frac = frac * 10 + (p[i] - '0');
            scale /= 10;
            i++;
        }
        if (i == first || (i < n && p[i] >= '0' && p[i] <= '9'))
            return 0;
        frac *= scale;
    }
    long long offset = 0;
    if (zoned) {
        if (i >= n || (p[i] != '+' && p[i] != '-'))
            return 0;
        int sign = p[i] == '-' ? -1 : 1;
        long oh, om = 0, os = 0;
        if (n - i < 3 || !digits_at(p + i + 1, 2, &oh))
            return 0;
        i += 3;
        if (i < n && p[i] == ':') {
            if (n - i < 3 || !digits_at(p + i + 1, 2, &om))
                return 0;
            i += 3;
            if (i < n && p[i] == ':') {
                if (n - i < 3 || !digits_at(p + i + 1, 2, &os))
                    return 0;
                i += 3;
            }
        }
        if (om > 59 || os > 59)
            return 0;
        offset = sign * (oh * 3600LL + om * 60 + os);
    }
    if (i != n)
        return 0;
    *micros = ((days * 86400LL + h * 3600LL + mi * 60LL + s) - offset) * 1000000LL + frac;
    return 1;
}

/* Decimal text as numeric's binary form: base-10000 digits, the first's weight, the sign
 * and the scale (digits after the point as written, which numeric_out writes in full). */
#define NUMERIC_MAX_DIGITS 1000
static int numeric_field(const unsigned char *p, Py_ssize_t n, Out *o) {
    Py_ssize_t i = 0;
    int negative = 0;
    if (n > 0 && p[0] == '-') {
        negative = 1;
        i = 1;
    }
    Py_ssize_t int_start = i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    Py_ssize_t int_len = i - int_start, frac_start = i, frac_len = 0;
    if (i < n && p[i] == '.') {
        frac_start = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        frac_len = i - frac_start;
        if (frac_len == 0)
            return NOT_TAKEN;
    }
    if (i != n || int_len == 0 || int_len + frac_len > NUMERIC_MAX_DIGITS)
        return NOT_TAKEN;
    if (int_len > 1 && p[int_start] == '0')
        return NOT_TAKEN; /* a leading zero numeric_out does not write */
    /* Base-10000 groups aligned on the point: the integer part's first group is short. */
    int groups[NUMERIC_MAX_DIGITS / 4 + 3];
    int count = 0;
    Py_ssize_t lead = int_len % 4 ? int_len % 4 : 4;
    for (Py_ssize_t at = 0; at < int_len; at += (at == 0 ? lead : 4)) {
        Py_ssize_t len = at == 0 ? lead : 4;
        int g = 0;
        for (Py_ssize_t k = 0; k < len; k++)
            g = g * 10 + (p[int_start + at + k] - '0');
        groups[count++] = g;
    }
    int weight = count - 1;
    for (Py_ssize_t at = 0; at < frac_len; at += 4) {
        int g = 0;
        for (Py_ssize_t k = 0; k < 4; k++)
            g = g * 10 + (at + k < frac_len ? p[frac_start + at + k] - '0' : 0);
        groups[count++] = g;
    }
    int first = 0, last = count;
    while (first < last && groups[first] == 0) {
        first++;
        weight--;
    }
    while (last > first && groups[last - 1] == 0)
        last--;
    if (first == last) {
        if (negative)
            return NOT_TAKEN; /* "-0": the text path decides */
        weight = 0;
    }
    int ndigits = last - first;
    if (out_reserve(o, 4 + 8 + 2 * (Py_ssize_t)ndigits) < 0)
        return NO_MEMORY;
    put_be(o, (unsigned long long)(8 + 2 * ndigits), 4);
    put_be(o, (unsigned long long)ndigits, 2);
    put_be(o, (unsigned long long)(unsigned short)(short)weight, 2);
    put_be(o, negative ? 0x4000 : 0x0000, 2);
    put_be(o, (unsigned long long)frac_len, 2);
    for (int k = first; k < last; k++)
        put_be(o, (unsigned long long)groups[k], 2);
    return TAKEN;
}

static int uuid_field(const unsigned char *p, Py_ssize_t n, Out *o) {
    if (n != 36 || p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-')
        return NOT_TAKEN;
    if (out_reserve(o, 20) < 0)
        return NO_MEMORY;
    put_be(o, 16, 4);
    for (Py_ssize_t i = 0; i < 36;) {
        if (p[i] == '-') {
            i++;
            continue;
        }
        int hi = hexval(p[i]), lo = hexval(p[i + 1]);
        if (hi < 0 || lo < 0)
            return NOT_TAKEN;
        PUT(o, hi << 4 | lo);
        i += 2;
    }
    return TAKEN;
}

/* A field whose length is known once it is written: a placeholder, filled in after. */
static int sized_field(In *in, Out *o, char kind) {
    if (out_reserve(o, 5) < 0)
        return NO_MEMORY;
    Py_ssize_t at = o->len;
    o->len += 4;
    if (kind == 'j')
        PUT(o, 1); /* jsonb's version */
    int done = kind == 'r' ? bytes_field(in, o, 'r') : text_field(in, o, 1);
    if (done != TAKEN)
        return done;
    Py_ssize_t size = o->len - at - 4;
    if (size > 0x7FFFFFFF)
        return NOT_TAKEN;
    for (int i = 0; i < 4; i++)
        o->data[at + i] = (char)((size >> (8 * (3 - i))) & 0xFF);
    return TAKEN;
}

/* A field of a fixed size: its length, then v's low ``bytes`` bytes, big-endian. */
static int fixed_field(Out *o, unsigned long long v, int bytes) {
    if (out_reserve(o, 4 + bytes) < 0)
        return NO_MEMORY;
    put_be(o, (unsigned long long)bytes, 4);
    put_be(o, v, bytes);
    return TAKEN;
}

static int binary_field(In *in, Out *o, char kind) {
    if (in->p >= in->end)
        return NOT_TAKEN;
    unsigned char c = *in->p;
    if (c == 'n') {
        if (!literal(in, "null", 4))
            return NOT_TAKEN;
        if (out_reserve(o, 4) < 0)
            return NO_MEMORY;
        put_be(o, 0xFFFFFFFFULL, 4);
        return TAKEN;
    }
    switch (kind) {
    case 'q': case 'i': case 'h': {
        const unsigned char *start = in->p;
        if (integer_field(in, NULL) != TAKEN)
            return NOT_TAKEN;
        long long v = 0;
        const unsigned char *d = start + (*start == '-');
        for (; d < in->p; d++)
            v = v * 10 + (*d - '0');
        if (*start == '-')
            v = -v;
        int bytes = kind == 'q' ? 8 : kind == 'i' ? 4 : 2;
        if ((bytes == 4 && (v < INT32_MIN || v > INT32_MAX)) ||
            (bytes == 2 && (v < INT16_MIN || v > INT16_MAX)))
            return NOT_TAKEN;
        return fixed_field(o, (unsigned long long)v, bytes);
    }
    case 'b': {
        int v;
        if (literal(in, "true", 4))
            v = 1;
        else if (literal(in, "false", 5))
            v = 0;
        else
            return NOT_TAKEN;
        return fixed_field(o, (unsigned long long)v, 1);
    }
    case 's': case 'j': case 'r':
        return c == '"' ? sized_field(in, o, kind) : NOT_TAKEN;
    case 'd': case 't': case 'z': case 'D': case 'u': {
        const unsigned char *p;
        Py_ssize_t n;
        if (plain_string(in, &p, &n) != TAKEN)
            return NOT_TAKEN;
        if (kind == 'd')
            return numeric_field(p, n, o);
        if (kind == 'u')
            return uuid_field(p, n, o);
        long long v;
        int bytes = kind == 'D' ? 4 : 8;
        if (kind == 'D' ? !(n == 10 && iso_date(p, n, &v)) : !iso_timestamp(p, n, kind == 'z', &v))
            return NOT_TAKEN;
        return fixed_field(o, (unsigned long long)v, bytes);
    }
    }
    return NOT_TAKEN;
}

typedef struct {
    const char *text;
    Py_ssize_t len;
} Key;

/* Whether the text at p is the key (at least its length of bytes readable there): a short
 * key by two overlapping words, without a call to memcmp for every field. */
static inline int same_key(const unsigned char *p, const Key *key) {
    Py_ssize_t n = key->len;
    if (n >= 8 && n <= 16) {
        uint64_t a, b, c, d;
        memcpy(&a, p, 8);
        memcpy(&b, key->text, 8);
        memcpy(&c, p + n - 8, 8);
        memcpy(&d, key->text + n - 8, 8);
        return a == b && c == d;
    }
    return memcmp(p, key->text, (size_t)n) == 0;
}

/* The rows from in->p (just after '['), to the record's closing "]}"; TAKEN with their
 * count, and their text in o unless o is NULL. Runs without the GIL: it reads only the
 * buffers it is given. */
static int transcode(In in, const Key *keys, Py_ssize_t width, const char *kinds, int binary,
                     Out *o, long long *count) {
    *count = 0;
    if (in.p < in.end && *in.p == ']') {
        in.p++;
    } else {
        for (;;) {
            if (in.p >= in.end || *in.p != '{')
                return NOT_TAKEN;
            in.p++;
            if (binary) {
                if (out_reserve(o, 2) < 0)
                    return NO_MEMORY;
                put_be(o, (unsigned long long)width, 2);
            }
            for (Py_ssize_t i = 0; i < width; i++) {
                if (i > 0) {
                    if (in.p >= in.end || *in.p != ',')
                        return NOT_TAKEN;
                    in.p++;
                    if (o != NULL && !binary) {
                        if (out_reserve(o, 1) < 0)
                            return NO_MEMORY;
                        PUT(o, '\t');
                    }
                }
                if (in.end - in.p < keys[i].len || !same_key(in.p, &keys[i]))
                    return NOT_TAKEN;
                in.p += keys[i].len;
                int done = binary ? binary_field(&in, o, kinds[i])
                                  : field(&in, o, kinds ? kinds[i] : 0);
                if (done != TAKEN)
                    return done;
            }
            if (in.p >= in.end || *in.p != '}')
                return NOT_TAKEN;
            in.p++;
            (*count)++;
            if (o != NULL && !binary) {
                if (out_reserve(o, 1) < 0)
                    return NO_MEMORY;
                PUT(o, '\n');
            }
            if (in.p < in.end && *in.p == ',') {
                in.p++;
                continue;
            }
            if (in.p < in.end && *in.p == ']') {
                in.p++;
                break;
            }
            return NOT_TAKEN;
        }
    }
    return (in.end - in.p == 1 && *in.p == '}') ? TAKEN : NOT_TAKEN;
}

static PyObject *run(PyObject *args, int binary) {
    Py_buffer line;
    Py_ssize_t offset;
    PyObject *keys, *kinds_obj;
    if (!PyArg_ParseTuple(args, "y*nO!O", &line, &offset, &PyTuple_Type, &keys, &kinds_obj))
        return NULL;
    PyObject *result = NULL;
    Out out = {NULL, 0, 0};
    Out *o = NULL;
    const char *kinds = NULL;
    Py_ssize_t width = PyTuple_GET_SIZE(keys);
    Key *key_texts = PyMem_Calloc((size_t)(width ? width : 1), sizeof(Key));
    if (key_texts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < width; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys: bytes");
            goto done;
        }
        key_texts[i].text = PyBytes_AS_STRING(key);
        key_texts[i].len = PyBytes_GET_SIZE(key);
    }
    if (kinds_obj != Py_None) {
        if (!PyBytes_Check(kinds_obj) || PyBytes_GET_SIZE(kinds_obj) != width) {
            PyErr_SetString(PyExc_ValueError, "kinds: one byte per key");
            goto done;
        }
        kinds = PyBytes_AS_STRING(kinds_obj);
        o = &out;
    } else if (binary) {
        PyErr_SetString(PyExc_TypeError, "kinds: bytes");
        goto done;
    }
    if (binary && width > 0x7FFF) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (width == 0 || offset < 0 || offset > line.len) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    In in = {(const unsigned char *)line.buf + offset, (const unsigned char *)line.buf + line.len};
    long long count = 0;
    int status;
    /* The keys and kinds are bytes held by args, the line a held buffer: safe to read while
     * other threads (a bulk loader's, the reader's) run. */
    Py_BEGIN_ALLOW_THREADS
    status = (o != NULL && out_reserve(o, line.len - offset + (line.len - offset) / 2 + 64) < 0)
                 ? NO_MEMORY
                 : transcode(in, key_texts, width, kinds, binary, o, &count);
    Py_END_ALLOW_THREADS
    if (status == NO_MEMORY)
        PyErr_NoMemory();
    else if (status != TAKEN)
        result = Py_NewRef(Py_None);
    else if (o == NULL)
        result = PyLong_FromLongLong(count);
    else
        result = PyBytes_FromStringAndSize(out.data, out.len);
done:
    PyMem_RawFree(out.data);
    PyMem_Free(key_texts);
    PyBuffer_Release(&line);
    return result;
}

static PyObject *rows(PyObject *module, PyObject *args) {
    (void)module;
    return run(args, 0);
}

static PyObject *binary_rows(PyObject *module, PyObject *args) {
    (void)module;
    return run(args, 1);
}

static PyMethodDef methods[] = {
    {"rows", rows, METH_VARARGS,
     "rows(line, offset, keys, kinds): a data record's rows counted (kinds None) or as bulk "
     "text; None where the record is not in the backup's own shape."},
    {"binary_rows", binary_rows, METH_VARARGS,
     "binary_rows(line, offset, keys, kinds): a data record's rows as the tuples of "
     "PostgreSQL's binary COPY; None where a value is not in the form the backup writes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_bulk", "Data records into bulk text, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bulk(void) {
    init_plain();
    return PyModule_Create(&module);
}
