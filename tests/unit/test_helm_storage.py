"""tidal.helm.storage: Helm's release JSON and storage Secret encoding, without a cluster."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tidal.helm import storage


def _release() -> storage.Release:
    return storage.Release(
        name="web",
        namespace="apps",
        version=3,
        info=storage.Info(
            first_deployed="2026-01-02T03:04:05.123456789+01:00",
            last_deployed="2026-01-02T03:04:06Z",
            description="Upgrade complete",
            status=storage.DEPLOYED,
            notes="<b>&</b>",
        ),
        chart={
            "metadata": {"name": "c", "version": "1.0.0", "apiVersion": "v2"},
            "lock": None,
            "templates": [],
            "values": {"b": 1, "a": {"z": 1.0, "y": 0.5}},
            "schema": None,
            "schemamodtime": storage.GO_ZERO_TIME,
            "files": [],
        },
        config={"z": [1, 2], "a": "x"},
        manifest="---\n# Source: c/templates/a.yaml\nkind: A\n",
        hooks=[
            storage.ReleaseHook(
                name="h",
                kind="Job",
                path="c/t.yaml",
                manifest="kind: Job",
                events=["pre-install"],
                weight=-1,
            )
        ],
        labels={"team": "a", "owner": "not-helm"},
    )


def test_json_is_go_shaped() -> None:
    text = storage.release_json(_release()).decode()
    assert text.startswith('{"name":"web","info":{"first_deployed":"2026-01-02T03:04:05.123456789')
    assert '"notes":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"' in text
    assert '"values":{"a":{"y":0.5,"z":1},"b":1}' in text
    assert '"config":{"a":"x","z":[1,2]}' in text
    assert '"last_run":{"phase":""},"weight":-1}]' in text
    assert text.endswith('"version":3,"namespace":"apps"}')
    assert '"deleted"' not in text


def test_secret_round_trip_and_labels() -> None:
    r = _release()
    secret = storage.encode(r, now=1700000000)
    assert secret["metadata"]["name"] == "sh.helm.release.v1.web.v3"
    assert secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["labels"] == {
        "team": "a", "createdAt": "1700000000", "name": "web", "owner": "helm",
        "status": "deployed", "version": "3",
    }  # fmt: skip
    inner = base64.b64decode(secret["data"]["release"])
    raw = base64.b64decode(inner)
    assert raw[:3] == b"\x1f\x8b\x08"
    assert json.loads(gzip.decompress(raw))["version"] == 3
    back = storage.decode(secret)
    assert back.labels == {"team": "a"}
    r.labels = {"team": "a"}
    r.config = {"a": "x", "z": [1, 2]}
    assert back.info == r.info and back.manifest == r.manifest and back.hooks == r.hooks
    assert storage.encode(r, update=True, now=5)["metadata"]["labels"]["modifiedAt"] == "5"


def test_plain_json_and_garbage() -> None:
    plain = base64.b64encode(b'{"name":"x","version":1}').decode()
    assert storage.decode_release(plain).version == 1
    for bad in ("!!!", base64.b64encode(b"\x1f\x8b\x08garbage").decode(),
                base64.b64encode(b"[1]").decode()):  # fmt: skip
        with pytest.raises(storage.StorageError):
            storage.decode_release(bad)
    with pytest.raises(storage.StorageError):
        storage.decode({"data": {}})


def test_go_time() -> None:
    tz = timezone(timedelta(hours=-5, minutes=-30))
    assert storage.go_time(datetime(2026, 1, 2, 3, 4, 5, 120000, tz)) == (
        "2026-01-02T03:04:05.12-05:30"
    )
    assert storage.go_time(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00Z"
    parsed = storage.parse_go_time("2026-01-02T03:04:05.123456789+01:00")
    assert parsed is not None and parsed.microsecond == 123456
    assert storage.parse_go_time(storage.GO_ZERO_TIME) is None
