"""kubectl against one kubeconfig: the independent view of what an install really created."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .helm import CheckFailed


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        if result.returncode != 0:
            raise CheckFailed(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.ok("get", *args, "-o", "json"))
        return parsed

    def exists(self, *args: str) -> bool:
        result = self.run("get", *args, "-o", "name")
        if result.returncode == 0:
            return True
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return False
        raise CheckFailed(f"kubectl get {' '.join(args)} failed: {result.stderr.strip()}")

    def api_versions(self) -> set[str]:
        return set(self.ok("api-versions").split())

    def can_i(self, user: str, verb: str, resource: str, namespace: str | None, subresource: str = "") -> bool:
        """`kubectl auth can-i` as `user` (a SubjectAccessReview through impersonation)."""
        args = ["auth", "can-i", verb, resource, "--as", user, "--quiet"]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        if subresource:
            args += ["--subresource", subresource]
        result = self.run(*args)
        if result.returncode not in (0, 1):
            raise CheckFailed(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.returncode == 0
