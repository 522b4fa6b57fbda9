"""Every kustomization under deploy/k8s, rendered as ``kubectl apply -k`` would render it and
validated against the Kubernetes API's own schemas by ``kubernetes-validate --strict`` (the dev
extra; its schemas ship in the package, nothing is fetched). Strict: a misspelt or misplaced
field, which the API server would drop or reject, is an error here too.

The versions: the oldest Kubernetes the manifests are stated to run on and the newest the
validator knows (docs/operations.md); a field removed or renamed in between fails one of them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources whose schemas are the Prometheus Operator's, not Kubernetes': the validator
# cannot know them (it would fail with "schema not found"), so they are left out by kind, each
# named here. Any other kind it does not know still fails the test.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
KUSTOMIZATIONS = sorted(p.parent for p in K8S.rglob("kustomization.yaml"))
VALIDATOR = Path(sys.executable).parent / "kubernetes-validate"
PASSED = re.compile(r"^INFO .* passed for resource (\S+) against version", re.MULTILINE)


def render(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the kustomizations (Debian: kubernetes-client)"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def test_every_kustomization_is_found() -> None:
    names = {p.relative_to(K8S).as_posix() for p in KUSTOMIZATIONS}
    assert {"base", "migrate", "overlays/production", "overlays/production-migrate"} <= names


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "directory", KUSTOMIZATIONS, ids=[p.relative_to(K8S).as_posix() for p in KUSTOMIZATIONS]
)
def test_the_rendered_manifests_pass_strict_schema_validation(
    directory: Path, version: str, tmp_path: Path
) -> None:
    docs = render(directory)
    checked = [d for d in docs if (d.get("apiVersion"), d.get("kind")) not in CUSTOM_KINDS]
    assert checked, f"{directory}: nothing to validate"
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(checked, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [str(VALIDATOR), "--strict", "--kubernetes-version", version, str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output and "WARN" not in output, output
    # Each resource was validated (the validator says so of each), none passed over silently.
    passed = PASSED.findall(output)
    expected = [f"{d['kind'].lower()}/{d['metadata']['name']}" for d in checked]
    assert sorted(passed) == sorted(expected), output


def test_a_misplaced_field_fails_the_validation(tmp_path: Path) -> None:
    # The check itself: strict validation refuses a field the schema does not have.
    deployment = next(d for d in render(K8S / "base") if d["kind"] == "Deployment")
    deployment["spec"]["replicaz"] = deployment["spec"].pop("replicas", 1)
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    result = subprocess.run(
        [str(VALIDATOR), "--strict", "--kubernetes-version", KUBERNETES_VERSIONS[0], str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "'replicaz' was unexpected" in result.stdout + result.stderr
