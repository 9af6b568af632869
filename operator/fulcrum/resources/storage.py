"""Where a ModelDeployment's repository lives, and the pod pieces that reach it. Pure.

- Build Jobs: the *fetch* and *publish* containers get the storage credentials (``envFrom`` the Secret; only
  the read-only one when the operator signs the build an upload form, ``signs_uploads``) or the repository
  volume; the *build* container, which runs the model's code, gets neither.
- Serving pods: object storage is downloaded by an init container (``fulcrum storage pull``, the pattern of
  KServe's storage initializer) into an emptyDir that Triton mounts read-only; a claim or node directory is
  mounted read-only at the key's own sub-directory. Triton itself never holds a credential.
"""

from __future__ import annotations

from fulcrum.api import ModelDeploymentSpec
from fulcrum.resources.common import SCRATCH_DIR, Manifest, container_security_context
from fulcrum.resources.settings import MODELS_MOUNT, OperatorSettings, RepositoryStorage

PVC_SOURCES_MOUNT = "/mnt/pvc"
REPOSITORY_VOLUME = "models"


def storage_for(spec: ModelDeploymentSpec, settings: OperatorSettings) -> RepositoryStorage:
    """The ModelDeployment's own ``spec.repository``, else the operator's default."""
    repository = spec.repository
    if repository is None:
        return settings.storage
    if repository.pvc is not None:
        return RepositoryStorage("pvc", repository.pvc.claim_name)
    assert repository.uri is not None
    secret = repository.secret_ref.name if repository.secret_ref is not None else None
    # the team's own store: endpoint and region come from its Secret (AWS_ENDPOINT_URL, AWS_REGION), if any
    return RepositoryStorage("s3", repository.uri.rstrip("/"), secret=secret, serving_secret=secret)


def pvc_source_claims(spec: ModelDeploymentSpec) -> list[str]:
    """Claims named by ``pvc://`` model or validation-data URIs, in order."""
    uris = [spec.model.source.uri]
    if spec.accuracy.validation_data is not None:
        uris.append(spec.accuracy.validation_data.uri)
    claims = [u.removeprefix("pvc://").split("/", 1)[0] for u in uris if u.startswith("pvc://")]
    return list(dict.fromkeys(c for c in claims if c))


def builds_in_own_namespace(spec: ModelDeploymentSpec) -> bool:
    """A spec that names objects of its own namespace (a Secret or claim in ``spec.repository``, a claim in a
    ``pvc://`` source) is built in that namespace: pods can only use objects of their own namespace."""
    return spec.repository is not None or bool(pvc_source_claims(spec))


def build_namespace(spec: ModelDeploymentSpec, namespace: str, settings: OperatorSettings) -> str:
    return namespace if builds_in_own_namespace(spec) else settings.build_namespace


def signs_uploads(spec: ModelDeploymentSpec, settings: OperatorSettings) -> bool:
    """Whether a build publishes through an upload form the operator signs (``fulcrum.storage.form``) rather
    than with write keys: every build into the default object storage, in the build namespace or, for a
    ``pvc://`` source, in the ModelDeployment's own (the form's Secret goes where the Job runs), so no namespace
    but the operator's ever holds the platform's write keys. A ``spec.repository`` with its own Secret is the
    team's own bucket and keys."""
    return settings.storage.kind == "s3" and spec.repository is None


def env(storage: RepositoryStorage, secret: str | None) -> tuple[list[Manifest], list[Manifest]]:
    """(env, envFrom) of a container that talks to object storage with ``secret``'s credentials."""
    if storage.kind != "s3":
        return [], []
    variables = [{"name": "PYTHONNOUSERSITE", "value": "1"}]
    if storage.endpoint:
        variables.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint})
    if storage.region:
        variables.append({"name": "AWS_REGION", "value": storage.region})
    return variables, ([{"secretRef": {"name": secret}}] if secret else [])


def volume(
    storage: RepositoryStorage, *, read_only: bool, sub_path: str | None = None
) -> tuple[Manifest, Manifest] | None:
    """(volume, volumeMount) of a claim or node directory at MODELS_MOUNT (``sub_path``: one key only)."""
    if storage.kind == "s3":
        return None
    if storage.kind == "hostPath":
        source: Manifest = {"hostPath": {"path": storage.location, "type": "DirectoryOrCreate"}}
    else:
        source = {"persistentVolumeClaim": {"claimName": storage.location, "readOnly": read_only}}
    mount: Manifest = {"name": REPOSITORY_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": read_only}
    if sub_path is not None:
        mount = {**mount, "mountPath": f"{MODELS_MOUNT}/{sub_path}", "subPath": sub_path}
    return {"name": REPOSITORY_VOLUME, **source}, mount


def repository_key(repository: str) -> str:
    """The content key of a published repository (its last path component)."""
    return repository.rstrip("/").rsplit("/", 1)[-1]


def serving_repository(
    storage: RepositoryStorage, repository: str, settings: OperatorSettings
) -> tuple[str, list[Manifest], list[Manifest], list[Manifest]]:
    """(Triton's --model-repository, volumes, Triton's volumeMounts, init containers) of a published key."""
    key = repository_key(repository)
    local = f"{MODELS_MOUNT}/{key}"
    mounted = volume(storage, read_only=True, sub_path=key)
    if mounted is not None:
        source, mount = mounted
        return local, [source], [mount], []
    variables, env_from = env(storage, storage.serving_secret)
    pull: Manifest = {
        "name": "repository",
        "image": settings.storage_image,
        "command": ["fulcrum", "storage", "pull"],
        "args": ["--from", repository, "--into", local],
        # its error (the object, the store's code) is the last line it prints: the pod's status carries it
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "env": [{"name": "HOME", "value": SCRATCH_DIR}, *variables],
        "volumeMounts": [
            {"name": REPOSITORY_VOLUME, "mountPath": MODELS_MOUNT},
            {"name": "repository-tmp", "mountPath": SCRATCH_DIR},
        ],
        "securityContext": container_security_context(),
    }
    if env_from:
        pull["envFrom"] = env_from
    volumes = [{"name": REPOSITORY_VOLUME, "emptyDir": {}}, {"name": "repository-tmp", "emptyDir": {}}]
    return local, volumes, [{"name": REPOSITORY_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": True}], [pull]
