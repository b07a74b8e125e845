"""cairn.node: the storage node (server, coordinator, storage engine, background workers)."""
