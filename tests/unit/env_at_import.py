"""Reads the environment at import, as huggingface_hub does (a preloaded module of the isolation tests)."""
import os

VALUE = os.environ.get("ENV_AT_IMPORT_TEST", "unset")
