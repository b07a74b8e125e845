"""Generated modules of the cairn.v1 protocol (see proto/ and docs/protocol.md)."""
