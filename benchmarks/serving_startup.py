"""What a serving pod pays at start to read its repository from object storage, side by side.

    python benchmarks/serving_startup.py [--rounds 5] [--tier fp32] [--pad-mib 0] [--json]

Builds the ctr-ranker example (``--target local``, no profile), publishes it to a real SeaweedFS (the dev
cluster's object store, started here on loopback), then, in interleaved rounds (the order rotates, so drift in a
shared machine's load hits every variant alike), measures the seconds from process start until the tier is
ready (``/v2/models/<tier>/ready``), with the bundled CPU tritonserver:

- ``local``: Triton reads the repository from a local directory (what a hostPath or PVC mount gives);
- ``pull``: ``fulcrum storage pull`` (the serving pods' init container: download, verify every file's sha256,
  rename into place), then Triton on that directory; reported with the pull's share;
- ``triton-s3``: Triton reads the published upload from the store itself (``--model-repository=s3://...``), no
  init container.

``--pad-mib N`` adds an N MiB file to the tier's version directory before publishing, to see how the cost grows
with the repository's size (Triton ignores files it does not know). Prints medians and ratios to ``local``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fulcrum import local_triton
from fulcrum.dev import build as dev_build
from fulcrum.dev import objectstore
from fulcrum.dev.paths import DevHome
from fulcrum.storage import ObjectURI, S3Client, S3Config, S3Repository

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "ctr-ranker" / "modeldeployment.yaml"


def ready(url: str, tier: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{tier}/ready", timeout=2) as response:
            return int(response.status) == 200
    except OSError:
        return False


def start_triton(repository: str, tier: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    install = local_triton.find_install()
    port = local_triton.free_port("127.0.0.1")
    args = [
        f"--model-repository={repository}",
        "--model-control-mode=explicit",
        f"--load-model={tier}",
        "--http-address=127.0.0.1",
        f"--http-port={port}",
        "--allow-grpc=false",
        "--allow-metrics=false",
        "--strict-readiness=true",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            local_triton.command(args, install),
            env={**local_triton.server_env(install), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


def time_to_ready(repository: str, tier: str, env: dict[str, str], log: Path, timeout: float = 120.0) -> float:
    started = time.monotonic()
    process, url = start_triton(repository, tier, env, log)
    try:
        while not ready(url, tier):
            if process.poll() is not None or time.monotonic() - started > timeout:
                raise RuntimeError(f"tritonserver on {repository} did not get ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tier", default="fp32")
    parser.add_argument("--pad-mib", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    bin_dir = dev_build.find_bin_dir()
    if bin_dir is None:
        raise SystemExit("the dev cluster's binaries are not built: run `fulcrum dev build`")
    work = Path(tempfile.mkdtemp(prefix="serving-startup-"))
    home = DevHome(work / "store")
    try:
        store = objectstore.start(
            home, "127.0.0.1", bin_dir, env=dict(os.environ), say=lambda m: print(m, file=sys.stderr)
        )
        built = work / "built"
        subprocess.run(
            [sys.executable, "-m", "fulcrum", "build", "--spec", str(SPEC), "--out", str(built), "--target", "local",
             "--no-profile"],
            check=True, capture_output=True,
        )  # fmt: skip
        if args.pad_mib:
            (built / args.tier / "1" / "padding.bin").write_bytes(os.urandom(args.pad_mib * 2**20))
        writer = S3Repository(
            S3Client(S3Config.from_environment(store.env("writer"))), ObjectURI.parse(objectstore.REPOSITORY)
        )
        key = "5e" * 32
        marker = writer.publish(key, built).marker
        size_mib = marker.total_bytes / 2**20
        reader_env = {k: v for k, v in store.env("reader").items()}
        s3_url = f"s3://{store.endpoint}/{objectstore.MODELS_BUCKET}/repositories/{key}/uploads/{marker.upload}"
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        results: dict[str, list[float]] = {"local": [], "pull": [], "pull-only": [], "triton-s3": []}
        variants = ["local", "pull", "triton-s3"]
        for round_ in range(args.rounds):
            order = variants[round_ % 3 :] + variants[: round_ % 3]
            for variant in order:
                log = work / f"{variant}-{round_}.log"
                if variant == "local":
                    results["local"].append(time_to_ready(str(built), args.tier, {}, log))
                elif variant == "pull":
                    target = work / f"pulled-{round_}" / key
                    started = time.monotonic()
                    subprocess.run(
                        [sys.executable, "-m", "fulcrum", "storage", "pull", "--from",
                         f"{objectstore.REPOSITORY}/{key}", "--into", str(target)],
                        check=True, capture_output=True, env={**clean_env, **reader_env},
                    )  # fmt: skip
                    pulled = time.monotonic() - started
                    results["pull-only"].append(pulled)
                    results["pull"].append(pulled + time_to_ready(str(target), args.tier, {}, log))
                    shutil.rmtree(target.parent)
                else:
                    (work / f"triton-s3-{round_}").mkdir()
                    env = {
                        "AWS_ACCESS_KEY_ID": store.reader.access_key,
                        "AWS_SECRET_ACCESS_KEY": store.reader.secret_key,
                        "AWS_DEFAULT_REGION": store.region,
                        "TRITON_AWS_MOUNT_DIRECTORY": str(work / f"triton-s3-{round_}"),
                    }
                    results["triton-s3"].append(time_to_ready(s3_url, args.tier, env, log))
        medians = {k: statistics.median(v) for k, v in results.items() if v}
        report = {
            "repository": {"files": len(marker.files), "mib": round(size_mib, 2)},
            "rounds": args.rounds,
            "seconds": {k: round(v, 3) for k, v in medians.items()},
            "vsLocal": {k: round(v / medians["local"], 2) for k, v in medians.items() if k != "pull-only"},
        }
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"repository: {len(marker.files)} files, {size_mib:.2f} MiB; medians over {args.rounds} rounds")
            for name, seconds in medians.items():
                ratio = f"{seconds / medians['local']:.2f}x local" if name != "pull-only" else "(part of pull)"
                print(f"  {name:10s} {seconds:7.3f} s  {ratio}")
    finally:
        objectstore.stop(home)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
