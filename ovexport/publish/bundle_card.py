"""The README.md model card a bundle ships: ``card.render_card`` of its manifest, with the source's license."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .card import CARD, render_card


def source_license(ckpt: Path) -> str | None:
    """The source's license, from the metadata of its README.md (a Hub snapshot has one), else None."""
    readme = Path(ckpt) / "README.md"
    if not readme.is_file():
        return None
    try:
        from huggingface_hub import ModelCard
        return ModelCard.load(readme).data.to_dict().get("license")
    except Exception:  # noqa: BLE001 - an unreadable card just means an unknown license
        return None


def write_bundle_card(out: Path, manifest: dict, publishing: Any, repo_id: str | None, ckpt: Path) -> None:
    """Write ``out``'s card from its ``manifest`` (before its file list: the card is one of the files) and the
    family's ``publishing`` facts; ``repo_id``: where the recipe publishes it (None: not published)."""
    (out / CARD).write_text(render_card(manifest, publishing, repo_id, license=source_license(ckpt)),
                            encoding="utf-8")
