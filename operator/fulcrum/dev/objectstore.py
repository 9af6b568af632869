"""The dev cluster's object store: SeaweedFS (``weed server`` with its S3 gateway), built from the Go module in
``hack/devcluster/seaweedfs`` like the control plane.

``fulcrum dev up`` starts it after the control plane and the node, listening on one address that both host
processes (the operator, tests, ``fulcrum build``) and pods on the node reach: the cluster's host address (the
host's end of the node's link, an address the cluster itself created). Three access keys are generated once per cluster
home and kept in ``objectstore.json`` (mode 0600):

- ``admin``: everything (seeding, tests);
- ``writer``: read and write ``fulcrum-models`` (build Jobs, the operator's garbage collection), read
  ``fulcrum-examples`` (model sources);
- ``reader``: read ``fulcrum-models`` only (serving pods).

Buckets ``fulcrum-models`` (repositories) and ``fulcrum-examples`` (the examples' model and validation files,
uploaded from this checkout) are created at every ``up``. SeaweedFS's telemetry is switched off and its extra
listeners (Iceberg, Lance) are disabled: it talks to nothing but its own ports.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from fulcrum.dev import health, procs
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.paths import DevHome

NAME = "objectstore"
MODELS_BUCKET = "fulcrum-models"
EXAMPLES_BUCKET = "fulcrum-examples"
REGION = "us-east-1"
EXAMPLE_FILES = {"ctr-ranker": ("model.pt2", "validation.npz")}
PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")

Say = Callable[[str], None]


class ObjectStoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class AccessKey:
    access_key: str
    secret_key: str

    @classmethod
    def generate(cls, name: str) -> AccessKey:
        return cls(f"fulcrum{name}{secrets.token_hex(6)}".upper()[:20], secrets.token_urlsafe(30))

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


@dataclass(frozen=True)
class ObjectStoreConfig:
    """Saved as ``<home>/objectstore.json``: later commands and tests find the store and its keys there."""

    address: str
    ports: dict[str, int]
    admin: AccessKey
    writer: AccessKey
    reader: AccessKey
    region: str = REGION

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.ports['s3']}"

    def env(self, who: str = "admin") -> dict[str, str]:
        """AWS_* variables for a client acting as ``who`` (admin, writer or reader)."""
        key: AccessKey = getattr(self, who)
        return {**key.env(), "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": self.region}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ObjectStoreConfig:
        data = json.loads(text)
        return cls(
            address=data["address"],
            ports={k: int(v) for k, v in data["ports"].items()},
            admin=AccessKey(**data["admin"]),
            writer=AccessKey(**data["writer"]),
            reader=AccessKey(**data["reader"]),
            region=data.get("region", REGION),
        )


def state_dir(home: DevHome) -> Path:
    return home.root / NAME


def config_path(home: DevHome) -> Path:
    return home.root / f"{NAME}.json"


def load(home: DevHome) -> ObjectStoreConfig | None:
    try:
        return ObjectStoreConfig.from_json(config_path(home).read_text())
    except FileNotFoundError:
        return None


def service_address(cfg: ClusterConfig) -> str:
    """Where host-side services listen so that pods reach them too: the cluster's host address (pure)."""
    return cfg.host_address


def identities(store: ObjectStoreConfig) -> dict[str, object]:
    """SeaweedFS's ``-s3.config`` document: the three identities and what each may do (pure)."""

    def ident(name: str, key: AccessKey, actions: list[str]) -> dict[str, object]:
        credentials = [{"accessKey": key.access_key, "secretKey": key.secret_key}]
        return {"name": name, "credentials": credentials, "actions": actions}

    models, examples = MODELS_BUCKET, EXAMPLES_BUCKET
    return {
        "identities": [
            ident("admin", store.admin, ["Admin", "Read", "Write", "List", "Tagging"]),
            ident(
                "writer",
                store.writer,
                [f"Read:{models}", f"Write:{models}", f"List:{models}", f"Read:{examples}", f"List:{examples}"],
            ),
            # serving pods and build Jobs: builds read their sources with it and write through upload forms
            ident("reader", store.reader, [f"Read:{models}", f"List:{models}", f"Read:{examples}", f"List:{examples}"]),
        ]
    }


def argv(weed: Path, home: DevHome, store: ObjectStoreConfig) -> list[str]:
    """The ``weed server`` command line (pure)."""
    state, p = state_dir(home), store.ports
    return [
        str(weed),
        "-logtostderr=true",
        "server",
        f"-dir={state / 'data'}",
        f"-ip={store.address}",
        f"-ip.bind={store.address}",
        f"-master.port={p['master']}",
        f"-master.port.grpc={p['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=256",
        "-master.defaultReplication=000",
        f"-volume.port={p['volume']}",
        f"-volume.port.grpc={p['volume_grpc']}",
        "-volume.max=64",
        "-filer",
        f"-filer.port={p['filer']}",
        f"-filer.port.grpc={p['filer_grpc']}",
        f"-filer.localSocket={state / 'filer.sock'}",
        "-s3",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={state / 's3.sock'}",
        f"-s3.config={state / 'identities.json'}",
        "-s3.autoCreateBucket=false",
    ]


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def choose_ports(
    address: str,
    previous: dict[str, int] | None = None,
    low: int = 20000,
    high: int = 32000,
    *,
    reserved: Collection[int] = (),
) -> dict[str, int]:
    """The previous ports when all are still free, else free ones below the ephemeral range (32768+).

    ``reserved``: the cluster's own fixed ports (``ClusterConfig.ports``: API server, Prometheus, ...), never
    taken even while free (a component may be down for a restart)."""

    def usable(ports: Collection[int]) -> bool:
        return not set(ports) & set(reserved) and all(_bindable(address, p) for p in ports)

    if previous and set(previous) == set(PORT_NAMES) and usable(previous.values()):
        return dict(previous)
    rng = secrets.SystemRandom()
    for _ in range(200):
        base = rng.randrange(low, high - len(PORT_NAMES), 10)
        ports = dict(zip(PORT_NAMES, range(base, base + len(PORT_NAMES)), strict=True))
        if usable(ports.values()):
            return ports
    raise ObjectStoreError(f"no block of {len(PORT_NAMES)} free ports on {address}")


def weed_binary(bin_dir: Path) -> Path:
    return bin_dir / "weed"


def _s3_ready(store: ObjectStoreConfig) -> bool:
    from fulcrum.storage import S3Client, S3Config, S3Error  # noqa: PLC0415

    client = S3Client(S3Config.from_environment(store.env("admin")), timeout=5, attempts=1)
    try:
        client.list_prefixes(MODELS_BUCKET)
    except S3Error as error:
        return error.code == "NoSuchBucket"
    finally:
        client.close()
    return True


def up(
    home: DevHome, cfg: ClusterConfig, bin_dir: Path, *, env: dict[str, str], say: Say, timeout: float = 120.0
) -> ObjectStoreConfig:
    """Start the cluster's object store on its service address (see :func:`service_address`); idempotent."""
    return start(home, service_address(cfg), bin_dir, env=env, say=say, timeout=timeout, reserved=cfg.ports.all())


def start(
    home: DevHome,
    address: str,
    bin_dir: Path,
    *,
    env: dict[str, str],
    say: Say,
    timeout: float = 120.0,
    reserved: Collection[int] = (),
) -> ObjectStoreConfig:
    """Start SeaweedFS on ``address`` unless it runs, create the buckets and upload the examples; idempotent."""
    weed = weed_binary(bin_dir)
    if not weed.exists():
        raise ObjectStoreError(f"{weed} is missing: run `fulcrum dev build`")
    previous = load(home)
    record = procs.load(home.run, NAME)
    if previous is not None and previous.address == address and procs.running(record):
        store = previous
    else:
        if record is not None:
            procs.stop(record)
        store = ObjectStoreConfig(
            address=address,
            ports=choose_ports(
                address, previous.ports if previous and previous.address == address else None, reserved=reserved
            ),
            admin=previous.admin if previous else AccessKey.generate("admin"),
            writer=previous.writer if previous else AccessKey.generate("writer"),
            reader=previous.reader if previous else AccessKey.generate("reader"),
        )
        state = state_dir(home)
        (state / "data").mkdir(parents=True, exist_ok=True)
        home.logs.mkdir(parents=True, exist_ok=True)
        home.run.mkdir(parents=True, exist_ok=True)
        path = config_path(home)
        path.write_text(store.to_json())
        path.chmod(0o600)
        identities_file = state / "identities.json"
        identities_file.write_text(json.dumps(identities(store), indent=2))
        identities_file.chmod(0o600)
        say(f"starting {NAME} (SeaweedFS S3 on {store.endpoint})")
        log = home.logs / f"{NAME}.log"
        record = procs.start(home.run, NAME, argv(weed, home, store), log=log, env=env, cwd=state)
    deadline = time.monotonic() + timeout
    while not (health.port_open(store.ports["s3"], host=store.address) and _s3_ready(store)):
        if record is not None and not procs.running(record):
            raise ObjectStoreError(f"{NAME} exited while starting; see {home.logs / f'{NAME}.log'}")
        if time.monotonic() > deadline:
            raise ObjectStoreError(f"{NAME} not ready after {timeout:.0f}s; see {home.logs / f'{NAME}.log'}")
        time.sleep(0.3)
    seed(store, say)
    return store


def stop(home: DevHome) -> bool:
    """Stop the store if it runs (its data stays); whether it was running."""
    record = procs.load(home.run, NAME)
    was_running = procs.running(record)
    if record is not None:
        procs.stop(record)
        procs.forget(home.run, NAME)
    return was_running


def examples_root() -> Path | None:
    root = Path(__file__).resolve().parents[3] / "examples"
    return root if root.is_dir() else None


def seed(store: ObjectStoreConfig, say: Say) -> None:
    """Create the buckets and upload the examples' files (skipped when unchanged)."""
    from fulcrum.storage import S3Client, S3Config  # noqa: PLC0415
    from fulcrum.storage.repository import sha256_file  # noqa: PLC0415

    client = S3Client(S3Config.from_environment(store.env("admin")))
    try:
        for bucket in (MODELS_BUCKET, EXAMPLES_BUCKET):
            client.create_bucket(bucket)
        root = examples_root()
        if root is None:
            say("no examples/ beside this installation: the examples bucket stays empty")
            return
        for example, names in EXAMPLE_FILES.items():
            for name in names:
                path = root / example / name
                if not path.is_file():
                    continue
                key = f"{example}/{name}"
                head = client.head_object(EXAMPLES_BUCKET, key)
                if head is not None and head.size == path.stat().st_size:
                    digest = client.get_object(EXAMPLES_BUCKET, f"{key}.sha256", missing_ok=True)
                    if digest is not None and digest.decode().strip() == sha256_file(path)[1]:
                        continue
                client.upload_file(EXAMPLES_BUCKET, key, path)
                client.put_object(EXAMPLES_BUCKET, f"{key}.sha256", f"{sha256_file(path)[1]}\n".encode())
    finally:
        client.close()


def environment_lines(store: ObjectStoreConfig, who: str = "admin", *, shell: bool = True) -> list[str]:
    """``export NAME=value`` lines for a shell, or ``NAME=value`` lines (an env file: ``kubectl create secret
    generic --from-env-file``)."""
    prefix = "export " if shell else ""
    return [f"{prefix}{k}={v}" for k, v in sorted(store.env(who).items())]


REPOSITORY = f"s3://{MODELS_BUCKET}/repositories"
BUILD_SECRET = "fulcrum-repository"  # noqa: S105 - the name of a Secret, not a secret
SERVING_SECRET = "fulcrum-repository-read"  # noqa: S105
DEFAULT_NAMESPACE = "default"


def secret(store: ObjectStoreConfig, who: str, name: str, namespace: str) -> dict[str, object]:
    """A Secret with ``who``'s keys for pods (the endpoint and region come from the operator's settings)."""
    key: AccessKey = getattr(store, who)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "fulcrum-dev"}},
        "type": "Opaque",
        "stringData": key.env(),
    }


def chart_values(store: ObjectStoreConfig) -> dict[str, object]:
    """Helm values that point the chart at this store (``fulcrum dev chart-values``)."""
    return {
        "repository": {
            "kind": "s3",
            "s3": {
                "uri": REPOSITORY,
                "endpoint": store.endpoint,
                "region": store.region,
                "createSecret": True,
                "accessKeyId": store.writer.access_key,
                "secretAccessKey": store.writer.secret_key,
                "servingSecretName": SERVING_SECRET,
                "servingAccessKeyId": store.reader.access_key,
                "servingSecretAccessKey": store.reader.secret_key,
            },
        },
        "build": {"target": "local"},
    }


def operator_flags(store: ObjectStoreConfig) -> list[str]:
    """``fulcrum run`` flags for an operator running beside the cluster (tests, the quickstart)."""
    return [
        "--repository", REPOSITORY, "--s3-endpoint", store.endpoint, "--s3-region", store.region,
        "--repository-secret", BUILD_SECRET, "--serving-secret", SERVING_SECRET,
    ]  # fmt: skip


def remove_state(home: DevHome) -> None:
    """Forget the stored objects (``fulcrum dev down`` without ``--keep-data``); the keys stay."""
    import shutil  # noqa: PLC0415

    shutil.rmtree(state_dir(home) / "data", ignore_errors=True)


def running(home: DevHome) -> bool:
    return procs.running(procs.load(home.run, NAME))
