"""A Hub-compatible HTTP server for tests: the endpoints the real ``huggingface_hub`` client calls to create a
repo, commit files, tag, list refs, read repo info and download files (stdlib ``http.server``, in memory).

The protocol follows huggingface_hub's own code (``_commit_api.py``, ``hf_api.py``, ``file_download.py``):
``preupload`` answers ``uploadMode: regular`` for every file, so a commit is one NDJSON request with the files
base64-encoded (no LFS / Xet transfer to emulate). Git object ids are real git blob SHA-1s, commit ids are
SHA-1s of the commit's content and parent. Faults for tests:

- ``cut_commits = True``: a commit request is read halfway, then the connection is closed with no answer
  (an upload cut off midway); nothing is committed.
- ``online = False`` answers nothing at all (see :meth:`FakeHub.stop`).

Tokens: ``valid_tokens`` maps token -> user name. A missing or unknown token on a write is 401; a private
repo is invisible (404 RepoNotFound) without a token of its owner, as on the Hub.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)   # sha -> {path: bytes}
    branches: dict[str, str] = field(default_factory=dict)               # name -> sha
    tags: dict[str, str] = field(default_factory=dict)
    prs: list[str] = field(default_factory=list)                         # refs/pr/N -> sha (index N-1)

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
        self.requests: list[tuple[str, str]] = []   # (method, path) of every request, for assertions
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

    # ---------------------------------------------------------------- helpers for assertions
    def files_at(self, repo_id: str, rev: str) -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.resolve(rev)])


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
            repo.commits[sha] = {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"}
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
        files = r.commits[sha]
        self._send(200, {"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_sha1(files[f["path"]]) if f["path"] in files else None}
            for f in payload.get("files", [])]})

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
            files = dict(r.commits[base])
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key != "header":
                    return self._error(400, f"this test server does not support {key!r} operations")
            digest = hashlib.sha1(base.encode())
            for p in sorted(files):
                digest.update(p.encode() + b"\0" + git_blob_sha1(files[p]).encode())
            digest.update(header.get("summary", "").encode())
            sha = digest.hexdigest()
            r.commits[sha] = files
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
                         "gated": False, "tags": [], "downloads": 0, "likes": 0,
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
        self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"',
                               "Content-Type": "application/octet-stream"}, head_only=head_only)
