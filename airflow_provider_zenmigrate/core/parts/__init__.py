"""Multi-part dumps: one backup as several parts under one prefix, written and loaded by
worker processes in parallel (``jobs=N``), restores that resume.

Layout (``docs/dump-format.md``, "Multi-part dumps"): a dump at ``U`` is the prefix ``U/``
holding ``part-00000.jsonl[.gz|.zst]`` (the header, every object record and table record, no
data), ``part-NNNNN...`` (the data of one table, or of one key or block range of it, each a
complete dump stream in format v1 with its own trailer) and ``manifest.json``, written last:
it names every part with its table, range, rows, size and digest, and one digest covers all
the parts' digests. Without the manifest there is no dump.

Modules: :mod:`.layout` (names), :mod:`.manifest` (the manifest and its checks),
:mod:`.workers` (the process pool), :mod:`.backup`, :mod:`.restore`, :mod:`.verify`.
"""
