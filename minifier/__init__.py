"""minify: make container images small by watching what the application really uses."""

__all__ = ["__version__"]
__version__ = "0.1.0"
