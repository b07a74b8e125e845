"""cairn.node.server: the gRPC face of a node and its composition root.

Owns: config loading (``config.py``), proto <-> value conversion and input validation
(``wire.py``), the error → status table (``errors.py``), the services (``services.py``),
structured logs and metrics, and start/stop order (``app.py``: ``Node``, ``main``).
"""
