#!/usr/bin/env bash
# Build kustomize (pinned) from the Go module proxy into a directory cached outside the
# repository and print the path of the binary. Idempotent: a binary already built at the
# pinned version is reused without touching the network.
#
#   deploy/local/kustomize.sh                  # install if needed, print the path
#   deploy/local/kustomize.sh --if-installed   # print it only if installed, else exit 3
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

VERSION="${KUSTOMIZE_VERSION:-v5.8.1}"
DIR="$SIMPLECI_CACHE_DIR/kustomize-$VERSION"
BIN="$DIR/kustomize"
if [[ -x "$BIN" ]]; then
	echo "$BIN"
	exit 0
fi
[[ "${1:-}" != "--if-installed" ]] || exit 3
command -v go >/dev/null || die "go is needed to build kustomize"
log "building kustomize $VERSION into $DIR"
mkdir -p "$DIR"
# go install writes the binary whole at its end, so an interrupted build leaves none.
# GOWORK=off and GOFLAGS= keep the repository's workspace out of it.
GOWORK=off GOFLAGS= GOBIN="$DIR" go install "sigs.k8s.io/kustomize/kustomize/v5@$VERSION" >&2 ||
	die "go install sigs.k8s.io/kustomize/kustomize/v5@$VERSION failed"
"$BIN" version >&2
echo "$BIN"
