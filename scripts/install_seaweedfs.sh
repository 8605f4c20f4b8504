#!/usr/bin/env bash
# Install the pinned SeaweedFS `weed` binary into <repo>/.tools, idempotently.
#
# The S3 vault backend (offchain/vaults/s3_store.py) is tested against a real SeaweedFS S3 server.
# Like scripts/install_cometbft.sh, the binary goes to .tools/bin and Go's caches (and a copy of the
# binary by version) are shared between clones under ~/.cache/cityledger. SeaweedFS tags its
# releases without the "v" prefix Go modules need, so the module proxy serves it only as a
# pseudo-version: the pin is that exact pseudo-version (one commit).
set -euo pipefail

SEAWEEDFS_MODULE="github.com/seaweedfs/seaweedfs"
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"

source "$(dirname "$0")/go_env.sh"
BIN="$GOBIN/weed"

require_go install_seaweedfs 1.26.6

# The pinned commit is stamped into the binary (as SeaweedFS's own release builds do), so that
# `weed version` names it and a second run exits here at once.
SEAWEEDFS_COMMIT="${SEAWEEDFS_VERSION##*-}"
SEAWEEDFS_NUMBER="4.53"  # the release number this commit reports (weed/util/version/constants.go)
if [[ -x "$BIN" ]] && [[ "$("$BIN" version 2>/dev/null)" == *" $SEAWEEDFS_NUMBER $SEAWEEDFS_COMMIT "* ]]; then
  exit 0
fi
CACHED="$CACHE/bin/weed-$SEAWEEDFS_VERSION"
if [[ -x "$CACHED" ]] && [[ "$("$CACHED" version 2>/dev/null)" == *" $SEAWEEDFS_NUMBER $SEAWEEDFS_COMMIT "* ]]; then
  mkdir -p "$GOBIN" && cp -f "$CACHED" "$BIN" && exit 0
fi

mkdir -p "$GOBIN" "$GOMODCACHE" "$GOCACHE"
log="$(mktemp)"
trap 'rm -f "$log" "$BIN.partial"' EXIT
# `go install module/weed@version` refuses a module whose go.mod has replace directives (SeaweedFS
# has one), so the module is downloaded at the pinned version and built as the main module, in
# its own folder of the module cache, with its own go.mod and go.sum: the same inputs, pinned.
echo "install_seaweedfs: go build $SEAWEEDFS_MODULE/weed@$SEAWEEDFS_VERSION into $GOBIN (several minutes the first time)"
if ! dir="$(go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" 2>"$log" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" \
    || [[ -z "$dir" ]]; then
  echo "install_seaweedfs: blocked: go mod download failed (is the Go module proxy reachable?):" >&2
  cat "$log" >&2
  exit 1
fi
ldflags="-s -w -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=$SEAWEEDFS_COMMIT"
if ! (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$BIN.partial" ./weed) >"$log" 2>&1; then
  echo "install_seaweedfs: blocked: go build failed (is the Go module proxy reachable?):" >&2
  cat "$log" >&2
  exit 1
fi
mv -f "$BIN.partial" "$BIN"
installed="$("$BIN" version | sed -n 1p)"
if [[ "$installed" != *" $SEAWEEDFS_NUMBER $SEAWEEDFS_COMMIT "* ]]; then
  echo "install_seaweedfs: installed binary reports '$installed', want $SEAWEEDFS_NUMBER $SEAWEEDFS_COMMIT" >&2
  exit 1
fi
echo "install_seaweedfs: $installed installed at $BIN"
mkdir -p "$CACHE/bin" && cp -f "$BIN" "$CACHED"
