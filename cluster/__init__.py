"""cairn.cluster: placement, the cluster map and its epochs (pure Python, no I/O)."""
