"""journeyhub: the integration hub behind wedding vendors' client journeys."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("journeyhub")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
