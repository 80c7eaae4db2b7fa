"""Deploy this app as a Hugging Face Space, or duplicate an existing one into your account.

    python -m kimichat.deploy you/kimi-chat              # create (or --update) and upload
    python -m kimichat.deploy you/kimi-chat --dry-run    # show the plan, touch nothing
    python -m kimichat.deploy you/kimi-chat --from someone/kimi-chat

The Kimi key is read from the local MOONSHOT_API_KEY and set as a Space *secret* (never
printed), and so is any setting named with --secret. Space *variables* are public and copied
to duplicates, so only the settings made to be public (limits, models, languages) become
variables, from the local environment or --var; anything else set locally (a storage URL that
may carry a password, a local path) is left out with a line saying so. --dry-run shows exactly
what becomes public. The Hub token comes from HF_TOKEN or the cached `hf auth login`.

Since July 2026 creating or duplicating a Gradio Space needs a paid plan, except that a
free personal account may host up to two ZeroGPU Gradio Spaces (--hardware zero-a10g).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from .settings import ROOT, Settings

SECRET = "MOONSHOT_API_KEY"
# What a Space needs to run and show its page; nothing else is uploaded.
ALLOW = ["app.py", "requirements.txt", "README.md", "personas.yaml", "kimichat/*.py", "kimichat/static/*", "docs/*.png"]
IGNORE = ["*/__pycache__/*", "*.pyc", "kimichat/deploy.py"]
ALL_SETTINGS = {f.metadata["env"] for f in fields(Settings)}
# The settings a Space may show as public variables: those settings.py marks public.
PUBLIC = {f.metadata["env"] for f in fields(Settings) if f.metadata.get("public")}


class DeployError(Exception):
    """A deploy problem with a message meant for the person at the terminal."""


@dataclass
class Plan:
    """Everything a deploy will do, so that --dry-run can show it and tests can check it."""

    space: str
    source: str | None = None
    files: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    variables: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)  # a local setting not published, and why
    private: bool = False
    hardware: str | None = None
    update: bool = False

    def describe(self) -> str:
        lines = [f"Space: {self.space} ({'private' if self.private else 'public'})"]
        if self.source:
            lines.append(f"Duplicate of: {self.source}")
        if self.hardware:
            lines.append(f"Hardware: {self.hardware}")
        if self.files:
            lines.append(f"Files ({len(self.files)}):")
            lines += [f"  {name}" for name in self.files]
        lines.append("Secrets: " + (", ".join(sorted(self.secrets)) or "none (the Space will show its setup panel)"))
        lines.append(
            "Variables (public): " + (", ".join(f"{k}={v}" for k, v in sorted(self.variables.items())) or "none")
        )
        lines += [f"Not published: {name}: {why}" for name, why in sorted(self.left_out.items())]
        return "\n".join(lines)


def space_files(root: Path = ROOT) -> list[str]:
    """The repository files a Space needs, filtered exactly as ``upload_folder`` filters them."""
    from huggingface_hub.utils import filter_repo_objects

    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .venv, caches
        found += [(Path(folder) / name).relative_to(root).as_posix() for name in files]
    return sorted(filter_repo_objects(found, allow_patterns=ALLOW, ignore_patterns=IGNORE))


def why_not_public(name: str, value: str) -> str | None:
    """Why ``name=value`` may not be a public variable; None if it may."""
    as_secret = f"set it as a secret instead (--secret {name}, or the Space's settings page)"
    if name not in PUBLIC:
        return f"not a setting made to be public; {as_secret}" if name in ALL_SETTINGS else "not a setting of this app"
    parts = urlsplit(value.strip()) if "://" in value else None
    if parts and (parts.username or parts.password or parts.query):
        return f"its URL carries credentials or a query; {as_secret}"
    if parts and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return "it points at this machine, which the Space cannot reach"
    return None


def make_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> Plan:
    variables, left_out = {}, {}
    for name in sorted(ALL_SETTINGS - {SECRET, *args.secret}):  # what is set locally, if it may be public
        if environ.get(name):
            why = why_not_public(name, environ[name])
            if why:
                left_out[name] = why
            else:
                variables[name] = environ[name]
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise DeployError(f"--var takes NAME=VALUE, not {item!r}")
        why = why_not_public(name, value)
        if why:
            raise DeployError(f"--var {name}: {why}")
        variables[name] = value
    secrets = {}
    for name in [SECRET, *args.secret]:
        if environ.get(name):
            secrets[name] = environ[name]
        elif name != SECRET:
            raise DeployError(f"--secret {name}: set {name} in your environment first; its value is read from there")
    return Plan(
        space=args.space,
        source=args.source,
        files=[] if args.source else space_files(),
        secrets=secrets,
        variables=variables,
        left_out=left_out,
        private=args.private,
        hardware=args.hardware,
        update=args.update,
    )


def _hub_error(exc: Exception, plan: Plan) -> DeployError:
    """Turn the Hub's HTTP errors into sentences that say what to do."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return DeployError("The Hub rejected your token. Set HF_TOKEN or run `hf auth login` with a write token.")
    if status == 403:
        return DeployError(
            f"Your token may not create or change {plan.space}: check the owner name and that the "
            "token has write access to it (and, since July 2026, that your plan allows Gradio Spaces)."
        )
    if status == 409:
        return DeployError(
            f"{plan.space} already exists. Pass --update to deploy a new version to it, or choose another name."
        )
    if status == 404 and plan.source:
        return DeployError(f"{plan.source} was not found (or is private).")
    return DeployError(f"The Hub answered {status or type(exc).__name__}: {exc}".split("\n")[0])


def run(plan: Plan, token: str | None = None) -> str:
    """Carry out ``plan`` on the Hub; returns the Space's URL."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    if not (token or get_token()):
        raise DeployError("No Hugging Face token: set HF_TOKEN or run `hf auth login` first.")
    secrets = [{"key": k, "value": v} for k, v in plan.secrets.items()]
    variables = [{"key": k, "value": v} for k, v in plan.variables.items()]
    try:
        api.whoami()
        if plan.source:
            api.duplicate_repo(
                plan.source,
                plan.space,
                repo_type="space",
                private=plan.private,
                space_hardware=plan.hardware,
                space_secrets=secrets or None,
                space_variables=variables or None,
                exist_ok=plan.update,
            )
        else:
            api.create_repo(
                plan.space,
                repo_type="space",
                space_sdk="gradio",
                private=plan.private,
                space_hardware=plan.hardware,
                exist_ok=plan.update,
            )
            api.upload_folder(
                folder_path=ROOT,
                repo_id=plan.space,
                repo_type="space",
                allow_patterns=ALLOW,
                ignore_patterns=IGNORE,
                commit_message="Deploy Kimi Persona Chat",
            )
            for item in secrets:
                api.add_space_secret(plan.space, item["key"], item["value"])
            for item in variables:
                api.add_space_variable(plan.space, item["key"], item["value"])
    except HfHubHTTPError as exc:
        raise _hub_error(exc, plan) from None
    except ValueError as exc:  # the Hub refused README.md's front matter
        raise DeployError(str(exc)) from None
    return f"https://huggingface.co/spaces/{plan.space}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kimichat.deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("space", help="OWNER/NAME of the Space to create or update")
    p.add_argument(
        "--from",
        dest="source",
        metavar="OWNER/SPACE",
        help="duplicate this public Space of the app into SPACE instead of uploading local files",
    )
    p.add_argument("--private", action="store_true", help="make the Space private (default: public)")
    p.add_argument("--update", action="store_true", help="deploy over an existing Space of that name")
    p.add_argument(
        "--hardware",
        metavar="NAME",
        help="Space hardware, e.g. cpu-basic, cpu-upgrade or zero-a10g. A Gradio Space needs a paid "
        "plan since July 2026, except up to two ZeroGPU Spaces (zero-a10g) on a free account",
    )
    p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a Space variable (public; copied to duplicates): only the settings made to be public; repeatable",
    )
    p.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME",
        help="set the local environment's NAME as a Space secret (not public, not copied); repeatable",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop: no network, no token needed")
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    if args.space.count("/") != 1 or not all(args.space.split("/")):
        print(f"error: SPACE must look like OWNER/NAME, not {args.space!r}", file=sys.stderr)
        return 2
    try:
        plan = make_plan(args, environ)
        print(plan.describe())
        if args.dry_run:
            print("Dry run: nothing was sent.")
            return 0
        if not plan.secrets:
            print(f"Note: {SECRET} is not set locally; the Space will ask its owner to add it.")
        url = run(plan)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Done: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
