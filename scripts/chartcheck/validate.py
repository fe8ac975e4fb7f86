"""Schema validation of rendered manifests with kubernetes-validate (offline JSON schemas)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .helm import CheckFailed


def kubernetes_validate(files: list[Path], kube_version: str) -> None:
    """Runs `kubernetes-validate --strict -k VERSION` over `files`; raises on any failure.

    Kinds it has no schema for (the ServiceMonitor) only produce a warning.
    """
    tool = Path(sys.executable).parent / "kubernetes-validate"
    command = str(tool) if tool.exists() else shutil.which("kubernetes-validate")
    if command is None:
        raise CheckFailed("kubernetes-validate is not installed (run scripts/setup-test-deps.sh)")
    result = subprocess.run(
        [command, "--strict", "--quiet", "-k", kube_version, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise CheckFailed(
            f"kubernetes-validate --strict -k {kube_version} failed:\n{result.stdout}{result.stderr}"
        )
