"""Sub-commands of the ``fulcrum`` CLI, one module each, imported lazily by ``fulcrum.cli``."""
