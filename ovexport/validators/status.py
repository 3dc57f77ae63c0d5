"""The state of a validation, from its checks: ``passed``, ``not_gated`` or ``failed``, and what was left unchecked.

Pure functions on plain dicts (no numpy, no OpenVINO): the runner aggregates its checks with them, and the
manifest, card, ``publish``, ``chat`` and ``serve`` read a bundle's state with them.

- ``failed``: a gate failed or a check raised;
- ``not_gated``: nothing failed, but some part was not compared with anything: its check has no gate (every
  recipe threshold null) or did not run. ``not_gated`` names those checks;
- ``passed``: every part's check ran, had at least one gate of the recipe, and every gate held.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PASSED, NOT_GATED, FAILED = "passed", "not_gated", "failed"
NOT_VALIDATED = "not_validated"  # no validate step ran (a bundle without validation)
STATES = (PASSED, NOT_GATED, FAILED)

# gates a check applies whatever the recipe says (the LLM's reset_state gate): they can fail a check, but they do
# not gate a part on their own. Only needed to read bundles written before checks had a status.
FIXED_GATES = ("reset_max_abs_diff",)


def check_names() -> tuple[str, ...]:
    """Every check a full validation runs, one per part (the recipe's ``validation.thresholds`` blocks)."""
    from ovexport.recipe.validation import ThresholdsSpec

    return tuple(ThresholdsSpec.model_fields)


def check_state(check: Mapping[str, Any]) -> str:
    """The state of one check dict (``CheckResult.to_dict()`` or a manifest entry), old bundles included:
    "not gated" (issue 10's spelling) is ``not_gated``; without a status, passed=False is failed, and a pass is
    only a pass when a recipe gate (not only a fixed one) was there to hold."""
    status = check.get("status")
    if status in STATES:
        return status
    if status == "not gated":
        return NOT_GATED
    if check.get("passed") is False:
        return FAILED
    recipe_gates = [g for g in check.get("gates") or [] if isinstance(g, Mapping) and g.get("metric") not in FIXED_GATES]
    if check.get("passed") is True and recipe_gates:
        return PASSED
    return NOT_GATED


def aggregate(checks: Iterable[Mapping[str, Any]], expected: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"status", "passed", "not_gated"}`` of a validation whose checks are ``checks`` (dicts with ``name``).

    ``expected``: the checks a full validation runs (default: one per part); one that is missing did not run,
    so its part is not gated. ``passed`` is True only for the ``passed`` state.
    """
    expected = check_names() if expected is None else tuple(expected)
    states = {str(c.get("name")): check_state(c) for c in checks}
    not_gated = [n for n in expected if states.get(n, NOT_GATED) == NOT_GATED]
    not_gated += [n for n, s in states.items() if n not in expected and s == NOT_GATED]
    if FAILED in states.values():
        status = FAILED
    elif not_gated:
        status = NOT_GATED
    else:
        status = PASSED
    return {"status": status, "passed": status == PASSED, "not_gated": not_gated}


def _checks_of(validation: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """validation.json lists its checks; the manifest keys them by name."""
    checks = validation.get("checks") or []
    if isinstance(checks, Mapping):
        return [{"name": name, **c} for name, c in checks.items() if isinstance(c, Mapping)]
    return [c for c in checks if isinstance(c, Mapping)]


def state_of(validation: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"status", "not_gated"}`` of a validation report or a manifest's ``validation`` entry (None: not
    validated). Reports written before the three states (only ``passed``) are re-derived from their checks:
    not gated unless every part can be shown gated; ``passed: false`` stays failed."""
    if not validation:
        return {"status": NOT_VALIDATED, "not_gated": []}
    if validation.get("status") in STATES:
        return {"status": validation["status"], "not_gated": list(validation.get("not_gated") or [])}
    agg = aggregate(_checks_of(validation))
    if validation.get("passed") is False:
        agg["status"] = FAILED
    return {"status": agg["status"], "not_gated": agg["not_gated"]}


def describe_ungated(validation: Mapping[str, Any] | None, names: Sequence[str]) -> str:
    """``end_to_end (token_agreement, first_divergence measured, no threshold)``; a check that did not run:
    ``image_encoder (not run)``; joined with "; "."""
    checks = {str(c.get("name")): c for c in _checks_of(validation or {})}
    out = []
    for name in names:
        c = checks.get(name)
        gated = {g.get("metric") for g in (c or {}).get("gates") or [] if isinstance(g, Mapping)}
        metrics = [m for m in (c or {}).get("metrics") or {} if m not in gated]
        if c is None:
            out.append(f"{name} (not run)")
        elif metrics:
            out.append(f"{name} ({', '.join(metrics)} measured, no threshold)")
        else:
            out.append(f"{name} (no threshold)")
    return "; ".join(out)


def phrase(validation: Mapping[str, Any] | None) -> str:
    """``passed``, ``not gated: end_to_end (token_agreement measured, no threshold)``, ``failed`` or ``not
    validated``: how the CLI, the card and the warnings of ``chat`` / ``serve`` name a validation's state."""
    state = state_of(validation)
    if state["status"] == NOT_GATED:
        return f"not gated: {describe_ungated(validation, state['not_gated'])}"
    return state["status"].replace("_", " ")
