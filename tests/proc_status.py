"""This process's memory as ``/proc/self/status`` reports it (tests of what leaves the resident set)."""
from __future__ import annotations


def rss_file() -> int:
    """Bytes of this process's resident set that are pages of mapped files (``RssFile``)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/self/status")
