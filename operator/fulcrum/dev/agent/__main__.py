"""``python -m fulcrum.dev.agent --home DIR``: the node agent (started by ``fulcrum dev up``)."""

from __future__ import annotations

import argparse

from fulcrum.dev.agent.kubelet import main
from fulcrum.dev.paths import DevHome, resolve_home

parser = argparse.ArgumentParser(prog="python -m fulcrum.dev.agent")
parser.add_argument("--home", default=None)
main(DevHome(resolve_home(parser.parse_args().home)))
