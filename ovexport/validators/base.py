"""What every parity check returns, and the numerical helpers they share.

A check measures *metrics* (numbers) and compares some of them with recipe thresholds (*gates*). A metric
whose threshold is ``None`` is measured and reported but not gated. A check's ``status`` is "failed" when a
gate failed, "passed" when its gates held, and "not_gated" when the recipe turned all its thresholds off:
nothing was compared, so it is not reported as passed (``passed`` is then ``None``). How the checks add up to
the validation's state: ``status.aggregate``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from .status import FAILED, NOT_GATED, PASSED

GateKind = Literal["max", "min"]
Status = Literal["passed", "failed", "not_gated"]


@dataclass
class Gate:
    """``value <= threshold`` (kind "max") or ``value >= threshold`` (kind "min"). NaN never passes."""

    metric: str
    value: float
    threshold: float
    kind: GateKind
    passed: bool

    def describe(self, check: str | None = None) -> str:
        """``llm.max_abs_diff 0.31 > 0.001`` (the comparison that failed, or held)."""
        name = f"{check}.{self.metric}" if check else self.metric
        if self.passed:
            op = "<=" if self.kind == "max" else ">="
        else:
            op = ">" if self.kind == "max" else "<"
        return f"{name} {fmt(self.value)} {op} {fmt(self.threshold)}"


@dataclass
class CheckResult:
    name: str
    part: str
    metrics: dict[str, Any]
    gates: list[Gate]
    passed: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    status: Status = PASSED

    @classmethod
    def build(cls, name: str, part: str, metrics: dict[str, Any], gates: list[Gate | None],
              details: dict[str, Any] | None = None) -> "CheckResult":
        """Drop the ``None`` gates (ungated metrics); passed = every remaining gate passed, and no gate at all
        is "not gated" (``passed`` None), never a pass by default."""
        real = [g for g in gates if g is not None]
        res = cls(name=name, part=part, metrics=metrics, gates=real, passed=True, details=details or {})
        res.set_status(FAILED if any(not g.passed for g in real) else PASSED if real else NOT_GATED)
        return res

    def set_status(self, status: Status) -> None:
        """Set ``status`` and the matching ``passed`` (True, False, or None when not gated)."""
        self.status = status
        self.passed = None if status == NOT_GATED else status == PASSED

    @property
    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def fmt(x: Any) -> str:
    """Short human form of a metric value: 0.31, 0.001, 1.2e-07, 1, nan; 1-2.6e-13 just below 1."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if 0.99 < x < 1.0:  # cosines: 0.99999 and 0.9999999 would both print as 1
        return f"1-{1.0 - x:.2g}"
    return f"{x:.3g}"


def gate(metric: str, value: float | None, threshold: float | None, kind: GateKind) -> Gate | None:
    """A gate, or None when the threshold is None (the metric is measured, not gated).

    A value of None or NaN with a threshold fails: something the recipe gates on could not be measured.
    """
    if threshold is None:
        return None
    if kind not in ("max", "min"):
        raise ValueError(f"gate kind must be 'max' or 'min', not {kind!r}")
    v = float("nan") if value is None else float(value)
    if math.isnan(v):
        ok = False
    elif kind == "max":
        ok = v <= threshold
    else:
        ok = v >= threshold
    return Gate(metric=metric, value=v, threshold=float(threshold), kind=kind, passed=bool(ok))


# -------------------------------------------------------------------------------------------- numbers


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def max_abs_diff(ref, test) -> float:
    """max |ref - test| over all elements (inf when the shapes differ, nan when either has a nan)."""
    r, t = _f64(ref), _f64(test)
    if r.shape != t.shape:
        return float("inf")
    if r.size == 0:
        return 0.0
    return float(np.max(np.abs(r - t)))


def cosine(ref, test) -> float:
    """Cosine similarity of the two arrays flattened (1.0 when both are all zeros)."""
    r, t = _f64(ref).ravel(), _f64(test).ravel()
    if r.shape != t.shape:
        return float("nan")
    nr, nt = float(np.linalg.norm(r)), float(np.linalg.norm(t))
    if nr == 0.0 and nt == 0.0:
        return 1.0
    if nr == 0.0 or nt == 0.0:
        return 0.0
    return float(np.dot(r, t) / (nr * nt))


def top1_agreement(ref_logits, test_logits) -> float:
    """Share of positions (all leading axes) where the argmax over the last axis is the same."""
    r, t = np.asarray(ref_logits), np.asarray(test_logits)
    if r.shape != t.shape:
        return 0.0
    r = r.reshape(-1, r.shape[-1])
    t = t.reshape(-1, t.shape[-1])
    if not len(r):
        return 1.0
    return float(np.mean(r.argmax(-1) == t.argmax(-1)))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def kl_per_position(p_logits_ref, q_logits_test) -> np.ndarray:
    """KL(p || q) of the softmax distributions (float64) at each position (all leading axes flattened)."""
    p, q = _f64(p_logits_ref), _f64(q_logits_test)
    p = p.reshape(-1, p.shape[-1])
    q = q.reshape(-1, q.shape[-1])
    lp, lq = _log_softmax(p), _log_softmax(q)
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    return np.maximum(kl, 0.0)  # rounding can give -1e-17


def kl_divergence(p_logits_ref, q_logits_test) -> float:
    """Mean over positions of KL(softmax(ref) || softmax(test)), computed in float64."""
    kl = kl_per_position(p_logits_ref, q_logits_test)
    return float(kl.mean()) if kl.size else 0.0


def json_safe(x: Any) -> Any:
    """numpy scalars/arrays -> Python numbers/lists; NaN/inf -> strings (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else str(f)
    if x is None or isinstance(x, str):
        return x
    return str(x)
