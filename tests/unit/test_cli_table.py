"""`flux get`'s table layout; the expected bytes were printed by the flux v2.9.5 binary."""

from __future__ import annotations

from typing import Any

from tidal.cli import table
from tidal.cli.get import (
    kustomization_row,
    render_kustomizations,
    render_sources,
    source_row,
    status_filter,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_header_pads_with_tabs_and_ends_with_a_space_rows_end_with_a_tab() -> None:
    out = table.render(["Name", "Ready"], [["a", "True"], ["longer-name", "False"]])
    assert out == (
        "NAME       \tREADY \n"  # the last header cell is followed by a space
        "a          \tTrue \t\n"  # every row cell, the last included, by a tab
        "longer-name\tFalse\t\n"
    )


def test_no_header_sizes_columns_from_the_rows_only() -> None:
    out = table.render(None, [["a", "True"], ["bb", "False"]])
    assert out == "a \tTrue \t\nbb\tFalse\t\n"


def test_header_only_when_every_row_was_filtered() -> None:
    assert table.render(["Name", "Message"], []) == "NAME\tMESSAGE \n"
    assert table.render(None, []) == ""


def test_wide_characters_count_two_cells() -> None:
    out = table.render(["M"], [["日本"], ["abc"]])
    assert out == "M    \n日本\t\nabc \t\n"


def test_multi_line_cells_continue_with_two_spaces() -> None:
    # The filler is not counted in the column's width: "  " sticks out of a 1-wide column.
    out = table.render(["A", "B"], [["x", "one\ntwo"]])
    assert out == "A\tB   \nx\tone\t\n  \ttwo\t\n"


def test_header_title_rules() -> None:
    assert table.render(["last_seen", "v1.2"], []) == "LAST SEEN\tV1.2 \n"


def _repo(name: str, namespace: str = "ns", **status: Any) -> dict[str, Any]:
    spec = {"suspend": True} if status.pop("suspend", False) else {}
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": status}


def _ready(message: str, status: str = "True") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "message": message, "reason": "R"}


ITEMS = [
    _repo("demo", "exp1"),
    _repo("no-conditions-with-a-longer-name", "tbl1"),
    _repo(
        "ready-one",
        "tbl1",
        artifact={"revision": f"main@sha1:{SHA}"},
        conditions=[_ready(f"stored artifact for revision 'main@sha1:{SHA}'")],
    ),
    _repo(
        "suspended",
        "tbl1",
        suspend=True,
        conditions=[
            _ready(
                "failed to checkout and determine revision: unable to clone: 日本語 wide", "False"
            )
        ],
    ),
]

# `flux get sources git -A` on the same objects, byte for byte.
FLUX_ALL_NAMESPACES = (
    "NAMESPACE\tNAME                            \tREVISION          \tSUSPENDED\tREADY\t"
    "MESSAGE                                                                 \n"
    "exp1     \tdemo                            \t                  \tFalse    \tFalse\t"
    "waiting to be reconciled                                               \t\n"
    "tbl1     \tno-conditions-with-a-longer-name\t                  \tFalse    \tFalse\t"
    "waiting to be reconciled                                               \t\n"
    "tbl1     \tready-one                       \tmain@sha1:01234567\tFalse    \tTrue \t"
    "stored artifact for revision 'main@sha1:01234567'                      \t\n"
    "tbl1     \tsuspended                       \t                  \tTrue     \tFalse\t"
    "failed to checkout and determine revision: unable to clone: 日本語 wide\t\n"
)


def test_sources_table_matches_flux_across_namespaces() -> None:
    out = render_sources(ITEMS, all_namespaces=True, no_header=False)
    assert out == FLUX_ALL_NAMESPACES


def test_source_row_columns() -> None:
    assert source_row(ITEMS[2], False) == [
        "ready-one",
        "main@sha1:01234567",
        "False",
        "True",
        "stored artifact for revision 'main@sha1:01234567'",
    ]
    assert source_row(ITEMS[0], True)[3:] == ["False", "False", "waiting to be reconciled"]


def test_status_selector_is_case_insensitive_and_negatable() -> None:
    ready = status_filter("ready=true")
    not_ready = status_filter("READY!=True")
    assert [ready(o) for o in ITEMS] == [False, False, True, False]
    # Objects without the condition never match `=`, so they always match `!=`.
    assert [not_ready(o) for o in ITEMS] == [True, True, False, True]
    assert status_filter("")(ITEMS[0])


def _ks(name: str, namespace: str, source: dict[str, str], **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"sourceRef": source}
    if status.pop("suspend", False):
        spec["suspend"] = True
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": status}


KUSTOMIZATIONS = [
    _ks(
        "apps",
        "a",
        {"kind": "GitRepository", "name": "flux-system"},
        lastAppliedRevision=f"main@sha1:{SHA}",
        conditions=[_ready(f"Applied revision: main@sha1:{SHA}")],
    ),
    _ks(
        "tenant",
        "b",
        {"kind": "OCIRepository", "name": "m", "namespace": "shared"},
        suspend=True,
        lastAttemptedRevision=f"main@sha1:{SHA}",
        conditions=[_ready("kustomize build failed", "False")],
    ),
    _ks("new", "a", {"kind": "Bucket", "name": "b"}),
]


def test_kustomizations_table_columns() -> None:
    # REVISION is the last applied one (never the attempted one), hex shortened to 8.
    assert kustomization_row(KUSTOMIZATIONS[0], False) == [
        "apps", "main@sha1:01234567", "False", "True", "Applied revision: main@sha1:01234567",
    ]  # fmt: skip
    # SOURCE's namespace defaults to the Kustomization's own; NAMESPACE comes first.
    assert kustomization_row(KUSTOMIZATIONS[0], True, show_source=True)[:3] == [
        "a", "apps", "GitRepository/a/flux-system",
    ]  # fmt: skip
    assert kustomization_row(KUSTOMIZATIONS[1], False, show_source=True) == [
        "tenant", "OCIRepository/shared/m", "", "True", "False", "kustomize build failed",
    ]  # fmt: skip


def test_kustomizations_table_layout() -> None:
    out = render_kustomizations(
        KUSTOMIZATIONS, all_namespaces=True, no_header=False, show_source=True
    )
    assert out.splitlines()[0] == (
        "NAMESPACE\tNAME  \tSOURCE                     \tREVISION          \tSUSPENDED\tREADY\t"
        "MESSAGE" + " " * 29 + " "  # padded to the widest message, then the header's space
    )
    assert out.splitlines()[3] == (
        "a        \tnew   \tBucket/a/b                 \t                  \tFalse    \tFalse\t"
        "waiting to be reconciled            \t"
    )
    filtered = render_kustomizations(
        KUSTOMIZATIONS, all_namespaces=False, no_header=True, status_selector="ready=false"
    )
    assert filtered == "tenant\t\tTrue\tFalse\tkustomize build failed\t\n"
