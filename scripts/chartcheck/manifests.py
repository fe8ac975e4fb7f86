"""Rendered chart output as parsed Kubernetes objects, plus lookups the checks need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .helm import CheckFailed

NOTES = "templates/NOTES.txt"


@dataclass
class Rendered:
    """One render of the chart: the manifests by template path and the objects in them."""

    case: str
    manifests: dict[str, str]
    objects: list[dict[str, Any]]

    @classmethod
    def parse(cls, case: str, manifests: dict[str, str]) -> Rendered:
        objects: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if path.endswith(NOTES):
                continue
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError as err:
                raise CheckFailed(f"[{case}] {path} is not valid YAML: {err}") from err
            objects.extend(d for d in docs if d)
        return cls(case, manifests, objects)

    @property
    def notes(self) -> str:
        return next((t for p, t in self.manifests.items() if p.endswith(NOTES)), "")

    def all(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            o
            for o in self.objects
            if o.get("kind") == kind
            and (namespace is None or o.get("metadata", {}).get("namespace") == namespace)
        ]

    def one(self, kind: str, namespace: str | None = None) -> dict[str, Any]:
        found = self.all(kind, namespace)
        if len(found) != 1:
            where = f" in namespace {namespace}" if namespace else ""
            raise CheckFailed(f"[{self.case}] expected exactly one {kind}{where}, found {len(found)}")
        return found[0]

    def write(self, directory: Path) -> list[Path]:
        """Writes each non-empty manifest to its own file (for kubernetes-validate)."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for path, text in sorted(self.manifests.items()):
            if path.endswith(NOTES) or not text.strip():
                continue
            target = directory / path.replace("/", "__")
            target.write_text(text)
            written.append(target)
        return written


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if len(containers) != 1:
        raise CheckFailed(f"expected one container in the Deployment, found {len(containers)}")
    return containers[0]


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    """The container's env as name -> value (or the valueFrom object)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment).get("env", [])}


def normalized_rules(rules: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], ...]]:
    """RBAC rules in a comparable form: order of rules and of list entries does not matter."""
    return sorted(
        tuple(tuple(sorted(rule.get(field, []))) for field in ("apiGroups", "resources", "verbs", "resourceNames"))
        for rule in rules
    )
