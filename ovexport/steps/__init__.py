"""The eight registered steps. Importing this package registers them with the engine."""
from . import compress, convert, download, package, stateful, validate  # noqa: F401
