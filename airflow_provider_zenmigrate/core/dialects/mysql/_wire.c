/* A backup's rows joined off MySQL's wire.
 *
 * Why in C: wire.py's reader sliced each row packet out of its read buffer in Python, about
 * 1.3 s of client CPU per million rows (docs/performance.md), on a machine whose other core
 * is busy rendering them. And rendering each row as JSON on the server (CONCAT, JSON_QUOTE,
 * TO_BASE64) cost it twice what sending the plain columns costs (2.0 s against 0.9-1.0 s of
 * server CPU per million rows of bench dataset (a)), so rendered() writes that JSON here
 * instead, from the columns, byte for byte as the server did.
 *
 * Both take the row packets only: the sequence number they expect, a one-, two- or
 * three-byte length and that many bytes. They stop at anything else (the end of the
 * result, an error, a packet not yet read in whole; for joined, a NULL) and wire.py's own
 * loop reads that packet, as it always has.
 *
 * joined(buffer, pos, end, seq, out, count, room) -> (pos, seq, count)
 *   appends each row's value to the bytearray out, after a comma unless count is 0, for at
 *   most room rows; returns where it stopped, the next sequence number and the new count.
 *
 * rendered(buffer, pos, end, seq, out, count, room, kinds, keys) -> (pos, seq, count, lost)
 *   the same for a result of the table's own columns: each row packet written as the JSON
 *   object the server's CONCAT rendering wrote (keys[i] before column i's value). kinds has
 *   a byte a column: 'n' a number as its text, 's' text as a JSON string (JSON_QUOTE's
 *   escapes), 'x' bytes as base64; upper case where the column cannot be NULL, so a NULL
 *   there is a value the server could not render (a row the old CONCAT made NULL): such
 *   rows are counted in lost and not written. It stops at anything but a row packet;
 *   a row packet whose fields do not fill it exactly raises ValueError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../../_json_out.h"

/* JSON_QUOTE's \u00XX escapes are in upper-case hex. */
static const char HEX[] = "0123456789ABCDEF";

/* The length of the packet at pos if it is read in whole, has sequence number seq and is
 * neither empty nor split over packets (a row of 16 MiB or more); else 0: the caller stops
 * and wire.py's loop reads what is there. */
static Py_ssize_t whole_packet(const unsigned char *buf, Py_ssize_t pos, Py_ssize_t end,
                               int seq) {
    if (pos + 4 > end)
        return 0;
    const unsigned char *p = buf + pos;
    Py_ssize_t length = p[0] | (p[1] << 8) | (p[2] << 16);
    if (p[3] != seq || length == 0xFFFFFF || pos + 4 + length > end)
        return 0;
    return length;
}

static PyObject *joined(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer buffer;
    Py_ssize_t pos, end, count, room;
    int seq;
    PyObject *out;
    if (!PyArg_ParseTuple(args, "y*nniO!nn", &buffer, &pos, &end, &seq, &PyByteArray_Type, &out,
                          &count, &room))
        return NULL;
    PyObject *result = NULL;
    if (pos < 0 || end > buffer.len || pos > end || seq < 0 || seq > 255) {
        PyErr_SetString(PyExc_ValueError, "joined: positions outside the buffer");
        goto done;
    }
    const unsigned char *buf = buffer.buf;
    Py_ssize_t taken = 0;
    Py_ssize_t length;
    while (taken < room && (length = whole_packet(buf, pos, end, seq)) > 0) {
        const unsigned char *payload = buf + pos + 4, *stop = payload + length;
        const unsigned char *value;
        if (payload[0] < 0xFB && payload[0] + 1 == length)
            value = payload + 1;
        else if (payload[0] == 0xFC && length >= 3 && length == 3 + (payload[1] | payload[2] << 8))
            value = payload + 3;
        else if (payload[0] == 0xFD && length >= 4 &&
                 length == 4 + (payload[1] | payload[2] << 8 | payload[3] << 16))
            value = payload + 4;
        else
            break;
        Py_ssize_t size = stop - value, had = PyByteArray_GET_SIZE(out);
        Py_ssize_t comma = count > 0 ? 1 : 0;
        if (PyByteArray_Resize(out, had + comma + size) < 0)
            goto done;
        char *into = PyByteArray_AS_STRING(out) + had;
        if (comma)
            *into++ = ',';
        memcpy(into, value, (size_t)size);
        count++;
        taken++;
        seq = (seq + 1) & 0xFF;
        pos += 4 + length;
    }
    result = Py_BuildValue("nin", pos, seq, count);
done:
    PyBuffer_Release(&buffer);
    return result;
}

/* A length-coded string's length at p (at most `room` bytes); -1 for NULL, -2 malformed. */
static Py_ssize_t field_length(const unsigned char *p, Py_ssize_t room, Py_ssize_t *used) {
    if (room < 1)
        return -2;
    if (p[0] < 0xFB) {
        *used = 1;
        return p[0];
    }
    if (p[0] == 0xFB) {
        *used = 1;
        return -1;
    }
    if (p[0] == 0xFC && room >= 3) {
        *used = 3;
        return p[1] | p[2] << 8;
    }
    if (p[0] == 0xFD && room >= 4) {
        *used = 4;
        return p[1] | p[2] << 8 | p[3] << 16;
    }
    return -2; /* 0xFE (8-byte lengths: no row this reader takes is that long), 0xFF */
}

static int is_number(const unsigned char *p, Py_ssize_t n) {
    if (n > 0 && p[0] == '-')
        p++, n--;
    if (n < 1)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* One row packet's payload as its object; 0 written, 1 lost (a NULL where none can be),
 * -1 malformed, -2 out of memory. */
static int put_row(JsonOut *out, const unsigned char *p, Py_ssize_t n, const char *kinds,
                   Py_ssize_t columns, PyObject *keys) {
    size_t start = out->size;
    const unsigned char *end = p + n;
    for (Py_ssize_t c = 0; c < columns; c++) {
        Py_ssize_t used, len = field_length(p, end - p, &used);
        if (len < -1 || len > end - p - used)
            return -1;
        p += used;
        PyObject *key = PyTuple_GET_ITEM(keys, c);
        size_t key_size = (size_t)PyBytes_GET_SIZE(key);
        if (json_reserve(out, key_size + (len < 0 ? 4 : json_most((size_t)len)) + 1) < 0)
            return -2;
        json_put(out, PyBytes_AS_STRING(key), key_size);
        char kind = kinds[c];
        if (len < 0) {
            if (kind >= 'A' && kind <= 'Z') {
                out->size = start;
                for (c++; c < columns; c++) { /* the rest must still be well formed */
                    len = field_length(p, end - p, &used);
                    if (len < -1 || len > end - p - used)
                        return -1;
                    p += used + (len > 0 ? len : 0);
                }
                return p == end ? 1 : -1;
            }
            json_put(out, "null", 4);
            continue;
        }
        switch (kind | 0x20) {
        case 'n':
            if (!is_number(p, len))
                return -1;
            json_put(out, (const char *)p, (size_t)len);
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
        return -1;
    out->data[out->size++] = '}';
    return 0;
}

static PyObject *rendered(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer buffer;
    Py_ssize_t pos, end, count, room, columns;
    int seq;
    PyObject *out, *keys;
    const char *kinds;
    if (!PyArg_ParseTuple(args, "y*nniO!nny#O!", &buffer, &pos, &end, &seq, &PyByteArray_Type,
                          &out, &count, &room, &kinds, &columns, &PyTuple_Type, &keys))
        return NULL;
    PyObject *result = NULL;
    JsonOut json = {NULL, 0, 0};
    Py_ssize_t lost = 0;
    if (pos < 0 || end > buffer.len || pos > end || seq < 0 || seq > 255) {
        PyErr_SetString(PyExc_ValueError, "rendered: positions outside the buffer");
        goto done;
    }
    if (columns < 1 || PyTuple_GET_SIZE(keys) != columns) {
        PyErr_SetString(PyExc_ValueError, "rendered: a key for each column's kind");
        goto done;
    }
    for (Py_ssize_t c = 0; c < columns; c++) {
        char kind = (char)(kinds[c] | 0x20);
        if ((kind != 'n' && kind != 's' && kind != 'x') ||
            !PyBytes_Check(PyTuple_GET_ITEM(keys, c))) {
            PyErr_SetString(PyExc_ValueError, "rendered: kinds are n, s, x; keys are bytes");
            goto done;
        }
    }
    const unsigned char *buf = buffer.buf;
    Py_ssize_t taken = 0;
    Py_ssize_t length;
    while (taken < room && (length = whole_packet(buf, pos, end, seq)) > 0) {
        const unsigned char *payload = buf + pos + 4;
        if (payload[0] == 0xFF || (payload[0] == 0xFE && length < 9))
            break; /* an error or the end of the result: wire.py reads it */
        size_t mark = json.size;
        if (json.size > 0 || PyByteArray_GET_SIZE(out) > 0) {
            if (json_reserve(&json, 1) < 0)
                goto no_memory;
            json.data[json.size++] = ',';
        }
        int row = put_row(&json, payload, length, kinds, columns, keys);
        if (row == -2)
            goto no_memory;
        if (row == -1) {
            PyErr_SetString(PyExc_ValueError,
                            "a row packet's fields do not fill it as its columns say");
            goto done;
        }
        if (row == 1) {
            json.size = mark;
            lost++;
        }
        count++;
        taken++;
        seq = (seq + 1) & 0xFF;
        pos += 4 + length;
    }
    if (json.size) {
        Py_ssize_t had = PyByteArray_GET_SIZE(out);
        if (PyByteArray_Resize(out, had + (Py_ssize_t)json.size) < 0)
            goto done;
        memcpy(PyByteArray_AS_STRING(out) + had, json.data, json.size);
    }
    result = Py_BuildValue("ninn", pos, seq, count, lost);
    goto done;
no_memory:
    PyErr_NoMemory();
done:
    free(json.data);
    PyBuffer_Release(&buffer);
    return result;
}

static PyMethodDef methods[] = {
    {"rendered", rendered, METH_VARARGS,
     "rendered(buffer, pos, end, seq, out, count, room, kinds, keys): row packets of the "
     "table's columns written as JSON objects appended to out, comma-separated; (pos, seq, "
     "count, lost) where it stopped."},
    {"joined", joined, METH_VARARGS,
     "joined(buffer, pos, end, seq, out, count, room): plain one-column row packets' values "
     "appended to out, comma-separated; (pos, seq, count) where it stopped."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire", "MySQL row packets joined, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire(void) {
    json_init();
    return PyModule_Create(&module);
}
