__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402  (the decorator plugin modules use)

__all__ = ["__version__", "hookimpl"]
