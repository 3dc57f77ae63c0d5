"""Generic step engine: fingerprinted steps, skipped when up to date, atomic outputs, resumable.

It knows nothing about models or OpenVINO; steps register themselves with :func:`register_step`.
"""
from .atomic import atomic_dir, atomic_write_text, clean_stale_temps
from .fingerprint import ENGINE_VERSION, digest_dir, fingerprint, stat_matches
from .lock import LOCK_NAME, Lock
from .report import plan_table, summary_table
from .run_cache import RunCache
from .planner import PlanRow, plan, validate
from .run_steps import RunResult, RunRow, run
from .step import (REGISTRY, Step, StepContext, StepRegistry, all_steps, get_step,
                   register_step, work_dir)

__all__ = [
    "ENGINE_VERSION", "LOCK_NAME", "Lock", "PlanRow", "REGISTRY", "RunCache", "RunResult", "RunRow", "Step",
    "StepContext", "StepRegistry", "all_steps", "atomic_dir", "atomic_write_text",
    "clean_stale_temps", "digest_dir", "fingerprint", "get_step", "plan", "plan_table",
    "register_step", "run", "stat_matches", "summary_table", "validate", "work_dir",
]
