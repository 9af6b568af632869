"""Print requirements from pyproject.toml, one per line, for `pip install -r` in the Containerfiles.

    python3 requirements.py pyproject.toml                      # the operator's dependencies
    python3 requirements.py pyproject.toml builder local        # ... plus those extras
    python3 requirements.py pyproject.toml --only nvidia-pytriton onnxruntime numpy
                                                                # just these projects, as pyproject pins them

pyproject.toml stays the one place where versions are declared. Standard library only (runs in the image's
base Python before anything is installed).
"""

from __future__ import annotations

import re
import sys
import tomllib


def project_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise SystemExit(f"requirements.py: cannot read the project name of {requirement!r}")
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def select(pyproject: dict, args: list[str]) -> list[str]:
    project = pyproject["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    if args[:1] == ["--only"]:
        wanted = {project_name(a) for a in args[1:]}
        every = [*project["dependencies"], *(r for group in extras.values() for r in group)]
        chosen: dict[str, str] = {}
        for requirement in every:
            name = project_name(requirement)
            if name in wanted:
                chosen.setdefault(name, requirement)
        missing = wanted - set(chosen)
        if missing:
            raise SystemExit(f"requirements.py: not in pyproject.toml: {', '.join(sorted(missing))}")
        return list(chosen.values())
    unknown = [a for a in args if a not in extras]
    if unknown:
        raise SystemExit(f"requirements.py: no such extra: {', '.join(unknown)} (extras: {', '.join(extras)})")
    return [*project["dependencies"], *(r for extra in args for r in extras[extra])]


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    with open(argv[0], "rb") as handle:
        pyproject = tomllib.load(handle)
    print("\n".join(dict.fromkeys(select(pyproject, argv[1:]))))


if __name__ == "__main__":
    main(sys.argv[1:])
