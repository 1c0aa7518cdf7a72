"""The test plane's generated inputs: wrapper modules, certificates, kubeconfigs."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testenv import pki, versions
from testenv.build import Wrapper
from testenv.plane import kubeconfig_yaml
from tidal.kube.client import load_config


def test_wrapper_module_replaces_staging_modules_with_their_releases() -> None:
    w = Wrapper(
        name="kubernetes",
        require={"k8s.io/kubernetes": "v1.37.2"},
        replace={"k8s.io/api": "v0.37.2", "k8s.io/client-go": "v0.37.2"},
        packages={"kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver"},
    )
    mod = w.go_mod()
    assert f"go {versions.GO_DIRECTIVE}" in mod
    assert "\tk8s.io/kubernetes v1.37.2" in mod
    assert "\tk8s.io/api => k8s.io/api v0.37.2" in mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.2" in mod
    assert '_ "k8s.io/kubernetes/cmd/kube-apiserver"' in w.tools_go()
    assert w.tools_go().startswith("//go:build tools")


def test_issued_certificates_chain_to_the_plane_ca() -> None:
    ca = pki.CertificateAuthority()
    server = ca.issue("kube-apiserver", server=True, dns_names=("localhost",), ips=("127.0.0.1",))
    admin = ca.issue("tidal-admin", organizations=("system:masters",), client=True)
    ca_cert = x509.load_pem_x509_certificate(ca.pair.cert_pem)
    for pair in (server, admin):
        cert = x509.load_pem_x509_certificate(pair.cert_pem)
        cert.verify_directly_issued_by(ca_cert)
    srv = x509.load_pem_x509_certificate(server.cert_pem)
    sans = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    adm = x509.load_pem_x509_certificate(admin.cert_pem)
    orgs = adm.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]


def test_two_planes_never_share_a_ca() -> None:
    a, b = pki.CertificateAuthority(), pki.CertificateAuthority()
    assert a.pair.cert_pem != b.pair.cert_pem


def test_service_account_keys_are_a_matching_pair() -> None:
    from cryptography.hazmat.primitives import serialization

    private_pem, public_pem = pki.service_account_keys()
    private = serialization.load_pem_private_key(private_pem, password=None)
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert private.public_key().public_numbers() == public.public_numbers()


def test_kubeconfig_is_readable_by_tidal(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority()
    path = tmp_path / "kubeconfig"
    path.write_text(
        kubeconfig_yaml("https://127.0.0.1:6443", ca.pair.cert_pem, ca.issue("u", client=True), "u")
    )
    config = load_config(path)
    assert config.cluster.server == "https://127.0.0.1:6443"
    assert config.context_name == "testenv"


def test_a_recycled_pid_is_not_mistaken_for_ours() -> None:
    import os
    from pathlib import Path

    from testenv.plane import Process, _alive

    me = os.getpid()
    argv0 = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()
    assert _alive(Process("self", me, argv0))
    assert not _alive(Process("etcd", me, "/somewhere/else/etcd"))
    assert not _alive(Process("gone", 2**22 + 12345, "/bin/true"))
