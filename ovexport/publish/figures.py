"""Compare figures on a published card (``ovexport publish --compare``): the bundle on disk stays what its build
made; the published commit gets the card with a comparison section, ``compare.json`` (the figures) and a
manifest that lists both, so the Hub copy is still exactly what its manifest describes."""
from __future__ import annotations

import json
from pathlib import Path

from ovexport.bundle.layout import MANIFEST
from ovexport.bundle.manifest import BUILD
from ovexport.errors import InputError

from .card import CARD, with_figures

FIGURES = "compare.json"


def _entry(data: bytes) -> dict:
    import hashlib
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def published_with_figures(bundle: Path, manifest: dict, compare: Path | str) -> tuple[dict, dict[str, bytes]]:
    """``(manifest to publish, {repo path: bytes that replace or add a bundle file})`` for ``compare``'s figures
    of this bundle; an ``InputError`` when that compare did not score the bundle's IRs."""
    from ovexport.compare.figures import figures_for, read_results

    fp = (manifest.get("steps") or {}).get("compress")
    figures = figures_for(read_results(compare), fp)
    if figures is None:
        raise InputError(f"{compare} has no row for {manifest.get('name')} {manifest.get('version')} (no variant "
                         f"with its compress fingerprint {str(fp)[:12]})",
                         fix="run `ovexport compare` on the bundle's recipe and pass its folder, or leave out --compare")
    card = (Path(bundle) / CARD).read_text(encoding="utf-8") if (Path(bundle) / CARD).is_file() else ""
    staged = {CARD: with_figures(card, figures).encode(),
              FIGURES: (json.dumps(figures, indent=2, ensure_ascii=False) + "\n").encode()}
    out = {k: v for k, v in manifest.items() if k != BUILD}
    out["figures"] = {"compare": figures}
    out["files"] = dict(sorted({**manifest["files"], **{rel: _entry(b) for rel, b in staged.items()}}.items()))
    if BUILD in manifest:
        out[BUILD] = manifest[BUILD]
    staged[MANIFEST] = (json.dumps(out, indent=2, ensure_ascii=False) + "\n").encode()
    return out, staged
