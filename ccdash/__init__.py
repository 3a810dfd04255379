"""ccdash: a competing-consumer engine and its live terminal dashboard."""

__version__ = "0.1.0"
