#!/usr/bin/env bash
# Install the pinned CometBFT release into <repo>/.tools, idempotently.
#
# The binary goes to .tools/bin; Go's caches and a copy of the binary by version are shared between
# clones under ~/.cache/cityledger (scripts/go_env.sh). If the Go module proxy cannot be reached, the go tool's
# own error is printed and the script exits non-zero.
set -euo pipefail

COMETBFT_MODULE="github.com/cometbft/cometbft"
COMETBFT_VERSION="v0.38.25"

source "$(dirname "$0")/go_env.sh"
BIN="$GOBIN/cometbft"

require_go install_cometbft 1.22

# The binary reports the CometBFT version without the leading "v".
if [[ -x "$BIN" ]] && [[ "$("$BIN" version 2>/dev/null)" == "${COMETBFT_VERSION#v}" ]]; then
  exit 0
fi
CACHED="$CACHE/bin/cometbft-$COMETBFT_VERSION"
if [[ -x "$CACHED" ]] && [[ "$("$CACHED" version 2>/dev/null)" == "${COMETBFT_VERSION#v}" ]]; then
  mkdir -p "$GOBIN" && cp -f "$CACHED" "$BIN" && exit 0
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
mkdir -p "$CACHE/bin" && cp -f "$BIN" "$CACHED"
