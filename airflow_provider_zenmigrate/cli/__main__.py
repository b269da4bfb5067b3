"""``python -m airflow_provider_zenmigrate.cli``: the ``zenmigrate`` command."""

import sys

from . import main

sys.exit(main())
