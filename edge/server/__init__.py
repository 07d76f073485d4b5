"""The gRPC daemon. See docs/ARCHITECTURE.md for why it is the threaded server, not grpc.aio."""
