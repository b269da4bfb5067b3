/* A backup's rows read off a binary COPY and written as the dump's JSON objects, in C.
 *
 * Why in C: rendering each row as JSON on the server (to_json and string concatenation)
 * cost the server 2.1 s per million rows of bench dataset (a) against 0.9 s for a plain
 * COPY, and reading one CopyData message per Python call cost the client about a
 * microsecond and a half a row more (docs/performance.md). Here the server sends each
 * column in binary COPY (integers and booleans as themselves, bytea as its bytes, every
 * other column as its text), and this loop takes the messages from libpq and writes the
 * JSON the server used to write, byte for byte: the same escapes as PostgreSQL's to_json.
 *
 * The libpq functions are passed in as addresses (PQgetCopyData and PQfreemem of the very
 * libpq psycopg loaded; copy_out.py finds them), with psycopg's PGconn pointer: psycopg
 * documents pgconn_ptr for calling libpq functions it does not wrap.
 *
 * fetch(conn, getcopydata, freemem, kinds, keys, header, max_rows, max_bytes)
 *     -> (status, rows, data, header)
 *   kinds: one byte a column: 'i' an integer (2, 4 or 8 bytes), 'b' a boolean, 's' text
 *   written as a JSON string, 'x' bytes written as a base64 JSON string.
 *   keys: one bytes object a column, written before its value ('{"id":', ',"name":').
 *   header: the next message starts with the binary COPY header (the first row).
 *   Reads rows until max_rows rows or max_bytes bytes are written, or libpq has no whole
 *   message buffered (status 1: wait for the socket, consume input, call again), or the
 *   COPY ended (status 2), or libpq failed (status 3: its error message says why). data
 *   is the rows' objects joined by commas. A message not in the expected shape raises
 *   ValueError, naming what was wrong.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../../_json_out.h"

typedef int (*getcopydata_fn)(void *conn, char **buffer, int async);
typedef void (*freemem_fn)(void *ptr);

static const char HEADER[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
/* to_json's \u00XX escapes are in lower-case hex. */
static const char HEX[] = "0123456789abcdef";
/* put_row's answer when memory ran out (told apart from what is wrong with a row). */
static const char NO_MEMORY[] = "out of memory";

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_integer(JsonOut *out, const unsigned char *p, int32_t len) {
    int64_t value;
    if (len == 2)
        value = (int16_t)(p[0] << 8 | p[1]);
    else if (len == 4)
        value = (int32_t)be32(p);
    else
        value = (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
    char digits[24];
    int n = 0;
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0)
        out->data[out->size++] = '-';
    while (n)
        out->data[out->size++] = digits[--n];
}

/* One row's message as its JSON object; NULL, or what is wrong with it. */
static const char *put_row(JsonOut *out, const unsigned char *p, size_t n, const char *kinds,
                           Py_ssize_t columns, const char **keys, const Py_ssize_t *key_sizes) {
    const unsigned char *end = p + n;
    if (n < 2 || (p[0] << 8 | p[1]) != columns)
        return "a row's field count is not the number of columns";
    p += 2;
    for (Py_ssize_t c = 0; c < columns; c++) {
        if (end - p < 4)
            return "a row ends inside a field's length";
        int32_t len = (int32_t)be32(p);
        p += 4;
        if (len < -1 || end - p < (len < 0 ? 0 : len))
            return "a field's length runs past its row";
        size_t most = len < 0 ? 4 : json_most((size_t)len) + 24;
        if (json_reserve(out, (size_t)key_sizes[c] + most + 1) < 0)
            return NO_MEMORY;
        json_put(out, keys[c], (size_t)key_sizes[c]);
        if (len < 0) {
            json_put(out, "null", 4);
            continue;
        }
        switch (kinds[c]) {
        case 'i':
            if (len != 2 && len != 4 && len != 8)
                return "an integer column's value is not 2, 4 or 8 bytes";
            put_integer(out, p, len);
            break;
        case 'b':
            if (len != 1)
                return "a boolean column's value is not 1 byte";
            if (p[0])
                json_put(out, "true", 4);
            else
                json_put(out, "false", 5);
            break;
        case 's':
            json_put_string(out, p, (size_t)len, HEX);
            break;
        default: /* 'x' */
            json_put_base64(out, p, (size_t)len);
        }
        p += len;
    }
    if (p != end)
        return "a row has bytes after its last field";
    out->data[out->size++] = '}';
    return NULL;
}

static PyObject *fetch(PyObject *module, PyObject *args) {
    (void)module;
    unsigned long long conn_ptr, get_ptr, free_ptr;
    const char *kinds;
    Py_ssize_t columns, max_rows, max_bytes;
    PyObject *keys_tuple;
    int header;
    if (!PyArg_ParseTuple(args, "KKKy#O!pnn", &conn_ptr, &get_ptr, &free_ptr, &kinds, &columns,
                          &PyTuple_Type, &keys_tuple, &header, &max_rows, &max_bytes))
        return NULL;
    if (!conn_ptr || !get_ptr || !free_ptr || columns < 1 || columns > 1600 ||
        PyTuple_GET_SIZE(keys_tuple) != columns || max_rows < 1 || max_bytes < 1) {
        PyErr_SetString(PyExc_ValueError, "fetch: bad arguments");
        return NULL;
    }
    for (Py_ssize_t c = 0; c < columns; c++) {
        if (kinds[c] != 'i' && kinds[c] != 'b' && kinds[c] != 's' && kinds[c] != 'x') {
            PyErr_Format(PyExc_ValueError, "fetch: unknown column kind %c", kinds[c]);
            return NULL;
        }
        if (!PyBytes_Check(PyTuple_GET_ITEM(keys_tuple, c))) {
            PyErr_SetString(PyExc_TypeError, "fetch: keys must be bytes");
            return NULL;
        }
    }
    const char *keys[1600];
    Py_ssize_t key_sizes[1600];
    for (Py_ssize_t c = 0; c < columns; c++) {
        PyObject *key = PyTuple_GET_ITEM(keys_tuple, c);
        keys[c] = PyBytes_AS_STRING(key);
        key_sizes[c] = PyBytes_GET_SIZE(key);
    }
    void *conn = (void *)(uintptr_t)conn_ptr;
    getcopydata_fn get = (getcopydata_fn)(uintptr_t)get_ptr;
    freemem_fn release = (freemem_fn)(uintptr_t)free_ptr;

    JsonOut out = {NULL, 0, 0};
    Py_ssize_t rows = 0;
    int status = 0;
    const char *wrong = NULL;
    Py_BEGIN_ALLOW_THREADS;
    while (rows < max_rows && out.size < (size_t)max_bytes) {
        char *message = NULL;
        int n = get(conn, &message, 1);
        if (n == 0) {
            status = 1;
            break;
        }
        if (n == -1) {
            status = 2;
            break;
        }
        if (n < 0) {
            status = 3;
            break;
        }
        const unsigned char *p = (const unsigned char *)message;
        size_t size = (size_t)n;
        if (header) {
            if (size < sizeof HEADER || memcmp(p, HEADER, sizeof HEADER) != 0) {
                wrong = "the COPY stream does not start with the binary header";
                release(message);
                break;
            }
            p += sizeof HEADER;
            size -= sizeof HEADER;
            header = 0;
        }
        if (size == 2 && p[0] == 0xFF && p[1] == 0xFF) { /* the trailer; -1 comes next */
            release(message);
            continue;
        }
        if (rows > 0) {
            if (json_reserve(&out, 1) < 0) {
                wrong = NO_MEMORY;
                release(message);
                break;
            }
            out.data[out.size++] = ',';
        }
        wrong = put_row(&out, p, size, kinds, columns, keys, key_sizes);
        release(message);
        if (wrong != NULL)
            break;
        rows++;
    }
    Py_END_ALLOW_THREADS;
    if (wrong == NO_MEMORY) {
        free(out.data);
        return PyErr_NoMemory();
    }
    if (wrong != NULL) {
        free(out.data);
        PyErr_Format(PyExc_ValueError, "binary COPY: %s", wrong);
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.size);
    free(out.data);
    if (data == NULL)
        return NULL;
    return Py_BuildValue("(inNO)", status, rows, data, header ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"fetch", fetch, METH_VARARGS,
     "fetch(conn, getcopydata, freemem, kinds, keys, header, max_rows, max_bytes): binary "
     "COPY rows as JSON objects joined by commas; (status, rows, data, header)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_copy_out", "PostgreSQL binary COPY rows as JSON, in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__copy_out(void) {
    json_init();
    return PyModule_Create(&module);
}
