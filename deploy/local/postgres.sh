#!/usr/bin/env bash
# postgres.sh start|stop|status|url|reset
#
# A PostgreSQL server for tests: Debian's postgresql, its own cluster under
# /var/lib/simpleci-test/postgres (outside the repository), listening on 127.0.0.1:54329,
# trust authentication, user and database `postgres`. Idempotent: `start` reuses a running
# server and restarts an existing cluster that is down; `reset` stops it and deletes its data.
#
#   deploy/local/postgres.sh start     install if missing, init once, start, wait until it accepts
#   deploy/local/postgres.sh url       postgres://postgres@127.0.0.1:54329/postgres?sslmode=disable
#   deploy/local/postgres.sh status    exit 0 when running, 3 when not
#   deploy/local/postgres.sh stop
#   deploy/local/postgres.sh reset     stop and delete the cluster (the next start inits a new one)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

PG_HOST=127.0.0.1
PG_PORT=54329
PG_ROOT="$SIMPLECI_TEST_STATE_DIR/postgres"
PG_DATA="$PG_ROOT/data"
PG_SOCK="$PG_ROOT/run"
PG_LOG="$PG_ROOT/postgres.log"
PG_URL="postgres://postgres@$PG_HOST:$PG_PORT/postgres?sslmode=disable"

# pg_bindir prints the bin directory of the newest installed PostgreSQL, empty if none.
pg_bindir() {
	local d best=""
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/pg_ctl ]] || continue
		if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1) == "$d" ]]; then
			best="$d"
		fi
	done
	echo "$best"
}

as_postgres() { runuser -u postgres -- "$@"; }

ensure_installed() {
	BIN="$(pg_bindir)"
	if [[ -z $BIN ]] || ! id postgres >/dev/null 2>&1; then
		apt_install postgresql
		BIN="$(pg_bindir)"
		[[ -n $BIN ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/pg_ctl found"
	fi
}

running() {
	[[ -f $PG_DATA/PG_VERSION ]] && as_postgres "$BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

accepting() {
	"$BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -t 2
}

init_cluster() {
	mkdir -p "$SIMPLECI_TEST_STATE_DIR"
	chmod 755 "$SIMPLECI_TEST_STATE_DIR"
	mkdir -p "$PG_ROOT" "$PG_SOCK"
	chown postgres:postgres "$PG_ROOT" "$PG_SOCK"
	chmod 750 "$PG_ROOT"
	chmod 775 "$PG_SOCK"
	if [[ ! -f $PG_DATA/PG_VERSION ]]; then
		# A data dir without PG_VERSION is a half-done earlier initdb: ours to remove.
		rm -rf "$PG_DATA"
		log "initdb $PG_DATA"
		install -d -o postgres -g postgres -m 700 "$PG_DATA"
		as_postgres "$BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_ROOT/initdb.log" 2>&1 ||
			die "initdb failed; see $PG_ROOT/initdb.log:
$(tail -n 20 "$PG_ROOT/initdb.log")"
		echo "include_if_exists = 'simpleci-test.conf'" >>"$PG_DATA/postgresql.conf"
	fi
	# Rewritten on every start, so a changed setting here reaches an existing cluster.
	cat >"$PG_DATA/simpleci-test.conf" <<CONF
# Written by deploy/local/postgres.sh on every start; edit that script, not this file.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
shared_buffers = 128MB
# Durability stays as in production (fsync, synchronous_commit on) so timings measured
# here mean something.
timezone = 'UTC'
log_timezone = 'UTC'
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
CONF
	chown postgres:postgres "$PG_DATA/simpleci-test.conf"
	touch "$PG_LOG"
	chown postgres:postgres "$PG_LOG"
}

cmd_start() {
	require_root
	ensure_installed
	# A server of this cluster that is starting up, recovering or shutting down does not accept
	# yet: wait for it to either accept (reuse it) or go away (start it again).
	local deadline=$(($(now_s) + 60))
	while running; do
		if accepting; then
			log "already running on $PG_HOST:$PG_PORT"
			return 0
		fi
		[[ $(now_s) -lt $deadline ]] || die "a server runs on $PG_DATA but has not accepted connections on $PG_HOST:$PG_PORT for 60 s; last lines of $PG_LOG:
$(tail -n 30 "$PG_LOG")"
		sleep 0.5
	done
	if port_open "$PG_HOST" "$PG_PORT"; then
		die "port $PG_HOST:$PG_PORT is taken by another process (not the cluster in $PG_DATA): $(ss -ltnp "sport = :$PG_PORT" 2>/dev/null | tail -n +2)"
	fi
	init_cluster
	log "starting PostgreSQL ($BIN) on $PG_HOST:$PG_PORT, data $PG_DATA"
	# -w waits until the server accepts connections (pg_ctl polls), -t bounds it.
	if ! as_postgres "$BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null; then
		die "PostgreSQL did not start; last lines of $PG_LOG:
$(tail -n 30 "$PG_LOG")"
	fi
	accepting || die "PostgreSQL started but does not accept connections on $PG_HOST:$PG_PORT; see $PG_LOG"
	log "ready: $PG_URL"
}

cmd_stop() {
	require_root
	BIN="$(pg_bindir)"
	if [[ -n $BIN ]] && running; then
		log "stopping PostgreSQL ($PG_DATA)"
		as_postgres "$BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
	else
		log "not running"
	fi
}

cmd_status() {
	BIN="$(pg_bindir)"
	if [[ -n $BIN ]] && running && accepting; then
		echo "running on $PG_HOST:$PG_PORT (data $PG_DATA)"
		return 0
	fi
	echo "stopped"
	return 3
}

cmd_reset() {
	cmd_stop
	log "deleting $PG_ROOT"
	rm -rf "$PG_ROOT"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) echo "$PG_URL" ;;
reset) cmd_reset ;;
*)
	echo "usage: $0 start|stop|status|url|reset" >&2
	exit 2
	;;
esac
