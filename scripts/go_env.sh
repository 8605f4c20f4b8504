# Sourced by the install scripts that build Go tools (install_cometbft.sh, install_seaweedfs.sh):
# where binaries go and where Go keeps its caches. Sets ROOT, TOOLS, CACHE and Go's variables.
#
# The binaries go to <repo>/.tools/bin. Go's module and build caches are content-addressed, so
# clones of the project share one, outside the repo (CITYLEDGER_CACHE, default ~/.cache/cityledger):
# a fresh clone's `make test` then links the binaries from cached packages instead of compiling
# SeaweedFS and CometBFT again (tens of minutes on a loaded 2-core machine). Built binaries are kept
# there too, by version, and copied in when they match.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
CACHE="${CITYLEDGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cityledger}"
export GOBIN="$TOOLS/bin"
export GOPATH="$CACHE/go"
export GOMODCACHE="$CACHE/go/pkg/mod"
export GOCACHE="$CACHE/go/cache"
export GOFLAGS="-modcacherw -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

# require_go NAME VERSION_HINT: stop with a clear message when the Go toolchain is missing.
require_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "$1: the Go toolchain (go) is not on PATH; install Go >= $2" >&2
    exit 1
  fi
}
