#!/usr/bin/env bash
# Regenerate the Python gRPC stubs in edge/proto_gen from proto/ (committed, so a device needs no
# grpcio-tools). tests/server/test_proto_stubs.py checks that the committed files match this output.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-edge/proto_gen}
mkdir -p "$out"
.venv/bin/python -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
    proto/edge/v1/edge.proto proto/registry/v1/registry.proto
# protoc writes absolute imports ("from edge.v1 import ..."): make them package-relative.
sed -i 's/^from edge\.v1 import edge_pb2 as/from edge.proto_gen.edge.v1 import edge_pb2 as/' "$out/edge/v1/edge_pb2_grpc.py"
sed -i 's/^from registry\.v1 import registry_pb2 as/from edge.proto_gen.registry.v1 import registry_pb2 as/' \
    "$out/registry/v1/registry_pb2_grpc.py"
touch "$out/__init__.py" "$out/edge/__init__.py" "$out/edge/v1/__init__.py" "$out/registry/__init__.py" \
    "$out/registry/v1/__init__.py"
