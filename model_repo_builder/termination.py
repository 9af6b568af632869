"""The build Job's result in the pod's termination message.

The kubelet keeps at most 4 KiB of one container's message and 12 KiB for a whole pod, split evenly over all its
containers (``normalizeStatus``: 12 KiB / (containers + init containers), whatever the others wrote). A build
pod has five (fetch, build, the Triton sidecar, measure, publish): 2457 bytes each. ``LIMIT`` leaves room for
six.

Format: compact JSON on one line, or, when that is longer than the limit, the same JSON deflated and
base64-encoded behind the prefix ``z:`` (profiles compress about fourfold)::

    {"key": "<content key, 64 hex>", "repository": "<repository path as built>", "reused": bool,
     "truncated": bool, "manifest": <manifest.json, camelCase>}

When even the deflated form is too long it is made shorter in this order until it fits, and ``truncated`` is set
once anything was dropped (``manifest.json`` in the repository always has everything):

1. floats rounded (latency to 0.01 ms, rate to 0.1 rps, accuracy to 4 significant digits; never dropped);
2. profile points thinned while a profile has more than 5: every other interior point removed (the first
   and the last, the saturation end, are kept);
3. the config search's candidates dropped (each profile keeps the config it chose and the search's
   duration), then the points thinned further, down to the first and the last;
4. tier messages cut to 160 characters;
5. profile points dropped down to the last (highest-rate) one;
6. tier messages dropped;
7. profiles dropped.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import zlib
from typing import Any

LIMIT = 2048
DEFLATED = "z:"


def _round_sig(value: float, digits: int = 4) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _round(manifest: dict[str, Any]) -> None:
    for tier in manifest.get("tiers", []):
        tier["accuracy"] = {k: _round_sig(float(v)) for k, v in tier.get("accuracy", {}).items()}
        for profile in tier.get("profiles", []):
            for point in profile.get("points", []):
                point["requestsPerSecond"] = round(float(point["requestsPerSecond"]), 1)
                point["latencyMs"] = {k: round(float(v), 2) for k, v in point["latencyMs"].items()}
            for candidate in (profile.get("search") or {}).get("candidates", []):
                if candidate.get("requestsPerSecond") is not None:
                    candidate["requestsPerSecond"] = round(float(candidate["requestsPerSecond"]), 1)


def _drop_candidates(manifest: dict[str, Any]) -> None:
    for tier in manifest.get("tiers", []):
        for profile in tier.get("profiles", []):
            if profile.get("search"):
                profile["search"]["candidates"] = []


def _thin_once(manifest: dict[str, Any], keep: int = 2) -> bool:
    changed = False
    for tier in manifest.get("tiers", []):
        for profile in tier.get("profiles", []):
            points = profile.get("points", [])
            if len(points) > keep:
                interior = points[1:-1]
                profile["points"] = [points[0], *interior[1::2], points[-1]]
                changed = True
    return changed


def _shrink(tier: dict[str, Any], step: str) -> None:
    if step == "cut-messages":
        tier["message"] = tier.get("message", "")[:160]
    elif step == "last-point":
        for profile in tier.get("profiles", []):
            profile["points"] = profile["points"][-1:]
    elif step == "drop-messages":
        tier["message"] = ""
    else:
        tier["profiles"] = []


def encode(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=False)


def packed(document: dict[str, Any], limit: int = LIMIT) -> str:
    """``document`` as plain JSON when that fits in ``limit`` bytes, else deflated (``z:`` + base64)."""
    text = encode(document)
    if len(text.encode()) <= limit:
        return text
    return DEFLATED + base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def unpacked(text: str) -> str:
    """The JSON text of a termination message written by :func:`packed`."""
    if text.startswith(DEFLATED):
        return zlib.decompress(base64.b64decode(text[len(DEFLATED) :])).decode()
    return text


def error(reason: str | None, message: str, limit: int = LIMIT) -> str:
    """``{"error": {"reason": ..., "message": ...}}`` (or ``{"error": message}`` without a reason), the message
    cut until it fits in ``limit`` bytes."""
    while True:
        document: dict[str, Any] = {"error": message if reason is None else {"reason": reason, "message": message}}
        text = encode(document)
        if len(text.encode()) <= limit or not message:
            return text
        message = message[: len(message) * 3 // 4]


def compact(manifest: dict[str, Any], key: str, repository: str, reused: bool, limit: int = LIMIT) -> str:
    """The termination message: ``manifest`` (wire form) plus key and repository, at most ``limit`` bytes."""
    document: dict[str, Any] = {
        "key": key,
        "repository": repository,
        "reused": reused,
        "truncated": False,
        "manifest": copy.deepcopy(manifest),
    }
    m = document["manifest"]
    _round(m)

    def fits() -> bool:
        return len(packed(document, limit).encode()) <= limit

    if fits():
        return packed(document, limit)
    document["truncated"] = True
    while not fits() and _thin_once(m, keep=5):
        pass
    if not fits():
        _drop_candidates(m)
    while not fits() and _thin_once(m):
        pass
    for step in ("cut-messages", "last-point", "drop-messages", "drop-profiles"):
        if fits():
            break
        for tier in m.get("tiers", []):
            _shrink(tier, step)
    if not fits():
        raise ValueError(f"the build result does not fit in {limit} bytes even without profiles and messages")
    return packed(document, limit)
