"""``python -m bench``: see :mod:`bench.compare`."""

from bench.compare import main

main()
