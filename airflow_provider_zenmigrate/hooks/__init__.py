"""Airflow hooks: connections in, core objects out."""
