"""cairn.node: the storage node (server, coordinator, storage engine, background workers).

Start reading at ``cairn.node.server.app`` (the composition root); the layers below it
are ``coordinator`` and ``storage``. ``main`` is the ``cairn node`` command.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one node in the foreground (``cairn node --help``)."""
    from cairn.node.server.app import main as run

    return run(argv)
