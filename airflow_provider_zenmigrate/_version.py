"""The package's version, in one place: pyproject.toml reads it from here at build time
(``[tool.setuptools.dynamic]``), and the package imports it without importlib.metadata,
whose import costs a fifth of the CLI's start-up."""

__version__ = "0.1.0"
