"""The OCI client's pure parts: addresses, credentials, challenges, tag selection, manifests,
layer selection, and the OCIRepository reconciler's revision and event rules."""

from __future__ import annotations

import base64
import json

import pytest

from tidal.api.meta import Artifact
from tidal.api.source_oci import OCILayerSelector, OCIRepository
from tidal.source.oci import (
    FLUX_CONTENT,
    HELM_CHART_CONTENT,
    CredentialsError,
    Index,
    InvalidReferenceError,
    Manifest,
    OCIError,
    cosign,
    keyring_from_secrets,
    parse_challenges,
    parse_repository,
    revision,
    select_layer,
    select_semver,
)
from tidal.source.oci.client import _next_link, registry_error, validate_realm
from tidal.source.oci.manifest import parse, pick_platform
from tidal.source.oci.tags import TagSelectionError, digest_of_revision, filter_tags
from tidal.source.ocirepository import content_config_changed, new_artifact_message

DIGEST = "sha256:" + "0" * 64

# -- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "registry", "path"),
    [
        ("oci://ghcr.io/org/app", "ghcr.io", "org/app"),
        ("oci://127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c"),
        ("oci://localhost/app", "localhost", "app"),
        ("oci://stefanprodan/podinfo", "index.docker.io", "stefanprodan/podinfo"),
        ("oci://nginx", "index.docker.io", "library/nginx"),
        ("oci://docker.io/library/nginx", "index.docker.io", "library/nginx"),
    ],
)
def test_repository_addresses(url: str, registry: str, path: str) -> None:
    repo = parse_repository(url)
    assert (repo.registry, repo.path) == (registry, path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://ghcr.io/org/app", "URL must be in format 'oci://<domain>/<org>/<repo>'"),
        ("oci://ghcr.io/org/app:1.0", "URL must not contain a tag; remove ':1.0'"),
        ("oci://ghcr.io/Org/App", "repository can only contain the characters"),
        ("oci://ghcr.io/org/app@" + DIGEST, "repository can only contain the characters"),
    ],
)
def test_invalid_addresses_are_refused_with_flux_s_words(url: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match="^" + message.replace("(", r"\(")):
        parse_repository(url)


@pytest.mark.parametrize(
    ("url", "insecure", "http"),
    [
        ("oci://ghcr.io/a", False, False),
        ("oci://ghcr.io/a", True, True),
        ("oci://localhost:5000/a", False, True),
        ("oci://127.0.0.1:5000/a", False, True),
        ("oci://10.1.2.3:5000/a", False, True),
        ("oci://192.168.1.1/a", False, True),
        ("oci://192.0.2.2:5000/a", False, False),  # documentation range: not RFC 1918
        ("oci://8.8.8.8/a", False, False),
    ],
)
def test_plain_http_is_tried_only_where_go_containerregistry_tries_it(
    url: str, insecure: bool, http: bool
) -> None:
    assert parse_repository(url, insecure=insecure).may_use_http() is http


# -- credentials --------------------------------------------------------------------------------


def _pull_secret(auths: dict[str, object]) -> tuple[str, dict[str, bytes]]:
    return ("ns/pull", {".dockerconfigjson": json.dumps({"auths": auths}).encode()})


def test_docker_config_auth_field_and_username_password() -> None:
    encoded = base64.b64encode(b"alice:pa:ss").decode()
    keyring = keyring_from_secrets(
        [
            _pull_secret(
                {
                    "ghcr.io": {"auth": encoded},
                    "https://registry.example.com:5000/v2/": {"username": "bob", "password": "x"},
                }
            )
        ]
    )
    creds = keyring.lookup(parse_repository("oci://ghcr.io/org/app"))
    assert creds is not None and (creds.username, creds.password) == ("alice", "pa:ss")
    creds = keyring.lookup(parse_repository("oci://registry.example.com:5000/app"))
    assert creds is not None and (creds.username, creds.password) == ("bob", "x")
    assert keyring.lookup(parse_repository("oci://registry.example.com/app")) is None
    assert "x" not in repr(creds) and "pa:ss" not in repr(keyring)


def test_docker_config_most_specific_key_wins_and_wildcards_match_one_label() -> None:
    keyring = keyring_from_secrets(
        [
            _pull_secret(
                {
                    "*.example.com": {"username": "wild", "password": "1"},
                    "eu.example.com/team": {"username": "team", "password": "2"},
                    "https://index.docker.io/v1/": {"username": "hub", "password": "3"},
                }
            )
        ]
    )

    def user(url: str) -> str | None:
        creds = keyring.lookup(parse_repository(url))
        return None if creds is None else creds.username

    assert user("oci://eu.example.com/team/app") == "team"
    assert user("oci://eu.example.com/other/app") == "wild"
    assert user("oci://a.b.example.com/app") is None
    assert user("oci://stefanprodan/podinfo") == "hub"


def test_legacy_dockercfg_and_other_secret_types() -> None:
    legacy = ("ns/old", {".dockercfg": json.dumps({"quay.io": {"auth": "dTpw"}}).encode()})
    opaque = ("ns/opaque", {"username": b"u", "password": b"p"})
    keyring = keyring_from_secrets([legacy, opaque])
    creds = keyring.lookup(parse_repository("oci://quay.io/a/b"))
    assert creds is not None and (creds.username, creds.password) == ("u", "p")
    assert len(keyring.entries) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "secret 'ns/pull': the docker config is not valid JSON"),
        (b'{"auths": {"h": {"auth": "%%%"}}}', "the auth field for 'h' is not valid base64"),
        (
            b'{"auths": {"h": {"auth": "' + base64.b64encode(b"nocolon") + b'"}}}',
            "must be base64 of 'username:password'",
        ),
    ],
)
def test_broken_docker_configs_are_named_not_shown(data: bytes, message: str) -> None:
    with pytest.raises(CredentialsError, match=message) as e:
        keyring_from_secrets([("ns/pull", {".dockerconfigjson": data})])
    assert "nocolon" not in str(e.value)


# -- challenges ----------------------------------------------------------------------------------


def test_bearer_challenge_parameters() -> None:
    (c,) = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.params["service"] == "registry.docker.io"
    assert c.params["scope"] == "repository:library/nginx:pull,push"


def test_several_challenges_quoted_escapes_and_tokens() -> None:
    challenges = parse_challenges(
        'Basic realm="a \\"quoted\\" realm", Bearer realm=https://t.example/x, error=invalid_token'
    )
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == 'a "quoted" realm'
    assert challenges[1].params == {"realm": "https://t.example/x", "error": "invalid_token"}
    assert parse_challenges("") == []


# -- tags ----------------------------------------------------------------------------------------

TAGS = ["latest", "1.0.0", "v1.1.0", "1.2.0-rc.1", "2.0.0", "1.1", "01.0.0", "1.1.5-dev.3"]


@pytest.mark.parametrize(
    ("expression", "semver_filter", "expected"),
    [
        (">=1.0.0 <2.0.0", "", "v1.1.0"),
        ("1.x", "", "v1.1.0"),
        (">=1.0.0-0 <2.0.0-0", "", "1.2.0-rc.1"),
        ("*", "", "2.0.0"),
        (">=0.0.0-0", ".*-dev.*", "1.1.5-dev.3"),
        (">=1.0.0", "^v", "v1.1.0"),
    ],
)
def test_semver_selection(expression: str, semver_filter: str, expected: str) -> None:
    assert select_semver(TAGS, expression, semver_filter=semver_filter) == expected


def test_semver_errors_are_flux_s() -> None:
    with pytest.raises(TagSelectionError, match=r"^no match found for semver: >=3\.0\.0$"):
        select_semver(TAGS, ">=3.0.0")
    with pytest.raises(TagSelectionError, match=r"^semver 'nope' parse error: "):
        select_semver(TAGS, "nope")
    with pytest.raises(TagSelectionError, match="error parsing regexp"):
        filter_tags(TAGS, "(")
    # Go's RE2 rules, not Python's: no look-arounds.
    with pytest.raises(TagSelectionError):
        filter_tags(TAGS, "(?=1)")


def test_helm_chart_tags_map_underscore_to_plus() -> None:
    tags = ["1.0.0_build.1", "1.0.0_build.2", "0.9.0"]
    assert select_semver(tags, ">=1.0.0", media_type=HELM_CHART_CONTENT) == "1.0.0_build.1"
    assert select_semver(tags, ">=0.1.0") == "0.9.0"  # `_` is not semver otherwise


def test_revisions() -> None:
    assert revision("6.5.0", DIGEST) == f"6.5.0@{DIGEST}"
    assert revision(None, DIGEST) == DIGEST
    assert digest_of_revision(f"latest@{DIGEST}") == DIGEST
    assert digest_of_revision(DIGEST) == DIGEST


# -- manifests and layers ------------------------------------------------------------------------


def _layer(media_type: str, n: int) -> dict[str, object]:
    return {"mediaType": media_type, "digest": f"sha256:{n:064x}", "size": n}


def test_flux_manifest_and_layer_selection() -> None:
    raw = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.cncf.flux.config.v1+json",
            "digest": DIGEST,
            "size": 2,
        },
        "layers": [
            _layer("application/x-first", 1),
            _layer(FLUX_CONTENT, 2),
            _layer(FLUX_CONTENT, 3),
        ],
        "annotations": {"org.opencontainers.image.revision": "main@sha1:abc"},
    }
    found = parse(json.dumps(raw).encode(), DIGEST)
    assert isinstance(found, Manifest)
    assert found.annotations == {"org.opencontainers.image.revision": "main@sha1:abc"}
    assert select_layer(found).size == 1
    assert select_layer(found, FLUX_CONTENT).size == 2
    with pytest.raises(
        OCIError, match=r"^failed to find layer with media type 'application/none' in artifact$"
    ):
        select_layer(found, "application/none")
    empty = parse(json.dumps({**raw, "layers": []}).encode(), DIGEST)
    assert isinstance(empty, Manifest)
    with pytest.raises(OCIError, match=r"^no layers found in artifact$"):
        select_layer(empty)


def test_docker_manifest_and_index() -> None:
    docker = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": DIGEST, "size": 1},
        "layers": [_layer("application/vnd.docker.image.rootfs.diff.tar.gzip", 7)],
    }
    assert isinstance(parse(json.dumps(docker).encode(), DIGEST), Manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                **_layer("application/vnd.oci.image.manifest.v1+json", 1),
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                **_layer("application/vnd.oci.image.manifest.v1+json", 2),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    found = parse(json.dumps(index).encode(), DIGEST)
    assert isinstance(found, Index)
    assert pick_platform(found).size == 2


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"not json",
        b'{"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [{"size": 1}]}',
        b'{"mediaType": "text/plain"}',
        b'{"layers": [{"digest": "sha256:00", "size": -1}]}',
    ],
)
def test_malformed_manifests_are_errors(body: bytes) -> None:
    with pytest.raises(OCIError):
        parse(body, DIGEST)


# -- registry errors and pagination --------------------------------------------------------------


def test_registry_errors_read_as_go_containerregistry_s() -> None:
    body = json.dumps(
        {
            "errors": [
                {
                    "code": "UNAUTHORIZED",
                    "message": "authentication required",
                    "detail": [
                        {"Type": "repository", "Name": "a/b", "Action": "pull", "Class": ""}
                    ],
                }
            ]
        }
    ).encode()
    e = registry_error("GET", "https://r/v2/a/b/manifests/1?x=secret", 401, body)
    assert str(e) == (
        "GET https://r/v2/a/b/manifests/1: UNAUTHORIZED: authentication required; "
        "[map[Action:pull Class: Name:a/b Type:repository]]"
    )
    assert e.unauthorized and e.codes == ("UNAUTHORIZED",)
    assert str(registry_error("HEAD", "https://r/v2/x", 404, b"")) == (
        "HEAD https://r/v2/x: unexpected status code 404 Not Found "
        "(HEAD responses have no body, use GET for details)"
    )


def test_tag_pagination_links() -> None:
    current = "https://r.example/v2/a/tags/list?n=1000"
    assert _next_link(current, '</v2/a/tags/list?last=x&n=1000>; rel="next"') == (
        "https://r.example/v2/a/tags/list?last=x&n=1000"
    )
    assert _next_link(current, "") is None
    # Pagination never leaves the registry.
    assert _next_link(current, '<https://evil.example/v2/a/tags/list>; rel="next"') is None


# -- reconciler rules ----------------------------------------------------------------------------


def _repo(**spec: object) -> OCIRepository:
    return OCIRepository.from_dict(
        {"metadata": {"name": "a", "namespace": "b"}, "spec": {"url": "oci://r/a", **spec}}
    )


def test_content_config_changes() -> None:
    obj = _repo()
    assert not content_config_changed(obj)
    obj = _repo(ignore="*.md")
    assert content_config_changed(obj)
    obj.status.observed_ignore = "*.md"
    assert not content_config_changed(obj)
    obj = _repo(layerSelector={"mediaType": FLUX_CONTENT, "operation": "copy"})
    assert obj.layer_operation == "copy" and obj.layer_media_type == FLUX_CONTENT
    assert content_config_changed(obj)
    obj.status.observed_layer_selector = OCILayerSelector(media_type=FLUX_CONTENT, operation="copy")
    assert not content_config_changed(obj)
    assert _repo().layer_operation == "extract"


def test_new_artifact_event() -> None:
    artifact = Artifact(
        path="p",
        url="u",
        revision=f"1.0.0@{DIGEST}",
        digest=DIGEST,
        last_update_time="t",
        metadata={
            "org.opencontainers.image.source": "https://github.com/org/app",
            "org.opencontainers.image.revision": "main@sha1:abc",
        },
    )
    message, annotations = new_artifact_message("oci://r/a", artifact)
    assert message == (
        f"stored artifact with revision '1.0.0@{DIGEST}' from 'oci://r/a', origin source "
        "'https://github.com/org/app', origin revision 'main@sha1:abc'"
    )
    assert annotations["source.toolkit.fluxcd.io/originRevision"] == "main@sha1:abc"
    bare = Artifact(path="p", url="u", revision=DIGEST, digest=DIGEST, last_update_time="t")
    message, annotations = new_artifact_message("oci://r/a", bare)
    assert message == f"stored artifact with revision '{DIGEST}' from 'oci://r/a'"
    assert "source.toolkit.fluxcd.io/originRevision" not in annotations


@pytest.mark.parametrize(
    ("realm", "registry", "plain_http", "error"),
    [
        ("https://auth.docker.io/token", "index.docker.io", False, ""),
        ("https://127.0.0.1:5000/token", "127.0.0.1:5000", False, ""),  # the registry itself
        ("https://localhost:9999/token", "127.0.0.1:5000", False, ""),  # a name, not an IP
        ("https://127.0.0.1:9999/token", "127.0.0.1:5000", False, "private or link-local"),
        ("https://169.254.169.254/token", "ghcr.io", False, "private or link-local"),
        ("https://10.0.0.1/token", "ghcr.io", False, "private or link-local"),
        ("http://auth.example.com/token", "ghcr.io", False, "use https"),
        ("http://auth.example.com/token", "127.0.0.1:5000", True, ""),
        ("ftp://auth.example.com/token", "ghcr.io", False, "must be https"),
    ],
)
def test_token_realms_are_checked_as_go_containerregistry_checks_them(
    realm: str, registry: str, plain_http: bool, error: str
) -> None:
    if not error:
        validate_realm(realm, registry, plain_http)
        return
    with pytest.raises(OCIError, match=error):
        validate_realm(realm, registry, plain_http)


# -- cosign --------------------------------------------------------------------------------------


def test_cosign_signature_tags_keys_and_fingerprints() -> None:
    assert cosign.signature_tag(DIGEST) == "sha256-" + "0" * 64 + ".sig"
    secret = {"b.pub": b"KEY-B", "a.pub": b"KEY-A", "notes.txt": b"x"}
    assert cosign.public_keys(secret) == [b"KEY-A", b"KEY-B"]
    renamed = {"x.pub": b"KEY-B", "y.pub": b"KEY-A"}
    assert cosign.fingerprint("cosign", secret) == cosign.fingerprint("cosign", renamed)
    assert cosign.fingerprint("cosign", secret) != cosign.fingerprint("cosign", {"a.pub": b"K"})
    assert cosign.fingerprint("cosign", None).startswith("sha256:")


def _payload(digest: str) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "r/a"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()


def test_cosign_payloads_and_signatures() -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    payload = _payload(DIGEST)
    assert cosign.payload_names(payload, DIGEST)
    assert not cosign.payload_names(_payload("sha256:" + "1" * 64), DIGEST)
    assert not cosign.payload_names(b"{}", DIGEST)

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = cosign.load_public_key(pem)
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    assert cosign.signature_valid(public, signature, payload)
    assert not cosign.signature_valid(public, signature, payload + b" ")
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_public = cosign.load_public_key(
        ed.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert cosign.signature_valid(ed_public, ed.sign(payload), payload)
    assert not cosign.signature_valid(ed_public, signature, payload)
    with pytest.raises(cosign.VerificationError, match="invalid public key"):
        cosign.load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
