"""Generated protobuf and gRPC modules of the cairn.v1 protocol (see proto/ and docs/protocol.md)."""
