"""fedrule: simulate fleets of on-device recommenders with elastic (RULE) item embeddings."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fedrule")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
