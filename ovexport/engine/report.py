"""Rich tables for ``ovexport plan`` and the summary printed after ``ovexport run``."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

_STATUS_STYLE = {
    "ran": "green", "up to date": "dim", "cached": "cyan", "will run": "yellow", "blocked": "red",
}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def format_bytes(n: float | None) -> str:
    """Decimal units: 1.2 GB = 1.2e9 bytes."""
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def format_metrics(metrics: Any, limit: int = 4) -> str:
    """A compact ``key=value`` rendering of the first scalar metrics."""
    if not isinstance(metrics, dict) or not metrics:
        return ""
    parts = []
    for k, v in metrics.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, (int, str, bool)) or v is None:
            parts.append(f"{k}={v}")
        if len(parts) == limit:
            break
    return " ".join(parts)


def _status(s: str) -> Text:
    return Text(s, style=_STATUS_STYLE.get(s, ""))


def summary_table(result: Any) -> Table:
    """Columns: step, status, time, peak memory, notes (metrics, or why the step ran)."""
    t = Table(title=None, show_lines=False)
    t.add_column("step", style="bold", no_wrap=True, min_width=22)
    t.add_column("status", no_wrap=True)
    t.add_column("time", justify="right")
    t.add_column("peak memory", justify="right")
    t.add_column("notes", overflow="fold")
    for r in result.rows:
        notes = format_metrics(r.metrics)
        if r.status in ("ran", "cached") and getattr(r, "reason", ""):
            notes = f"{r.reason}; {notes}" if notes else r.reason
        t.add_row(r.name, _status(r.status), format_duration(r.duration_s),
                  format_bytes(r.peak_rss_bytes), notes)
    return t


def plan_table(rows: Iterable[Any]) -> Table:
    """Columns: step, status, needs, produces, fingerprint (12 hex), reason."""
    t = Table()
    t.add_column("step", style="bold", no_wrap=True, min_width=22)
    t.add_column("status", no_wrap=True)
    t.add_column("needs")
    t.add_column("produces")
    t.add_column("fingerprint", style="dim")
    t.add_column("reason", overflow="fold")
    for r in rows:
        t.add_row(r.name, _status(r.status), ", ".join(r.consumes) or "-", r.produces,
                  (r.fingerprint or "")[:12] or "-", r.reason)
    return t


def run_cache_table(cache: Any, verify_content: bool = False) -> tuple[Table, str]:
    """The entries of a run cache (oldest first) and a one-line total.

    Columns: step, fingerprint (10 hex), recipe that stored it, size, only here (bytes that deleting
    the entry frees: not hard-linked from a recipe's artifacts), status (ok, or why the entry is
    not trusted; ``verify_content`` re-hashes every file)."""
    from .run_cache import OUT, usage

    t = Table()
    t.add_column("step", style="bold", no_wrap=True)
    t.add_column("fingerprint", style="dim", no_wrap=True)
    t.add_column("from recipe", overflow="fold")
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("only here", justify="right", no_wrap=True)
    t.add_column("status", overflow="fold", min_width=6)
    entries = cache.entries()
    bad = 0
    for d, meta in entries:
        m = meta or {}
        problem = cache.check(d, meta, content=verify_content)
        bad += problem is not None
        size, only = usage(d / OUT)
        t.add_row(m.get("step", "?"), d.name[:10], str((m.get("origin") or {}).get("recipe") or "-"),
                  format_bytes(size), format_bytes(only),
                  Text("ok", style="green") if problem is None else Text(problem, style="red"))
    size, only = usage(*(d / OUT for d, _ in entries))
    total = (f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} in {cache.root}: "
             f"{format_bytes(size)} linked, {format_bytes(only)} held only by the cache")
    if bad:
        total += f"; {bad} not trusted (deleted when next looked up)"
    return t, total
