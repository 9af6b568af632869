"""Turn a build's ``manifest.json`` into a ``PROFILES.json`` for ``fulcrum simulate`` (Ready tiers only).

Run: ``python examples/profiles/from_manifest.py /tmp/ctr-repo/manifest.json examples/profiles/ctr-ranker-local.json``

``ctr-ranker-local.json`` was made this way from ``fulcrum build --spec examples/ctr-ranker/modeldeployment.yaml
--out /tmp/ctr-repo --target local`` on the shared 2-core dev machine: real measurements (the builder's
in-process open-loop profiler, pool ``local``), noisy because other jobs shared the cores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fulcrum.api import BuildManifest, ProfilesFile, TierProfiles


def convert(manifest: BuildManifest) -> ProfilesFile:
    return ProfilesFile(
        tiers=[TierProfiles(name=t.name, profiles=t.profiles) for t in manifest.tiers if t.state == "Ready"]
    )


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = BuildManifest.model_validate_json(source.read_text())
    target.write_text(json.dumps(convert(manifest).to_wire(), indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
