#!/usr/bin/env bash
# kafka.sh start|stop|status|brokers|reset
#
# A real Apache Kafka broker for tests, no Docker: one JVM in KRaft mode (combined broker +
# controller, node id 1). Jars come from Maven Central through deploy/local/kafka-pom.xml and
# are cached in ~/.cache/simpleci/kafka-<version>/ (reruns need no network). Data and log live
# under /var/lib/simpleci-test/kafka (outside the repository).
#
#   deploy/local/kafka.sh start     fetch jars once, format storage once, start, wait until it answers
#   deploy/local/kafka.sh brokers   127.0.0.1:19092
#   deploy/local/kafka.sh status    exit 0 when running and answering, 3 when not
#   deploy/local/kafka.sh stop
#   deploy/local/kafka.sh reset     stop and delete all topics and offsets (the next start formats anew)
#
# Environment: KAFKA_VERSION (default 4.1.1), KAFKA_HEAP_OPTS (default -Xms256m -Xmx512m),
# KAFKA_START_TIMEOUT seconds (default 90); for a second instance beside the usual one,
# SIMPLECI_KAFKA_PORT / SIMPLECI_KAFKA_CONTROLLER_PORT (19092 / 19093),
# SIMPLECI_TEST_STATE_DIR (/var/lib/simpleci-test) and SIMPLECI_CACHE_DIR (~/.cache/simpleci).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${SIMPLECI_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${SIMPLECI_KAFKA_CONTROLLER_PORT:-19093}"
BROKERS="$KAFKA_HOST:$KAFKA_PORT"

POM="$here/kafka-pom.xml"
LOG4J_CONF="$here/kafka-log4j2.properties"
JARS_ROOT="$SIMPLECI_CACHE_DIR/kafka-$KAFKA_VERSION"
JARS="$JARS_ROOT/libs"
K_ROOT="$SIMPLECI_TEST_STATE_DIR/kafka"
K_DATA="$K_ROOT/data"
K_CONF="$K_ROOT/server.properties"
K_LOG="$K_ROOT/kafka.log"
K_PID="$K_ROOT/kafka.pid"

ensure_tools() {
	local need=()
	if ! command -v java >/dev/null 2>&1 || ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
		need+=(openjdk-17-jre-headless)
	fi
	command -v mvn >/dev/null 2>&1 || need+=(maven)
	if [[ ${#need[@]} -gt 0 ]]; then apt_install "${need[@]}"; fi
}

# ensure_jars fills the jar cache, keyed by version and by the pom's content: a changed pom
# downloads again, an unchanged one never touches the network.
ensure_jars() {
	local stamp want
	want="$(sha256sum "$POM" | cut -d' ' -f1)"
	stamp="$JARS_ROOT/.complete"
	if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
		return 0
	fi
	ensure_tools
	log "downloading Apache Kafka $KAFKA_VERSION jars from Maven Central into $JARS (once)"
	local t0 tmp
	t0="$(now_s)"
	mkdir -p "$JARS_ROOT"
	tmp="$(mktemp -d "$JARS_ROOT/libs.tmp.XXXXXX")"
	if ! mvn -q -B -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
		dependency:copy-dependencies -DoutputDirectory="$tmp" >"$JARS_ROOT/mvn.log" 2>&1; then
		rm -rf "$tmp"
		die "mvn could not fetch Kafka $KAFKA_VERSION; last lines of $JARS_ROOT/mvn.log:
$(tail -n 30 "$JARS_ROOT/mvn.log")"
	fi
	rm -rf "$JARS"
	mv "$tmp" "$JARS"
	echo "$want" >"$stamp"
	log "jars ready in $(($(now_s) - t0)) s ($(find "$JARS" -name '*.jar' | wc -l) jars)"
}

# kafka_java runs a Kafka main class with the cached classpath.
kafka_java() {
	java -cp "$JARS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" "$@"
}

write_config() {
	mkdir -p "$K_ROOT" "$K_DATA"
	# Rewritten on every start, so a changed setting reaches existing data.
	cat >"$K_CONF" <<CONF
# Written by deploy/local/kafka.sh on every start; edit that script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$K_DATA

# Tests: topics appear on first use, four partitions so per-key ordering is exercised.
auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A group's first member gets its partitions at once instead of after 3 s.
group.initial.rebalance.delay.ms=0

# Test data is disposable: keep the disk bounded.
log.retention.hours=24
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
num.io.threads=4
num.network.threads=2
CONF
}

ensure_formatted() {
	if [[ -f $K_DATA/meta.properties ]]; then
		return 0
	fi
	local cluster_id
	if [[ -s $K_ROOT/cluster.id ]]; then
		cluster_id="$(cat "$K_ROOT/cluster.id")"
	else
		# A Kafka cluster id is a base64url-encoded random 16-byte UUID (22 characters).
		cluster_id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
		echo "$cluster_id" >"$K_ROOT/cluster.id"
	fi
	log "formatting KRaft storage in $K_DATA (cluster id $cluster_id)"
	if ! kafka_java -Dsimpleci.kafka.loglevel=WARN kafka.tools.StorageTool format \
		-t "$cluster_id" -c "$K_CONF" >"$K_ROOT/format.log" 2>&1; then
		die "formatting the storage failed; see $K_ROOT/format.log:
$(tail -n 20 "$K_ROOT/format.log")"
	fi
}

# pid_running succeeds when the pid file names a live broker process of ours.
pid_running() {
	[[ -s $K_PID ]] || return 1
	local pid
	pid="$(cat "$K_PID")"
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $K_CONF"
}

# proc_alive succeeds while process $1 exists and is not a zombie (a broker that died while
# this script waits stays a zombie child until the script exits).
proc_alive() {
	local state
	state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# answers succeeds when the broker serves a metadata request (list topics) in time.
answers() {
	port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
	local cfg="$K_ROOT/tool.properties"
	printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n' >"$cfg"
	timeout 30 java -Xmx128m -cp "$JARS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" \
		-Dsimpleci.kafka.loglevel=ERROR org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "$BROKERS" --command-config "$cfg" --list >/dev/null 2>&1
}

log_tail() {
	[[ -f $K_LOG ]] && tail -n "${1:-40}" "$K_LOG" || echo "(no log at $K_LOG)"
}

cmd_start() {
	require_root
	local t0
	t0="$(now_s)"
	if pid_running; then
		ensure_jars
		if answers; then
			log "already running on $BROKERS (pid $(cat "$K_PID"))"
			return 0
		fi
		log "broker pid $(cat "$K_PID") runs but does not answer yet; waiting"
	else
		if port_open "$KAFKA_HOST" "$KAFKA_PORT" || port_open "$KAFKA_HOST" "$CONTROLLER_PORT"; then
			die "port $KAFKA_PORT or $CONTROLLER_PORT on $KAFKA_HOST is taken by a process that is not this script's broker: $(ss -ltnp "( sport = :$KAFKA_PORT or sport = :$CONTROLLER_PORT )" 2>/dev/null | tail -n +2)"
		fi
		ensure_tools
		ensure_jars
		write_config
		ensure_formatted
		[[ -f $K_LOG ]] && mv -f "$K_LOG" "$K_LOG.1"
		log "starting Kafka $KAFKA_VERSION (KRaft, broker+controller) on $BROKERS, data $K_DATA, log $K_LOG"
		# setsid + nohup: the broker outlives this script and the shell that ran it.
		local heap
		read -r -a heap <<<"$KAFKA_HEAP_OPTS"
		local java_args=(
			"${heap[@]}"
			-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
			-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
			-Dlog4j2.configurationFile="$LOG4J_CONF"
			-cp "$JARS/*" kafka.Kafka "$K_CONF"
		)
		nohup setsid java "${java_args[@]}" >"$K_LOG" 2>&1 </dev/null &
		echo $! >"$K_PID"
	fi
	local deadline=$((t0 + KAFKA_START_TIMEOUT))
	local pid
	pid="$(cat "$K_PID")"
	while true; do
		# Not pid_running: right after the fork the child may not have exec'ed java yet.
		if ! proc_alive "$pid"; then
			die "the broker exited during startup; last lines of $K_LOG:
$(log_tail 40)"
		fi
		if answers; then
			break
		fi
		if [[ $(now_s) -ge $deadline ]]; then
			die "the broker did not answer on $BROKERS within ${KAFKA_START_TIMEOUT}s (it is still running as pid $pid; stop it with $0 stop); last lines of $K_LOG:
$(log_tail 40)"
		fi
		sleep 0.5
	done
	log "ready on $BROKERS in $(($(now_s) - t0)) s (pid $pid)"
}

cmd_stop() {
	require_root
	if ! pid_running; then
		log "not running"
		rm -f "$K_PID"
		return 0
	fi
	local pid
	pid="$(cat "$K_PID")"
	log "stopping Kafka (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	# A controlled shutdown takes a few seconds; give it 60 before killing.
	local i
	for ((i = 0; i < 120; i++)); do
		[[ -d /proc/$pid ]] || break
		sleep 0.5
	done
	if [[ -d /proc/$pid ]]; then
		log "pid $pid ignored SIGTERM for 60 s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$K_PID"
}

cmd_status() {
	if pid_running && [[ -d $JARS ]] && answers; then
		echo "running on $BROKERS (pid $(cat "$K_PID"), Kafka $KAFKA_VERSION, data $K_DATA)"
		return 0
	fi
	echo "stopped"
	return 3
}

cmd_reset() {
	cmd_stop
	log "deleting $K_ROOT"
	rm -rf "$K_ROOT"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
brokers) echo "$BROKERS" ;;
reset) cmd_reset ;;
*)
	echo "usage: $0 start|stop|status|brokers|reset" >&2
	exit 2
	;;
esac
