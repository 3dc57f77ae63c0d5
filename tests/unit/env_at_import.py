"""Reads the environment at import, as huggingface_hub does (a preloaded module of the isolation tests)."""
import os

VALUE = os.environ.get("OVEXPORT_TEST_AT_IMPORT", "unset")
