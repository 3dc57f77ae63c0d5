"""``ovexport publish``: a bundle to a Hugging Face Hub repo, as one commit tagged with its version.

Order, so that a tag never points at a partial or wrong commit:
1. re-hash the bundle against its manifest; refuse a failed bundle always, and one that is not validated or not
   gated unless allowed (``publishable``);
2. check the token (``whoami``), ``create_repo(exist_ok=True)``;
3. if the version's tag exists: same manifest content -> nothing to do; other content -> refused (versions
   are immutable);
4. one ``create_commit`` holding every file (atomic on the Hub: all files or none);
5. read ``manifest.json`` back from that commit and compare, then ``create_tag``, then read it back from the tag.

The token comes from ``HF_TOKEN`` or huggingface_hub's stored login and is only ever handed to the client.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ovexport.bundle.layout import MANIFEST
from ovexport.bundle.manifest import content_of, read_manifest, validation_state, verify_files
from ovexport.errors import BundleError, OvexportError
from ovexport.validators.status import FAILED, NOT_GATED, NOT_VALIDATED, phrase


class PublishError(OvexportError):
    """Publishing failed or was refused; nothing was tagged."""


TOKEN_FIX = ("set HF_TOKEN to a token with write access (https://huggingface.co/settings/tokens) "
             "or run `hf auth login`")
RETRY = "run the same command again: nothing was tagged, so the next run uploads the version in full"


@dataclass
class PublishResult:
    repo_id: str
    tag: str
    status: str                   # "published" | "unchanged" | "dry-run" | "pull-request"
    commit: str | None = None
    url: str | None = None
    files: int = 0
    bytes: int = 0


def version_tag(version: str) -> str:
    return f"v{version}"


def endpoint() -> str:
    """The Hub the client talks to (``HF_ENDPOINT``, read now, not at import time)."""
    from huggingface_hub import constants
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def bundle_files(bundle: Path, manifest: dict, staged: dict[str, bytes] | None = None) -> list[tuple[str, int]]:
    """(path in repo, size) of every file to upload: the manifest's files, then the manifest itself (``staged``:
    the published manifest when it is not the bundle's own)."""
    files = [(rel, int(e["size"])) for rel, e in sorted(manifest["files"].items())]
    size = len(staged[MANIFEST]) if staged and MANIFEST in staged else (bundle / MANIFEST).stat().st_size
    return files + [(MANIFEST, size)]


@contextlib.contextmanager
def hub_errors(where: str) -> Iterator[None]:
    """Turn the client's exceptions into one line with the fix (never with the token in it)."""
    try:  # huggingface_hub >= 1.x talks through httpx2 (httpx before that)
        import httpx2 as httpx
    except ImportError:
        import httpx
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    try:
        yield
    except OvexportError:
        raise
    except LocalTokenNotFoundError:
        raise PublishError("no Hugging Face token", fix=TOKEN_FIX) from None
    except OfflineModeIsEnabled:
        raise PublishError(f"cannot reach the Hub at {where}: HF_HUB_OFFLINE is set",
                           fix="unset HF_HUB_OFFLINE, then " + RETRY) from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise PublishError(f"the Hub at {where} rejected the token ({status})", fix=TOKEN_FIX) from None
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PublishError(f"the Hub at {where} answered {status}: {first}", fix=RETRY) from None
    except (httpx.ConnectError, httpx.ConnectTimeout) as e:
        raise PublishError(f"cannot reach the Hub at {where} ({type(e).__name__})",
                           fix="check the network and HF_ENDPOINT, then " + RETRY) from None
    except (httpx.HTTPError, OSError) as e:
        raise PublishError(f"the upload to {where} failed midway ({type(e).__name__})", fix=RETRY) from None


def _read_back_manifest(api, repo_id: str, revision: str, tmp: Path) -> dict:
    path = api.hf_hub_download(repo_id, MANIFEST, revision=revision, cache_dir=tmp / "cache",
                               local_dir=tmp / revision.replace("/", "_"))
    return json.loads(Path(path).read_text())


def publishable(manifest: dict, allow_unvalidated: bool = False, allow_ungated: bool = False) -> None:
    """Raise ``BundleError`` unless the bundle's validation passed, or is not validated / not gated and that is
    allowed. A failed validation is never published."""
    state = validation_state(manifest)
    name = f"{manifest.get('name')} {manifest.get('version')}"
    said = phrase(manifest.get("validation"))
    if state == FAILED:
        raise BundleError(f"{name}: validation failed; a failed bundle is never published",
                          fix="fix the export (or, if the difference is expected, the recipe's thresholds) and "
                              "rebuild; see the bundle's validation.json")
    if state == NOT_VALIDATED and not allow_unvalidated:
        raise BundleError(f"{name} is not validated: it is not published",
                          fix="rebuild it with the validate step (or pass --allow-unvalidated to publish it anyway; "
                              "its card and manifest say it is unvalidated)")
    if state == NOT_GATED and not allow_ungated:
        raise BundleError(f"{name}: validation {said}: it is not published",
                          fix="set thresholds for those checks in the recipe's validation: block and rebuild (or "
                              "pass --allow-ungated to publish it anyway; its card says what is not gated)")


def publish(bundle: str | Path, repo_id: str, *, private: bool | None = None, revision: str | None = None,
            create_pr: bool = False, dry_run: bool = False, allow_unvalidated: bool = False,
            allow_ungated: bool = False, compare: str | Path | None = None,
            echo: Callable[[str], None] = print) -> PublishResult:
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    publishable(manifest, allow_unvalidated=allow_unvalidated, allow_ungated=allow_ungated)
    staged: dict[str, bytes] = {}   # files the published commit holds in place of (or beside) the bundle's
    if compare is not None:
        from .figures import published_with_figures
        manifest, staged = published_with_figures(bundle, manifest, compare)
    tag = version_tag(manifest["version"])
    files = bundle_files(bundle, manifest, staged)
    total = sum(s for _, s in files)
    where = endpoint()
    target = f"{where}/{repo_id}@{revision or 'main'}"
    if dry_run:
        for rel, size in files:
            echo(f"  {size:>14,d}  {rel}")
        echo(f"dry run: {len(files)} files, {total:,d} bytes -> {target} "
             f"({'private' if private else 'public' if private is False else 'visibility unchanged'}), "
             f"tag {tag}{', as a pull request' if create_pr else ''}; nothing uploaded")
        return PublishResult(repo_id, tag, "dry-run", files=len(files), bytes=total)

    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token", fix=TOKEN_FIX)
    api = HfApi(endpoint=where, token=token)
    with hub_errors(where), tempfile.TemporaryDirectory(prefix="ovexport-publish-") as tmpdir:
        tmp = Path(tmpdir)
        api.whoami()
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)  # a release branch may not exist yet
        refs = api.list_repo_refs(repo_id)
        if any(t.name == tag for t in refs.tags):
            published = _read_back_manifest(api, repo_id, tag, tmp)
            if content_of(published) == content_of(manifest):
                echo(f"{repo_id} {tag} already holds this bundle: nothing to do")
                return PublishResult(repo_id, tag, "unchanged", files=len(files), bytes=total)
            raise PublishError(f"{repo_id} already has {tag} with other content; published versions are immutable",
                               fix="bump `version` in the recipe, rebuild, and publish the new version")
        echo(f"uploading {len(files)} files ({total:,d} bytes) to {target}")
        ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=staged.get(rel) or str(bundle / rel))
               for rel, _ in files]
        info = api.create_commit(repo_id, ops, commit_message=f"{manifest['name']} {manifest['version']}",
                                 commit_description=f"Bundle built by ovexport from {manifest['source'].get('uri')}",
                                 revision=revision, create_pr=create_pr)
        commit = info.oid
        if content_of(_read_back_manifest(api, repo_id, commit, tmp)) != content_of(manifest):
            raise PublishError(f"the manifest read back from commit {commit[:12]} differs from the bundle's",
                               fix=RETRY)
        if create_pr:
            echo(f"opened {info.pr_url}; the version is tagged when published without --create-pr after merging")
            return PublishResult(repo_id, tag, "pull-request", commit, info.pr_url, len(files), total)
        api.create_tag(repo_id, tag=tag, revision=commit, tag_message=f"{manifest['name']} {manifest['version']}")
        if content_of(_read_back_manifest(api, repo_id, tag, tmp)) != content_of(manifest):
            raise PublishError(f"the manifest read back from tag {tag} differs from the bundle's",
                               fix="someone tagged concurrently: check the repo, then bump `version`")
    url = f"{where}/{repo_id}/tree/{tag}"
    echo(f"published {manifest['name']} {manifest['version']} to {url} (commit {commit[:12]})")
    return PublishResult(repo_id, tag, "published", commit, url, len(files), total)
