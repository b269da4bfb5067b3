"""The provider's Airflow plugin: the "Backups" view in the Airflow UI (see :mod:`.plugin`)."""
