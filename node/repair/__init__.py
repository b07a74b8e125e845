"""cairn.node.repair: the background workers that keep redundancy whole.

Owns: the ``Worker`` shape (STYLE 2.10) and the rate limiter (``worker.py``), the
scrubber that verifies every record and replaces bad copies (``scrubber.py``), and
anti-entropy that compares partition hash trees with the other replicas and copies what
differs, which also rebuilds a wiped disk or node (``antientropy.py``). ``Repair`` ties
them together for the server. Does not own: bytes on disk (the engine) or the network
(the coordinator's ``Peers``).
"""

from __future__ import annotations

from .antientropy import AntiEntropy
from .scrubber import Scrubber
from .service import Repair, RepairConfig
from .worker import RateLimiter, Worker

__all__ = ["AntiEntropy", "RateLimiter", "Repair", "RepairConfig", "Scrubber", "Worker"]
