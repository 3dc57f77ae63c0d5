"""The eight registered steps. Importing this package registers them with the engine."""
from . import compress, convert, download, package, stateful  # noqa: F401

try:  # the validate step lives with the validators
    from . import validate  # noqa: F401
except ImportError:  # pragma: no cover - only while the validators are being written
    pass
