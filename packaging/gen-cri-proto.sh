#!/bin/sh
# Regenerate the CRI v1 stubs (stage0/cri/proto/api_pb2.py, .pyi, api_pb2_grpc.py) from api.proto,
# into OUT (default: the checkout itself). Debian 12's protoc 3.21 and grpc_python_plugin 1.51
# (protobuf-compiler, protobuf-compiler-grpc) make code both Debian's python3-protobuf 3.21 and
# PyPI's newer protobuf load; grpcio-tools from PyPI would stamp a grpcio version Debian lacks.
# tests/unit/test_cri_proto.py runs this into a temporary directory and compares.
set -eu
cd "$(dirname "$0")/.."
out=${1:-.}
mkdir -p "$out"
protoc -I. --python_out="$out" --pyi_out="$out" --grpc_out="$out" \
    --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" stage0/cri/proto/api.proto
