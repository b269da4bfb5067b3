"""The dump format v1: records, value codecs, writer, reader and verification."""
