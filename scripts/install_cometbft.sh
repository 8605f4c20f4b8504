#!/usr/bin/env bash
# Install the pinned CometBFT release into <repo>/.tools, idempotently.
#
# Everything Go writes (binary, module cache, build cache) stays under .tools/ so that nothing
# leaks into the user's home. If the Go module proxy cannot be reached, the go tool's own error is
# printed and the script exits non-zero.
set -euo pipefail

COMETBFT_MODULE="github.com/cometbft/cometbft"
COMETBFT_VERSION="v0.38.25"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
export GOBIN="$TOOLS/bin"
export GOPATH="$TOOLS/go"
export GOMODCACHE="$TOOLS/go/pkg/mod"
export GOCACHE="$TOOLS/go/cache"
export GOFLAGS="-modcacherw -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
BIN="$GOBIN/cometbft"

if ! command -v go >/dev/null 2>&1; then
  echo "install_cometbft: the Go toolchain (go) is not on PATH; install Go >= 1.22" >&2
  exit 1
fi

# The binary reports the CometBFT version without the leading "v".
if [[ -x "$BIN" ]] && [[ "$("$BIN" version 2>/dev/null)" == "${COMETBFT_VERSION#v}" ]]; then
  exit 0
fi

mkdir -p "$GOBIN" "$GOMODCACHE" "$GOCACHE"
echo "install_cometbft: go install $COMETBFT_MODULE/cmd/cometbft@$COMETBFT_VERSION into $GOBIN"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! go install "$COMETBFT_MODULE/cmd/cometbft@$COMETBFT_VERSION" >"$log" 2>&1; then
  echo "install_cometbft: blocked: go install failed (is the Go module proxy reachable?):" >&2
  cat "$log" >&2
  exit 1
fi
installed="$("$BIN" version)"
if [[ "$installed" != "${COMETBFT_VERSION#v}" ]]; then
  echo "install_cometbft: installed binary reports version '$installed', want ${COMETBFT_VERSION#v}" >&2
  exit 1
fi
echo "install_cometbft: cometbft $installed installed at $BIN"
