"""leverloop: closed-loop learning that turns measured trade edge into bounded PM lever overrides."""

__version__ = "0.1.0"
__all__ = ["__version__"]
