"""A Hub-compatible HTTP server for tests: the endpoints the real ``huggingface_hub`` client calls to create a
repo, commit files, tag, list refs, read repo info and download files (stdlib ``http.server``, in memory).

The protocol follows huggingface_hub's own code (``_commit_api.py``, ``lfs.py``, ``hf_api.py``,
``file_download.py``, ``_snapshot_download.py``). Small files are *regular*: base64 inside the NDJSON commit. As on
the Hub, a file goes through Git LFS when the repository's ``.gitattributes`` marks its name ``filter=lfs`` (the
Hub's default file marks ``*.bin``, ``*.safetensors``, ...) or when it is larger than ``lfs_size_threshold``:

1. ``preupload`` answers ``uploadMode: "lfs"`` for it (and the remote file's sha256 as ``oid``);
2. ``POST {repo}.git/info/lfs/objects/batch`` answers, per object not stored yet, an ``upload`` action (a
   signed URL on the storage origin, no token needed, like the Hub's presigned S3 URL) and a ``verify`` action;
   ``transfer: "basic"``, never xet;
3. ``PUT`` of the object to that URL (the server checks its sha256 and size), then ``POST .../verify``;
4. the commit names it in an ``lfsFile`` line (path, algo sha256, oid, size). A regular ``file`` line for a
   non-empty file that must go through LFS is rejected, as the Hub rejects binary files pushed without LFS.

Downloads of an LFS file answer ``/resolve`` with a 302 to the storage origin (``X-Linked-Etag``: the sha256,
``X-Linked-Size``, ``X-Repo-Commit``), and ``/api/models/{repo}/tree`` lists it with its ``lfs`` block, as
``snapshot_download`` reads it. The storage origin is ``localhost`` where the API is ``127.0.0.1``: another
origin, so the client neither follows the redirect of a HEAD nor sends its token there, as with the Hub's CDN.

Xet: the server has none. It answers the ``xet-*-token`` routes 404 and ``xetEnabled: false``, as a Hub without
Xet does; huggingface_hub >= 1.20 no longer asks the server before it uploads through Xet when ``hf_xet`` is
installed (huggingface_hub issues #4507, #4786), so a client of this server sets ``HF_HUB_DISABLE_XET``.

Git object ids are real git blob SHA-1s (of the LFS pointer for an LFS file), commit ids are SHA-1s of the
commit's content and parent. Faults for tests:

- ``cut_commits = True``: a commit request is read halfway, then the connection is closed with no answer
  (an upload cut off midway); nothing is committed.
- ``online = False`` answers nothing at all (see :meth:`FakeHub.stop`).

Tokens: ``valid_tokens`` maps token -> user name. A missing or unknown token on a write is 401; a private
repo is invisible (404 RepoNotFound) without a token of its owner, as on the Hub.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """What git stores for an LFS file (its blob id is the file's ETag and tree ``oid`` on the Hub)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(data)}\nsize {len(data)}\n".encode()


# The .gitattributes the Hub writes into a new model repository (its LFS patterns, abridged)
DEFAULT_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm",
    "*.xz", "*.zip", "*.zst", "*tfevents*"))
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024   # the Hub takes no larger regular file


def lfs_patterns(gitattributes: bytes) -> list[str]:
    return [line.split()[0] for line in gitattributes.decode().splitlines()
            if line.strip() and not line.startswith("#") and "filter=lfs" in line.split()[1:]]


def matches(pattern: str, path: str) -> bool:
    """gitattributes matching: a pattern without a slash matches the file name at any depth."""
    return fnmatch.fnmatchcase(path if "/" in pattern else path.rsplit("/", 1)[-1], pattern)


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)   # sha -> {path: bytes}
    branches: dict[str, str] = field(default_factory=dict)               # name -> sha
    tags: dict[str, str] = field(default_factory=dict)
    prs: list[str] = field(default_factory=list)                         # refs/pr/N -> sha (index N-1)
    lfs: dict[str, set[str]] = field(default_factory=dict)               # sha -> paths stored through LFS

    def resolve(self, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        m = re.fullmatch(r"refs/pr/(\d+)", rev)
        if m and 0 < int(m.group(1)) <= len(self.prs):
            return self.prs[int(m.group(1)) - 1]
        if rev in self.commits:
            return rev
        return None


class FakeHub:
    """``with FakeHub() as hub: os.environ["HF_ENDPOINT"] = hub.endpoint``"""

    def __init__(self, tokens: dict[str, str] | None = None):
        self.valid_tokens = dict(tokens or {"hf_test_write_token": "tester"})
        self.repos: dict[str, Repo] = {}
        self.cut_commits = False
        self.lfs_size_threshold = LFS_SIZE_THRESHOLD
        self.lfs_objects: dict[str, bytes] = {}     # sha256 -> content: the LFS storage, shared by all repos
        self.requests: list[tuple[str, str]] = []   # (method, path) of every request, for assertions
        self.commit_ops: list[tuple[str, str]] = []  # (key, path) of every committed operation: "file", "lfsFile"...
        self.lfs_puts: list[str] = []               # sha256 of every object PUT to the storage
        self._secret = hashlib.sha256(repr(id(self)).encode()).hexdigest()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass
        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def storage(self) -> str:
        """The LFS storage's origin (the Hub's CDN / S3): the same server under another host name."""
        assert self._server is not None
        return f"http://localhost:{self._server.server_address[1]}"

    def signed(self, method: str, oid: str) -> str:
        sig = hmac.new(self._secret.encode(), f"{method} {oid}".encode(), "sha256").hexdigest()
        return f"{self.storage}/lfs-storage/{oid}?X-Signature={sig}"

    def must_use_lfs(self, files: dict[str, bytes], path: str, size: int) -> bool:
        """The Hub's rule: the name matches an LFS pattern of the revision's .gitattributes, or the file is large."""
        return size > self.lfs_size_threshold or any(
            matches(p, path) for p in lfs_patterns(files.get(".gitattributes", b"")))

    # ---------------------------------------------------------------- helpers for assertions
    def files_at(self, repo_id: str, rev: str) -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.resolve(rev)])

    def lfs_paths_at(self, repo_id: str, rev: str) -> set[str]:
        repo = self.repos[repo_id]
        return set(repo.lfs.get(repo.resolve(rev), set()))


_REPO = r"(?P<repo>[^/]+/[^/]+)"


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    # ---------------------------------------------------------------- plumbing
    def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None,
              head_only: bool = False) -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None, head_only: bool = False) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers, head_only=head_only)

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while (n := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(n))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):   # trailers
                pass
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else None
        return self.hub.valid_tokens.get(token) if token else None

    def _has_token(self) -> bool:
        return (self.headers.get("Authorization") or "").startswith("Bearer ")

    def _can_write(self) -> bool:
        if self._user() is None:
            self._error(401, "Invalid credentials in Authorization header" if self._has_token()
                        else "You must be authenticated to access this resource")
            return False
        return True

    def _repo(self, repo_id: str, head_only: bool = False) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and self._user() is None):
            self._error(404, "Repository not found", "RepoNotFound", head_only=head_only)
            return None
        return repo

    # ---------------------------------------------------------------- routes
    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        with self.hub.lock:
            self.hub.requests.append((method, path))
        routes = [
            ("GET", r"/api/whoami-v2", self.whoami),
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", rf"/api/models/{_REPO}/preupload/(?P<rev>.+)", self.preupload),
            ("POST", rf"/api/models/{_REPO}/commit/(?P<rev>.+)", self.commit),
            ("POST", rf"/api/models/{_REPO}/tag/(?P<rev>.+)", self.create_tag),
            ("POST", rf"/api/models/{_REPO}/branch/(?P<branch>.+)", self.create_branch),
            ("GET", rf"/api/models/{_REPO}/refs", self.refs),
            ("GET", rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", self.tree),
            ("GET", rf"/api/models/{_REPO}/xet-(?:read|write)-token/(?P<rev>.+)", self.xet_token),
            ("POST", rf"/{_REPO}\.git/info/lfs/objects/batch", self.lfs_batch),
            ("POST", rf"/{_REPO}\.git/info/lfs/objects/verify", self.lfs_verify),
            ("PUT", r"/lfs-storage/(?P<oid>[0-9a-f]{64})", self.lfs_put),
            ("HEAD", r"/lfs-storage/(?P<oid>[0-9a-f]{64})", self.lfs_get),
            ("GET", r"/lfs-storage/(?P<oid>[0-9a-f]{64})", self.lfs_get),
            ("GET", rf"/api/models/{_REPO}/revision/(?P<rev>.+)", self.info),
            ("GET", rf"/api/models/{_REPO}", self.info),
            ("HEAD", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
            ("GET", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self.resolve),
        ]
        for m, pattern, fn in routes:
            match = re.fullmatch(pattern, path)
            if m == method and match:
                return fn(query=query, head_only=method == "HEAD", **match.groupdict())
        self._error(404, f"no route {method} {path}")

    def whoami(self, query, head_only) -> None:
        user = self._user()
        if user is None:
            return self._error(401, "Invalid user token")
        self._send(200, {"type": "user", "name": user, "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})

    def create_repo(self, query, head_only) -> None:
        payload = json.loads(self._body() or b"{}")
        if not self._can_write():
            return
        repo_id = f"{payload.get('organization') or self._user()}/{payload['name']}"
        with self.hub.lock:
            if repo_id in self.hub.repos:  # the Hub's 409 carries the url (create_repo(exist_ok=True) reads it)
                return self._send(409, {"error": "You already created this model repo",
                                        "url": f"{self.hub.endpoint}/{repo_id}"},
                                  {"X-Error-Message": "You already created this model repo"})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = Repo(repo_id, private)
            sha = hashlib.sha1(f"init {repo_id}".encode()).hexdigest()
            repo.commits[sha] = {".gitattributes": DEFAULT_GITATTRIBUTES.encode()}
            repo.branches["main"] = sha
            self.hub.repos[repo_id] = repo
        self._send(200, {"url": f"{self.hub.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})

    def validate_yaml(self, query, head_only) -> None:
        self._body()
        self._send(200, {"errors": [], "warnings": []})

    def preupload(self, repo, rev, query, head_only) -> None:
        payload = json.loads(self._body() or b"{}")
        if not self._can_write() or (r := self._repo(repo)) is None:
            return
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        files, stored_lfs = r.commits[sha], r.lfs.get(sha, set())

        def remote_oid(path: str) -> str | None:  # the sha256 of an LFS file, the git blob id of a regular one
            if path not in files:
                return None
            return sha256(files[path]) if path in stored_lfs else git_blob_sha1(files[path])

        self._send(200, {"files": [
            {"path": f["path"], "shouldIgnore": False, "oid": remote_oid(f["path"]),
             "uploadMode": "lfs" if self.hub.must_use_lfs(files, f["path"], int(f.get("size", 0))) else "regular"}
            for f in payload.get("files", [])]})

    def lfs_batch(self, repo, query, head_only) -> None:
        """The Git LFS batch API (upload): an upload + verify action per object not stored yet."""
        payload = json.loads(self._body() or b"{}")
        if not self._can_write() or (r := self._repo(repo)) is None:
            return
        if payload.get("operation") != "upload" or payload.get("hash_algo", "sha256") != "sha256":
            return self._error(422, "only sha256 uploads are supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], obj["size"]
            if oid in self.hub.lfs_objects and len(self.hub.lfs_objects[oid]) == size:
                objects.append({"oid": oid, "size": size})  # already stored: nothing to upload
                continue
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                "upload": {"href": self.hub.signed("PUT", oid), "expires_in": 86400},
                "verify": {"href": f"{self.hub.endpoint}/{r.repo_id}.git/info/lfs/objects/verify",
                           "header": {"Authorization": self.headers.get("Authorization", "")}}}})
        self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   {"Content-Type": "application/vnd.git-lfs+json"})

    def _signed(self, method: str, oid: str, query) -> bool:
        expected = urlsplit(self.hub.signed(method, oid)).query.split("=", 1)[1]
        if hmac.compare_digest((query.get("X-Signature") or [""])[0], expected):
            return True
        self._error(403, "Request has expired or its signature does not match", head_only=method == "HEAD")
        return False

    def lfs_put(self, oid, query, head_only) -> None:
        data = self._body()
        if not self._signed("PUT", oid, query):
            return
        if sha256(data) != oid:
            return self._error(400, f"the object's sha256 is {sha256(data)}, not {oid}")
        with self.hub.lock:
            self.hub.lfs_objects[oid] = data
            self.hub.lfs_puts.append(oid)
        self._send(200, b"", {"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def lfs_verify(self, repo, query, head_only) -> None:
        payload = json.loads(self._body() or b"{}")
        if not self._can_write() or self._repo(repo) is None:
            return
        data = self.hub.lfs_objects.get(payload.get("oid", ""))
        if data is None or len(data) != payload.get("size"):
            return self._error(404, f"object {payload.get('oid')} of size {payload.get('size')} was not uploaded")
        self._send(200, {"success": True})

    def lfs_get(self, oid, query, head_only) -> None:
        if not self._signed("GET", oid, query):
            return
        data = self.hub.lfs_objects.get(oid)
        if data is None:
            return self._error(404, "NoSuchKey", head_only=head_only)
        self._send(200, data, {"ETag": f'"{hashlib.md5(data).hexdigest()}"',
                               "Content-Type": "application/octet-stream"}, head_only=head_only)

    def xet_token(self, repo, rev, query, head_only) -> None:
        self._error(404, "Xet is not enabled for this repository")

    def commit(self, repo, rev, query, head_only) -> None:
        if self.hub.cut_commits:
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n // 2)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self._body()
        if not self._can_write() or (r := self._repo(repo)) is None:
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        with self.hub.lock:
            base = r.resolve(rev)
            if base is None:
                return self._error(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
            if header.get("parentCommit") and header["parentCommit"] != base:
                return self._error(412, "A commit has happened since. Please refresh and try again.")
            files, stored_lfs = dict(r.commits[base]), set(r.lfs.get(base, set()))
            base_files = r.commits[base]
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    if data and self.hub.must_use_lfs(base_files, value["path"], len(data)):
                        return self._error(400, f"Your push was rejected because {value['path']} must go "
                                                "through LFS or Xet (binary or larger than 10 MiB)")
                    files[value["path"]] = data
                    stored_lfs.discard(value["path"])
                elif key == "lfsFile":
                    data = self.hub.lfs_objects.get(value["oid"])
                    if value.get("algo") != "sha256" or data is None or len(data) != value["size"]:
                        return self._error(400, f"lfsFile {value['path']}: no uploaded object {value['oid']} "
                                                f"of {value['size']} bytes")
                    files[value["path"]] = data
                    stored_lfs.add(value["path"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                    stored_lfs.discard(value["path"])
                elif key != "header":
                    return self._error(400, f"this test server does not support {key!r} operations")
            self.hub.commit_ops.extend((x["key"], x["value"]["path"]) for x in lines if x["key"] != "header")
            digest = hashlib.sha1(base.encode())
            for p in sorted(files):
                digest.update(p.encode() + b"\0" + git_blob_sha1(files[p]).encode())
            digest.update(header.get("summary", "").encode())
            sha = digest.hexdigest()
            r.commits[sha] = files
            r.lfs[sha] = stored_lfs
            pr_url = None
            if query.get("create_pr"):
                r.prs.append(sha)
                pr_url = f"{self.hub.endpoint}/{repo}/discussions/{len(r.prs)}"
            else:
                r.branches[unquote(rev)] = sha
        self._send(200, {"success": True, "commitOid": sha, "commitUrl": f"{self.hub.endpoint}/{repo}/commit/{sha}",
                         "pullRequestUrl": pr_url})

    def create_tag(self, repo, rev, query, head_only) -> None:
        payload = json.loads(self._body() or b"{}")
        if not self._can_write() or (r := self._repo(repo)) is None:
            return
        with self.hub.lock:
            sha = r.resolve(rev)
            if sha is None:
                return self._error(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
            if payload["tag"] in r.tags:
                return self._error(409, f"Tag {payload['tag']} already exists")
            r.tags[payload["tag"]] = sha
        self._send(200, {"name": payload["tag"], "ref": f"refs/tags/{payload['tag']}", "targetCommit": sha})

    def create_branch(self, repo, branch, query, head_only) -> None:
        payload = json.loads(self._body() or b"{}")
        if not self._can_write() or (r := self._repo(repo)) is None:
            return
        with self.hub.lock:
            branch = unquote(branch)
            if branch in r.branches:
                return self._error(409, f"Branch {branch} already exists")
            sha = r.resolve(payload.get("startingPoint") or "main")
            if sha is None:
                return self._error(404, "Invalid starting point", "RevisionNotFound")
            r.branches[branch] = sha
        self._send(200, {})

    def refs(self, repo, query, head_only) -> None:
        if (r := self._repo(repo)) is None:
            return
        self._send(200, {
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in r.branches.items()],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in r.tags.items()],
            "converts": [],
            "pullRequests": [{"name": f"refs/pr/{i + 1}", "ref": f"refs/pr/{i + 1}", "targetCommit": s}
                             for i, s in enumerate(r.prs)]})

    def info(self, repo, query, head_only, rev="main") -> None:
        if (r := self._repo(repo)) is None:
            return
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        self._send(200, {"id": repo, "modelId": repo, "sha": sha, "private": r.private, "disabled": False,
                         "gated": False, "tags": [], "downloads": 0, "likes": 0, "xetEnabled": False,
                         "siblings": [{"rfilename": p} for p in sorted(r.commits[sha])]})

    def resolve(self, repo, rev, file, query, head_only) -> None:
        if (r := self._repo(repo, head_only)) is None:
            return
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound", head_only)
        files = r.commits[sha]
        file = unquote(file)
        if file not in files:
            return self._error(404, f"Entry not found: {file}", "EntryNotFound", head_only)
        data = files[file]
        if file in r.lfs.get(sha, set()):  # to the storage, with the object's sha256 and size
            return self._send(302, b"", {"Location": self.hub.signed("GET", sha256(data)), "X-Repo-Commit": sha,
                                         "ETag": f'"{git_blob_sha1(lfs_pointer(data))}"',
                                         "X-Linked-Etag": f'"{sha256(data)}"', "X-Linked-Size": len(data)},
                              head_only=head_only)
        self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"',
                               "Content-Type": "application/octet-stream"}, head_only=head_only)

    def tree(self, repo, rev, query, head_only, sub=None) -> None:
        """``list_repo_tree``: files (with an ``lfs`` block for LFS files) and folders under ``sub``."""
        if (r := self._repo(repo)) is None:
            return
        sha = r.resolve(rev)
        if sha is None:
            return self._error(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("true", "1")
        prefix = unquote(sub).strip("/") + "/" if sub else ""
        files, stored_lfs = r.commits[sha], r.lfs.get(sha, set())
        folders, entries = set(), []
        for path in sorted(p for p in files if p.startswith(prefix)):
            parts = path[len(prefix):].split("/")
            depth = len(parts) if recursive else min(2, len(parts))   # the folders on the way to the file
            folders.update(prefix + "/".join(parts[:i]) for i in range(1, depth))
            if recursive or len(parts) == 1:
                data = files[path]
                entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
                if path in stored_lfs:
                    pointer = lfs_pointer(data)
                    entry.update(oid=git_blob_sha1(pointer),
                                 lfs={"oid": sha256(data), "size": len(data), "pointerSize": len(pointer)})
                entries.append(entry)
        self._send(200, [{"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest()}
                         for f in sorted(folders)] + entries)
