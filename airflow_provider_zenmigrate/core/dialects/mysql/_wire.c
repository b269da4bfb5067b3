/* A backup's rendered rows (one column, one JSON object per row) joined off MySQL's wire.
 *
 * Why in C: wire.py's reader sliced each row packet out of its read buffer in Python, about
 * 1.3 s of client CPU per million rows (docs/performance.md), on a machine whose other core
 * is busy rendering them. This takes the plain row packets only: the sequence number it
 * expects, a one-, two- or three-byte length and that many bytes. It stops at anything
 * else (a NULL, the end of the result, an error, a packet not yet read in whole) and
 * wire.py's own loop reads that packet, as it always has.
 *
 * joined(buffer, pos, end, seq, out, count, room) -> (pos, seq, count)
 *   appends each row's value to the bytearray out, after a comma unless count is 0, for at
 *   most room rows; returns where it stopped, the next sequence number and the new count.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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
    while (taken < room && pos + 4 <= end) {
        const unsigned char *p = buf + pos;
        Py_ssize_t length = p[0] | (p[1] << 8) | (p[2] << 16);
        if (p[3] != seq || length == 0 || length == 0xFFFFFF || pos + 4 + length > end)
            break;
        const unsigned char *payload = p + 4, *stop = payload + length;
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

static PyMethodDef methods[] = {
    {"joined", joined, METH_VARARGS,
     "joined(buffer, pos, end, seq, out, count, room): plain one-column row packets' values "
     "appended to out, comma-separated; (pos, seq, count) where it stopped."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire", "MySQL row packets joined, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wire(void) { return PyModule_Create(&module); }
