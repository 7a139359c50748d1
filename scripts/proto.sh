#!/usr/bin/env bash
# Regenerates the Go code of the plugin protocol (proto/) with protoc from
# Debian's protobuf-compiler and the Go generators from the module proxy.
# The generated code is committed; run this after editing a .proto file.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12     # matches google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1

if ! command -v protoc >/dev/null; then
  echo "installing protoc (protobuf-compiler)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq protobuf-compiler
fi

gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
want_version() { # tool version: true when the installed tool reports that version
  "$1" --version 2>/dev/null | grep -q -- "${2#v}"
}
if ! want_version protoc-gen-go "$PROTOC_GEN_GO_VERSION"; then
  GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if ! want_version protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"; then
  GOFLAGS= go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

# Sources live under proto/ with their import path (edgehost/plugin/v1/…);
# the Go code is written beside them.
protoc -I proto \
  --go_out=proto --go_opt=paths=source_relative \
  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
  $(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
echo "generated: $(cd proto && find . -name '*.pb.go' | sort | tr '\n' ' ')"
