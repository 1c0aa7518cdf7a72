"""Flux's kustomization.yaml generation and spec overlay (spec §5.3), as `generate` does it.

Expected values were taken from fluxcd/pkg kustomize v1.35.6 (the flux CLI v2.9.5 build; the
generator is unchanged in v1.44.0, kustomize-controller v1.10's), run on the same trees: the
decoding of an existing file (go-yaml v2 scalars, sigs.k8s.io/yaml's number-to-string coercion,
case-insensitive fields, dropped unknown fields), the walk of a directory without one, the merge
rules and the error texts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tidal.kustomize.confine import load_kustomization_file
from tidal.kustomize.generator import (
    Generated,
    GeneratorError,
    Image,
    Overlay,
    Patch,
    Selector,
    generate,
    is_local_relative_path,
    overlay_of,
)

API = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def gen(root: Path, path: str = "", overlay: Overlay | None = None) -> Generated:
    result = generate(root, path, overlay)
    # The file is JSON, which go-yaml v2 (kustomize's reader) reads back as the same object.
    assert json.loads(result.content) == result.kustomization
    assert load_kustomization_file(result.content, source="x") == result.kustomization
    return result


# --- an existing kustomization file ------------------------------------------------------------


def test_existing_file_is_decoded_like_flux(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": (
                "resources: [d.yaml]\n"
                "unknownField: 3\n"  # dropped: Flux's rewrite hides what kustomize would refuse
                'namespace: ""\n'  # empty values are omitted
                "images:\n- name: nginx\n  newTag: 1.10\n- name: b\n  newTag: 1e3\n"
                "commonLabels: {a: 1, b: 1.5, c: on, d: 12345678901}\n"
                "labels:\n- pairs: {x: 0x10}\n"
                "vars:\n- name: V\n  objref: {kind: K, name: n, apiVersion: v1}\n"
            )
        },
    )
    result = gen(tmp_path)
    assert result.action == "unchanged"
    assert result.file_name == "kustomization.yaml"
    assert result.kustomization == {
        **API,
        "resources": ["d.yaml"],
        # sigs.k8s.io/yaml writes YAML numbers and booleans into string fields as text
        # (float32 formatting), and go-yaml v2 reads `on` and `n` as booleans.
        "images": [{"name": "nginx", "newTag": "1.1"}, {"name": "b", "newTag": "1000"}],
        "commonLabels": {"a": "1", "b": "1.5", "c": "true", "d": "12345678901"},
        "labels": [{"pairs": {"x": "16"}}],
        "vars": [
            {
                "name": "V",
                "objref": {"apiVersion": "v1", "kind": "K", "name": "false"},
                "fieldref": {},
            }
        ],
    }


def test_field_names_match_case_insensitively_and_the_last_key_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"kustomization.yaml": "Resources: [A.yaml]\nresources: [a.yaml]\nRESOURCES: [b.yaml]\n"},
    )
    # The JSON decoder sees sorted keys: RESOURCES, Resources, resources.
    assert gen(tmp_path).kustomization == {**API, "resources": ["a.yaml"]}
    write(tmp_path, {"kustomization.yaml": "NAMEPREFIX: p-\nResources: [x.yaml]\n"})
    assert gen(tmp_path).kustomization == {**API, "namePrefix": "p-", "resources": ["x.yaml"]}


def test_anchors_merge_keys_nulls_and_a_bom(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": (
                b"\xef\xbb\xbfa: &x [1]\nresources: *x\n"
                b"base: &b {name: nm, newTag: t}\nimages: [{<<: *b, newTag: own}, null]\n"
            )
        },
    )
    assert gen(tmp_path).kustomization == {
        **API,
        "resources": ["1"],
        "images": [{"name": "nm", "newTag": "own"}, {}],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "resources: [x.yaml]\nreplicas:\n- name: a\n  count: 1.5\n",
            "cannot unmarshal number 1.5 into Go struct field Replica.replicas.count of type int64",
        ),
        (
            "resources: x.yaml\n",
            "cannot unmarshal string into Go struct field Kustomization.resources of type []string",
        ),
        ("[1, 2]\n", "cannot unmarshal array into Go value of type types.Kustomization"),
        # Fields promoted from embedded structs get no number-to-string coercion.
        (
            "kind: 1\nresources: [a.yaml]\n",
            "cannot unmarshal number into Go struct field Kustomization.TypeMeta.kind "
            "of type string",
        ),
        (
            "configMapGenerator:\n- name: 1\n",
            "cannot unmarshal number into Go struct field "
            "ConfigMapArgs.configMapGenerator.GeneratorArgs.name of type string",
        ),
        (
            "patches:\n- path: p.yaml\n  target: {kind: yes}\n",
            "cannot unmarshal bool into Go struct field "
            "Selector.patches.target.ResId.Gvk.kind of type string",
        ),
        (
            "replacements:\n- source: {kind: A}\n  targets:\n  - fieldPaths: [y]\n",
            "cannot unmarshal bool into Go struct field "
            "TargetSelector.replacements.Replacement.targets.fieldPaths of type string",
        ),
    ],
)
def test_undecodable_files_fail_with_flux_text(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, {"kustomization.yaml": text})
    with pytest.raises(GeneratorError) as err:
        generate(tmp_path, "")
    assert str(err.value) == f"error unmarshaling JSON: while decoding JSON: json: {message}"


def test_invalid_yaml_fails(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [a\n"})
    with pytest.raises(GeneratorError, match=r"^error converting YAML to JSON: yaml: "):
        generate(tmp_path, "")


def test_which_file_is_used_and_rewritten(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a/kustomization.yml": "resources: [x.yaml]\n",
            "a/Kustomization": "resources: [y.yaml]\n",
            "b/Kustomization": "resources: [z.yaml]\n",
            "c/kustomization.yaml/x.yaml": CM.format(name="x"),  # a directory does not count
        },
    )
    first = gen(tmp_path, "a")
    assert (first.file_name, first.file, first.action) == (
        "kustomization.yml",
        "a/kustomization.yml",
        "unchanged",
    )
    assert first.kustomization["resources"] == ["x.yaml"]
    assert gen(tmp_path, "b").file == "b/Kustomization"
    assert gen(tmp_path, "c").action == "created"


def test_no_resources_gets_origin_annotations(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a/kustomization.yaml": "buildMetadata: [managedByLabel]\n",
            # `bases` are resources to kustomize, but not to Flux's check
            "b/kustomization.yaml": "bases: [../a]\n",
            "c/kustomization.yaml": "",
            "d/kustomization.yaml": "resources: []\nconfigMapGenerator: [{name: x}]\n",
        },
    )
    for directory in "abcd":
        assert gen(tmp_path, directory).kustomization["buildMetadata"] == ["originAnnotations"]
    spec = Overlay(build_metadata=("transformerAnnotations",))
    assert gen(tmp_path, "a", spec).kustomization["buildMetadata"] == ["transformerAnnotations"]


def test_generate_never_writes(tmp_path: Path) -> None:
    write(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml]\n", "plain/a.yaml": "{}\n"})
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    gen(tmp_path, "app", Overlay(target_namespace="x"))
    gen(tmp_path, "plain", Overlay(target_namespace="x"))
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


# --- a directory without one -------------------------------------------------------------------


def test_generated_resources_walk_order(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "x/b.yaml": CM.format(name="b"),
            "x/a.yml": CM.format(name="a"),
            "x/B.yaml": CM.format(name="B"),  # bytewise: upper case first
            "x/.yaml": CM.format(name="dot"),  # Go's Ext(".yaml") is ".yaml"
            "x/.hidden/h.yaml": CM.format(name="h"),
            "x/a-dir/z.yaml": CM.format(name="z"),
            "x/c.YAML": "not: [valid",  # not a manifest extension: never read
            "x/notes.txt": "hello",
            "x/sub/kustomization.yaml": "resources: []\n",
            "x/sub/ignored.yaml": "not: [valid",  # below a kustomization: not walked
            "x/empty.yaml": "---\n# nothing\n---\n{}\n",
            "x/list.yaml": "apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: ConfigMap, metadata: {name: li}}\n",
        },
    )
    result = gen(tmp_path, "x")
    assert result.action == "created"
    assert result.file == "x/kustomization.yaml"
    assert result.kustomization == {
        **API,
        "resources": [
            "./.hidden/h.yaml",
            "./.yaml",
            "./B.yaml",
            "./a-dir/z.yaml",
            "./a.yml",
            "./b.yaml",
            "./empty.yaml",
            "./list.yaml",
            "./sub",
        ],
    }


def test_empty_directory_gets_a_placeholder_namespace(tmp_path: Path) -> None:
    write(tmp_path, {"x/readme.md": "hi", "x/empty/.keep": ""})
    assert gen(tmp_path, "x").kustomization == {**API, "namespace": "_placeholder"}
    overlay = Overlay(target_namespace="apps")
    assert gen(tmp_path, "x", overlay).kustomization == {**API, "namespace": "apps"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("a: b\n", "missing Resource metadata"),
        ("apiVersion: v1\n", "missing kind in object {{v1 } {{ } map[] map[]}}"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {b: '2', a: '1'}}\n",
            "missing metadata.name in object {{v1 ConfigMap} {{ } map[a:1 b:2] map[]}}",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n",
            "missing metadata.name in object {{v1 ConfigMap} {{ } map[] map[]}}",
        ),
        (
            "apiVersion: v1\nkind: ConfigMapList\nitems: 3\n",
            "expected array in ConfigMapList/items, but found int",
        ),
        ("apiVersion: v1\nkind: List\nitems: [3]\n", "missing Resource metadata"),
        ("- a\n- b\n", "missing Resource metadata"),
        ("hello\n", "missing Resource metadata"),
        ("apiVersion: v1\nkind: [X]\nmetadata: {name: a}\n", "missing kind in object"),
        ("a: [b\n", "yaml: line 2: "),
    ],
)
def test_manifests_must_decode(tmp_path: Path, content: str, reason: str) -> None:
    write(tmp_path, {"x/ok.yaml": CM.format(name="ok"), "x/sub/bad.yaml": content})
    with pytest.raises(GeneratorError) as err:
        generate(tmp_path, "x")
    assert str(err.value).startswith(
        f"failed to decode Kubernetes YAML from x/sub/bad.yaml: {reason}"
    )


def test_what_the_decode_check_lets_through(tmp_path: Path) -> None:
    # kio unwraps a lone List (a scalar `items` has no documents); empty documents are skipped;
    # a number is a name; the JSON step (duplicate keys, NaN) comes later, in the build.
    write(
        tmp_path,
        {
            "x/list.yaml": "apiVersion: v1\nkind: List\nitems: 3\n",
            "x/rl.yaml": "kind: ResourceList\nfunctionConfig: {a: 1}\n",
            "x/empty.yaml": "[]\n---\n{}\n",
            "x/num.yaml": "apiVersion: v1\nkind: X\nmetadata: {name: 5}\nx: 1\nx: .inf\n",
        },
    )
    assert len(gen(tmp_path, "x").kustomization["resources"]) == 4


def test_templated_manifests_pass_the_decode_check(tmp_path: Path) -> None:
    # Flux only parses here; what fails later (a mapping as a key) is not a decode error.
    write(
        tmp_path,
        {
            "x/a.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n"
            "  labels: {{ .ns }}\n",
            "x/b.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .ns }}\n",
        },
    )
    with pytest.raises(GeneratorError) as err:
        generate(tmp_path, "x")
    assert str(err.value) == (
        "failed to decode Kubernetes YAML from x/b.yaml: missing metadata.name in object "
        "{{v1 Namespace} {{ } map[] map[]}}"
    )


def test_symlinks_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"x/a.yaml": CM.format(name="a"), "y/kustomization.yaml": "resources: []\n"})
    (tmp_path / "x" / "link.yaml").symlink_to("/etc/hostname")
    with pytest.raises(GeneratorError, match=r"manifest 'x/link\.yaml' is a symlink"):
        generate(tmp_path, "x")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "kustomization.yaml").symlink_to(tmp_path / "y" / "kustomization.yaml")
    with pytest.raises(GeneratorError, match=r"'z/kustomization\.yaml' is a symlink"):
        generate(tmp_path, "z")
    (tmp_path / "w").symlink_to(tmp_path / "y")
    with pytest.raises(GeneratorError, match="goes through a symlink: 'w'"):
        generate(tmp_path, "w")


def test_path_is_secure_joined_and_must_exist(tmp_path: Path) -> None:
    write(tmp_path, {"apps/kustomization.yaml": "resources: [a.yaml]\n", "file.yaml": "{}"})
    # `..` stops at the root, as in Flux's SecureJoin.
    assert gen(tmp_path, "../../apps").directory == "apps"
    assert gen(tmp_path, "./apps/").directory == "apps"
    with pytest.raises(GeneratorError) as err:
        generate(tmp_path, "./missing")
    assert str(err.value) == (
        "kustomization path not found: stat ./missing: no such file or directory"
    )
    with pytest.raises(GeneratorError, match="not a directory"):
        generate(tmp_path, "file.yaml")


# --- the spec overlay --------------------------------------------------------------------------


def test_overlay_fields(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\nnamespace: old\nnamePrefix: o-\n"})
    overlay = Overlay(
        target_namespace="tn",
        name_prefix="pre-",
        name_suffix="-suf",
        patches=(
            Patch(
                "- op: add\n  path: /x\n  value: 1\n",
                Selector(kind="ConfigMap", label_selector="a=b"),
            ),
            Patch("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
        ),
    )
    assert gen(tmp_path, "", overlay).kustomization == {
        **API,
        "resources": ["a.yaml"],
        "namespace": "tn",
        "namePrefix": "pre-",
        "nameSuffix": "-suf",
        "patches": [
            {
                "patch": "- op: add\n  path: /x\n  value: 1\n",
                "target": {"kind": "ConfigMap", "labelSelector": "a=b"},
            },
            {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"},
        ],
    }


def test_overlay_patches_append_to_existing(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\npatches:\n- path: p.yaml\n"})
    overlay = Overlay(patches=(Patch("x", Selector(name="n")),))
    assert gen(tmp_path, "", overlay).kustomization["patches"] == [
        {"path": "p.yaml"},
        {"patch": "x", "target": {"name": "n"}},
    ]


def test_images_merge(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": (
                "resources: [a.yaml]\nimages:\n- name: nginx\n  newTag: '1.0'\n"
                "  digest: sha256:abc\n- name: redis\n  newName: r2\n"
            )
        },
    )
    overlay = Overlay(
        images=(
            Image("nginx", new_tag="2.0"),  # newTag and digest move together
            Image("redis", digest="sha256:x"),  # newName kept
            Image("new", new_name="n2"),  # appended
            Image("nginx", new_name="ng"),  # newName only: tag kept
        )
    )
    assert gen(tmp_path, "", overlay).kustomization["images"] == [
        {"name": "nginx", "newName": "ng", "newTag": "2.0"},
        {"name": "redis", "newName": "r2", "digest": "sha256:x"},
        {"name": "new", "newName": "n2"},
    ]


def test_components(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [a.yaml]\ncomponents: [../c0]\n",
            "c1/kustomization.yaml": "kind: Component\n",
        },
    )
    comps = ("../c1", "../missing", "../../../../etc")
    assert gen(tmp_path, "app", Overlay(components=comps)).kustomization["components"] == [
        "../c0",
        *comps,
    ]
    # ignoreMissingComponents drops absent ones, and anything outside the root is absent.
    overlay = Overlay(components=comps, ignore_missing_components=True)
    assert gen(tmp_path, "app", overlay).kustomization["components"] == ["../c0", "../c1"]


@pytest.mark.parametrize(
    "component",
    ["https://github.com/x/y", "git@github.com:x/y", "github.com/x/y", "/abs", "file:///abs"],
)
def test_components_must_be_local_and_relative(tmp_path: Path, component: str) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\n"})
    assert not is_local_relative_path(component)
    with pytest.raises(GeneratorError) as err:
        generate(tmp_path, "", Overlay(components=(component,)))
    assert str(err.value) == f"component path '{component}' must be local and relative"


def test_is_local_relative_path() -> None:
    for ok in ("../c", "c", "gh:", "git::", "file://rel", "./github.com"):
        assert is_local_relative_path(ok), ok


def test_overlay_from_spec() -> None:
    spec: dict[str, Any] = {
        "path": "./x",
        "targetNamespace": "tn",
        "namePrefix": "p-",
        "patches": [{"patch": "x", "target": {"kind": "K", "annotationSelector": "a"}}],
        "images": [{"name": "n", "newTag": "t", "digest": "d"}],
        "components": ["../c"],
        "ignoreMissingComponents": True,
        "buildMetadata": ["originAnnotations"],
    }
    expected = Overlay(
        target_namespace="tn",
        name_prefix="p-",
        patches=(Patch("x", Selector(kind="K", annotation_selector="a")),),
        images=(Image("n", new_tag="t", digest="d"),),
        components=("../c",),
        ignore_missing_components=True,
        build_metadata=("originAnnotations",),
    )
    assert Overlay.from_spec(spec) == expected
    assert overlay_of(spec) == expected

    class Spec(msgspec.Struct, rename="camel"):
        target_namespace: str | None = None
        name_prefix: str | None = None
        components: list[str] = []

    assert overlay_of(Spec(target_namespace="tn", components=["../c"])) == Overlay(
        target_namespace="tn", components=("../c",)
    )


def test_written_file_escapes_yaml_line_breaks(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\n"})
    patch = "a\u0085b\u2028c\x7fd é"
    result = gen(tmp_path, "", Overlay(patches=(Patch(patch),)))
    text = result.content.decode()
    for raw in ("\u0085", "\u2028", "\x7f"):
        assert raw not in text
    assert "é" in text
    assert load_kustomization_file(result.content, source="k")["patches"] == [{"patch": patch}]
