"""Upload forms for build Jobs: the operator holds the repository's write keys and signs each build a form
for its own key, once the build's fetch step has reported that key (``fulcrum.storage.form``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fulcrum.resources.build import UPLOAD_FORM_FILE
from fulcrum.resources.settings import OperatorSettings
from fulcrum.storage.config import ObjectURI, S3Config, StorageConfigError
from fulcrum.storage.form import DEFAULT_LIFETIME, UploadForm, content_key_of, sign
from fulcrum.storage.sigv4 import Credentials

log = logging.getLogger("fulcrum.storage")


@dataclass(frozen=True)
class UploadSigner:
    """Signs forms for keys under the default repository storage with the operator's own write keys."""

    credentials: Credentials
    root: ObjectURI
    region: str
    lifetime: float = DEFAULT_LIFETIME

    def __repr__(self) -> str:
        return f"UploadSigner(root={self.root}, access_key={self.credentials.access_key!r})"

    def sign(self, key: str) -> UploadForm:
        return sign(self.credentials, self.root, key, region=self.region, lifetime=self.lifetime)

    @classmethod
    def from_environment(cls, settings: OperatorSettings, env: Mapping[str, str] | None = None) -> UploadSigner | None:
        """None when the default storage is not object storage or the operator holds no keys for it (build
        Jobs then get the write keys of ``--repository-secret`` themselves, as before)."""
        storage = settings.storage
        if storage.kind != "s3":
            return None
        variables = dict(os.environ if env is None else env)
        if storage.region:
            variables["AWS_REGION"] = storage.region
        try:
            root = ObjectURI.parse(storage.location)
            config = S3Config.from_environment(variables, scheme=root.scheme)
        except StorageConfigError as error:
            log.warning("build Jobs get the repository's write keys: the operator cannot sign upload forms: %s", error)
            return None
        if config.credentials is None:
            log.warning(
                "build Jobs get the repository's write keys (%s): the operator has none to sign upload forms with",
                storage.secret or "no Secret",
            )
            return None
        # a form outlives the longest build (the Job's activeDeadlineSeconds) by an hour
        lifetime = max(DEFAULT_LIFETIME, settings.build_timeout_seconds + 3600)
        return cls(config.credentials, root, config.region, lifetime)


def reported_content_key(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The content key a build pod's finished fetch step asks a form for (exit 0, its termination message)."""
    for pod in pods:
        for status in pod.get("status", {}).get("initContainerStatuses") or []:
            if status.get("name") != "fetch":
                continue
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") == 0:
                key = content_key_of(terminated.get("message"))
                if key is not None:
                    return key
    return None


__all__ = ["UPLOAD_FORM_FILE", "UploadSigner", "reported_content_key"]
