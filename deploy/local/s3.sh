#!/usr/bin/env bash
# s3.sh start|stop|status|url
#
# An S3-compatible server for tests: gofakes3 (github.com/johannesboyne/gofakes3, pinned in
# tools/s3server/go.mod), built with `go build` from the module proxy into
# $SIMPLECI_CACHE_DIR/bin (outside the repository), with its data in a bolt file under
# $SIMPLECI_TEST_STATE_DIR/s3, listening on 127.0.0.1:59000; bucket `simpleci` is made at
# start. Any access key is accepted. Idempotent: `start` reuses a running server.
#
#   deploy/local/s3.sh start     build if missing, start, wait until it answers
#   deploy/local/s3.sh url       http://test:test@127.0.0.1:59000/simpleci (blobstore.NewS3FromURL)
#   deploy/local/s3.sh status    exit 0 when running, 3 when not
#   deploy/local/s3.sh stop
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

S3_HOST=127.0.0.1
S3_PORT=59000
S3_ROOT="$SIMPLECI_TEST_STATE_DIR/s3"
S3_BIN="$SIMPLECI_CACHE_DIR/bin/gofakes3"
S3_URL="http://test:test@$S3_HOST:$S3_PORT/simpleci"

build() {
	[[ -x $S3_BIN ]] && return
	log "building gofakes3 (pinned in tools/s3server/go.mod) into $S3_BIN"
	mkdir -p "$(dirname "$S3_BIN")"
	(cd "$here/../../tools/s3server" && GOWORK=off go build -o "$S3_BIN" github.com/johannesboyne/gofakes3/cmd/gofakes3)
}

case "${1:-}" in
start)
	if port_open "$S3_HOST" "$S3_PORT"; then
		exit 0
	fi
	build
	mkdir -p "$S3_ROOT"
	log "starting gofakes3 on $S3_HOST:$S3_PORT"
	nohup "$S3_BIN" -host "$S3_HOST:$S3_PORT" -backend bolt -bolt.db "$S3_ROOT/s3.bolt" -initialbucket simpleci -quiet \
		>"$S3_ROOT/s3.log" 2>&1 &
	echo $! >"$S3_ROOT/pid"
	for _ in $(seq 1 100); do
		port_open "$S3_HOST" "$S3_PORT" && exit 0
		sleep 0.1
	done
	die "gofakes3 did not start; see $S3_ROOT/s3.log"
	;;
stop)
	if [[ -f $S3_ROOT/pid ]]; then
		kill "$(cat "$S3_ROOT/pid")" 2>/dev/null || true
		rm -f "$S3_ROOT/pid"
	fi
	;;
status)
	port_open "$S3_HOST" "$S3_PORT" || exit 3
	;;
url)
	echo "$S3_URL"
	;;
*)
	echo "usage: $0 start|stop|status|url" >&2
	exit 2
	;;
esac
