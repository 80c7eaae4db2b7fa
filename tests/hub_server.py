"""A local stand-in for the Hugging Face Hub, just the calls a Space deploy makes.

huggingface_hub is pointed at it with HF_ENDPOINT; it records every request (method,
path, query, body) so tests can assert the real requests: repo create, the commit and
its files, secrets and variables, duplication. Namespaces other than the token's user
and org answer 403; creating an existing repo answers 409, as the Hub does.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "hf_test_local_token"


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    authorization: str
    body: Any


@dataclass
class HubServer:
    user: str = "tester"
    orgs: tuple[str, ...] = ("lab",)
    requests: list[Recorded] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_url: str = ""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST", "PUT", "DELETE"])])

    async def handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        path = "/" + request.path_params["path"]
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]  # ndjson commit
        self.requests.append(
            Recorded(request.method, path, request.url.query, request.headers.get("authorization", ""), body)
        )
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "Invalid credentials in Authorization header"}, status_code=401)
        parts = path.strip("/").split("/")
        if path == "/api/whoami-v2":
            return JSONResponse(
                {
                    "type": "user",
                    "name": self.user,
                    "fullname": self.user.title(),
                    "avatarUrl": "/avatars/tester.svg",
                    "orgs": [{"name": o} for o in self.orgs],
                    "auth": {"accessToken": {"role": "write"}},
                }
            )
        if path == "/api/validate-yaml":
            return self._validate(body["content"])
        if path == "/api/repos/create":
            repo = f"{body.get('organization') or self.user}/{body['name']}"
            return self._create(repo, body)
        if parts[:2] == ["api", "spaces"] and len(parts) >= 5:
            repo, action = f"{parts[2]}/{parts[3]}", parts[4]
            if action == "duplicate":
                if repo not in self.repos:
                    return JSONResponse({"error": "Repository not found"}, status_code=404)
                return self._create(body["repository"], body, copy_of=repo)
            if repo not in self.repos:
                return JSONResponse({"error": "Repository not found"}, status_code=404)
            if action == "preupload":
                return JSONResponse(
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in body["files"]
                        ]
                    }
                )
            if action == "commit":
                files = self.repos[repo]["files"]
                for item in body:
                    if item.get("key") == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                return JSONResponse(
                    {
                        "commitUrl": f"{self.base_url}/spaces/{repo}/commit/0",
                        "commitOid": "0" * 40,
                        "pullRequestUrl": None,
                    }
                )
            if action in ("secrets", "variables"):
                self.repos[repo][action][body["key"]] = body["value"]
                return JSONResponse({})
        return JSONResponse({"error": f"stand-in Hub does not know {request.method} {path}"}, status_code=404)

    def _create(self, repo: str, body: dict[str, Any], copy_of: str | None = None) -> JSONResponse:
        owner = repo.split("/")[0]
        if owner not in (self.user, *self.orgs):
            return JSONResponse(
                {"error": "You don't have the rights to create a space under this namespace"}, status_code=403
            )
        if repo in self.repos:
            return JSONResponse(
                {"error": "You already created this space repo", "url": self._url(repo)}, status_code=409
            )
        source = self.repos.get(copy_of or "", {})
        self.repos[repo] = {
            "payload": body,
            "files": dict(source.get("files", {})),
            "secrets": {s["key"]: s["value"] for s in body.get("secrets") or []},
            "variables": {**source.get("variables", {}), **{v["key"]: v["value"] for v in body.get("variables") or []}},
        }
        return JSONResponse({"url": self._url(repo), "name": repo})

    def _validate(self, readme: str) -> JSONResponse:
        """The Hub checks README front matter on upload; a few of its rules for Spaces."""
        _, front, _ = readme.split("---", 2)
        meta = yaml.safe_load(front)
        errors = [{"message": f'"{k}" is required'} for k in ("sdk", "title") if k not in meta]
        if len(meta.get("short_description", "")) > 60:
            errors.append({"message": '"short_description" length must be less than or equal to 60'})
        return JSONResponse({"errors": errors, "warnings": []}, status_code=400 if errors else 200)

    def _url(self, repo: str) -> str:
        return f"{self.base_url}/spaces/{repo}"
