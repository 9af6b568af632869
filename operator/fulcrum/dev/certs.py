"""TLS material of a dev cluster: one CA, serving and client certificates, the service-account key.

Pure functions return PEM bytes; :func:`write_pki` is the only one touching the disk.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(common_name: str = "fulcrum-dev-ca", now: dt.datetime | None = None) -> KeyPair:
    now = now or dt.datetime.now(dt.UTC)
    key = _new_key()
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    organizations: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    now: dt.datetime | None = None,
) -> KeyPair:
    """A leaf certificate signed by ``ca`` for a server, a client, or both."""
    if not (server or client):
        raise ValueError("a certificate must be for a server, a client or both")
    now = now or dt.datetime.now(dt.UTC)
    key = _new_key()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def service_account_key() -> bytes:
    """PEM of the RSA key that signs service-account tokens (API server and controller-manager)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


# client certificates: (file stem, common name, organizations)
CLIENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "fulcrum-dev-admin", ("system:masters",)),
    ("controller-manager", "system:kube-controller-manager", ()),
    ("scheduler", "system:kube-scheduler", ()),
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
    ("node-local-0", "system:node:local-0", ("system:nodes",)),
    ("kube-proxy", "system:kube-proxy", ()),  # bound to system:node-proxier by the bootstrap RBAC
    ("front-proxy-client", "front-proxy-client", ()),
)

APISERVER_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def load_ca(pki: Path) -> KeyPair:
    cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{pki / 'ca.key'}: unsupported key type")
    return KeyPair(cert, key)


def leaf_specs(apiserver_ips: tuple[str, ...], kubelet_ips: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """``file stem -> issue() keyword arguments`` of every leaf certificate."""
    specs: dict[str, dict[str, object]] = {
        "apiserver": {
            "common_name": "kube-apiserver",
            "dns_names": APISERVER_DNS,
            "ip_addresses": apiserver_ips,
            "server": True,
        },
        # etcd's gRPC gateway dials etcd itself with the serving certificate: it needs clientAuth too
        "etcd-server": {
            "common_name": "etcd",
            "dns_names": ("localhost",),
            "ip_addresses": ("127.0.0.1",),
            "server": True,
            "client": True,
        },
        "etcd-client": {"common_name": "kube-apiserver-etcd-client", "client": True},
        "kubelet-local-0": {
            "common_name": "local-0",
            "dns_names": ("localhost", "local-0"),
            "ip_addresses": kubelet_ips,
            "server": True,
        },
    }
    for stem, common_name, orgs in CLIENTS:
        specs[stem] = {"common_name": common_name, "organizations": orgs, "client": True}
    return specs


def write_pki(pki: Path, *, apiserver_ips: tuple[str, ...], kubelet_ips: tuple[str, ...]) -> list[str]:
    """Create what is missing or stale under ``pki`` (the CA and the SA key are kept); returns the stems written."""
    pki.mkdir(parents=True, exist_ok=True)
    specs = leaf_specs(apiserver_ips, kubelet_ips)
    manifest_path = pki / "manifest.json"
    try:
        old = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        old = {}
    written: list[str] = []
    files: dict[str, bytes] = {}
    new_ca = not ((pki / "ca.crt").exists() and (pki / "ca.key").exists())
    if new_ca:
        ca = make_ca()
        files.update({"ca.crt": ca.cert_pem, "ca.key": ca.key_pem})
    else:
        ca = load_ca(pki)
    for stem, spec in specs.items():
        wanted = json.dumps(spec, sort_keys=True, default=list)
        if new_ca or old.get(stem) != wanted or not (pki / f"{stem}.crt").exists():
            pair = issue(ca, **spec)  # type: ignore[arg-type]
            files[f"{stem}.crt"], files[f"{stem}.key"] = pair.cert_pem, pair.key_pem
            old[stem] = wanted
            written.append(stem)
    if not (pki / "sa.key").exists():
        files["sa.key"] = service_account_key()
    for name, data in files.items():
        path = pki / name
        path.write_bytes(data)
        path.chmod(0o600)
    manifest_path.write_text(json.dumps(old, indent=1, sort_keys=True))
    return written
