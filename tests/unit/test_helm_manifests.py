"""tidal.helm.manifests: Helm's releaseutil splitting, hook parsing and kind ordering."""

from __future__ import annotations

import pytest

from tidal.helm.errors import RenderError
from tidal.helm.manifests import hooks_for, join_manifests, sort_manifests, split_manifests


def test_split_like_go_regexp() -> None:
    assert split_manifests("\n\na: 1\n---\nb: 2\n--- \n\n---\nc: 3") == [
        "a: 1",
        "b: 2",
        "---\nc: 3",
    ]
    assert split_manifests("   \n") == []
    assert split_manifests("x: 1\n---foo: 2") == ["x: 1", "foo: 2"]


def test_kind_order_unknown_kinds_last_alphabetical_stable() -> None:
    files = {
        "c/templates/b.yaml": "kind: Zeta\n---\nkind: Deployment\nmetadata: {name: d}\n"
        "---\nkind: Alpha\n---\nkind: Namespace\n",
        "c/templates/a.yaml": "kind: Deployment\nmetadata: {name: first}\n---\n# only a comment\n",
        "c/templates/_h.tpl": "kind: Secret\n",
    }
    hooks, manifests = sort_manifests(files)
    assert hooks == []
    assert [(m.kind, m.name) for m in manifests] == [
        ("Namespace", ""), ("Deployment", "first"), ("Deployment", "d"),
        ("", ""), ("Alpha", ""), ("Zeta", ""),
    ]  # fmt: skip
    assert join_manifests(manifests[:1]) == "---\n# Source: c/templates/b.yaml\nkind: Namespace\n\n"


def test_hooks_events_weights_policies_and_unknown_hooks() -> None:
    doc = (
        "kind: Job\nmetadata:\n  name: j\n  annotations:\n"
        "    helm.sh/hook: ' Pre-Install , test-success'\n    helm.sh/hook-weight: '-2'\n"
        "    helm.sh/hook-delete-policy: before-hook-creation, HOOK-SUCCEEDED\n"
        "---\nkind: Pod\nmetadata:\n  name: a\n  annotations: {helm.sh/hook: pre-install,"
        " helm.sh/hook-weight: nope}\n"
        "---\nkind: Pod\nmetadata:\n  name: u\n  annotations: {helm.sh/hook: 'pre-install,bogus'}\n"
    )
    hooks, manifests = sort_manifests({"c/templates/h.yaml": doc})
    assert manifests == []
    assert [(h.kind, h.name, h.events, h.weight, h.delete_policies) for h in hooks] == [
        ("Pod", "a", ("pre-install",), 0, ()),
        ("Job", "j", ("pre-install", "test"), -2, ("before-hook-creation", "hook-succeeded")),
    ]
    assert [h.name for h in hooks_for(hooks, "pre-install")] == ["j", "a"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("- a\n", "cannot unmarshal array into Go value of type util.SimpleHead"),
        ("kind: 5\n", "cannot unmarshal number into Go struct field SimpleHead.kind"),
        ("metadata:\n  annotations: {helm.sh/hook-weight: 5}\n", "SimpleHead.metadata.annotations"),
        ("a: [1\n", "error converting YAML to JSON"),
    ],
)
def test_unparsable_documents_fail_like_helm(doc: str, message: str) -> None:
    with pytest.raises(RenderError, match=r"^YAML parse error on c/templates/x\.yaml: ") as e:
        sort_manifests({"c/templates/x.yaml": doc})
    assert message in str(e.value)


def test_timestamps_and_odd_keys_do_not_crash() -> None:
    _, manifests = sort_manifests(
        {"c/t.yaml": "kind: A\nmetadata:\n  name: 2001-12-14\n  annotations: {1: x, true: y}\n"}
    )
    assert manifests[0].name == "2001-12-14"
