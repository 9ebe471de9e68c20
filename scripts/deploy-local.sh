#!/usr/bin/env bash
# The whole stack on one machine: private Redis and RabbitMQ (their data under .local/),
# the REST service on $PORT, $WORKERS workers and the logs service, all in the background.
# Originals and job outputs go to files under .local/blobs (BLOB_STORE=dir), not to Redis.
#   deploy-local.sh [up]     install what is missing, start what is not running, wait for /readyz
#   deploy-local.sh up --with-prometheus   also run Debian's prometheus scraping every service
#   deploy-local.sh down     stop everything it started
#   deploy-local.sh status   what is running
# Settings come from the environment (see the README's configuration table) and reach
# every service started here.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${IMAGESCAN_STATE_DIR:-$root/.local}"
venv="$root/.venv"

export PORT="${PORT:-5000}"
export REDIS_HOST=127.0.0.1
export REDIS_PORT="${REDIS_PORT:-6390}"
export RABBITMQ_HOST=127.0.0.1
export RABBITMQ_PORT="${RABBITMQ_PORT:-5690}"
export BLOB_STORE="${BLOB_STORE:-dir}"
export BLOB_DIR="${BLOB_DIR:-$state/blobs}"
WORKERS="${WORKERS:-2}"
LOGS_METRICS_PORT="${LOGS_METRICS_PORT:-9100}"
WORKER_METRICS_PORT="${WORKER_METRICS_PORT:-9101}"  # worker i serves WORKER_METRICS_PORT + i - 1
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
RABBITMQ_DIST_PORT="${RABBITMQ_DIST_PORT:-25690}"
EPMD_PORT="${EPMD_PORT:-4390}"
RABBITMQ_NODE="imagescan-$RABBITMQ_PORT@localhost"
RABBITMQ_BIN=/usr/lib/rabbitmq/bin

say() { printf 'imagescan: %s\n' "$*"; }
die() { printf 'imagescan: error: %s\n' "$*" >&2; exit 1; }

running() {  # running PID: the process exists and is not a zombie waiting to be reaped
  kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

alive() {  # alive PIDFILE: the process named in the file is running
  [ -s "$1" ] && running "$(cat "$1")"
}

# Run from the broker's own directory: a node that dies writes its MnesiaCore dump in its cwd.
# (A subshell, so the caller's working directory stays as it was.)
rabbit_env() (
  mkdir -p "$state/rabbitmq"
  cd "$state/rabbitmq" && exec env HOME="$state/rabbitmq" ERL_EPMD_PORT="$EPMD_PORT" \
    RABBITMQ_NODENAME="$RABBITMQ_NODE" RABBITMQ_NODE_PORT="$RABBITMQ_PORT" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT" \
    RABBITMQ_MNESIA_BASE="$state/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$state/rabbitmq/log" \
    RABBITMQ_PID_FILE="$state/rabbitmq.pid" RABBITMQ_ENABLED_PLUGINS_FILE="$state/rabbitmq/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$state/rabbitmq/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$state/rabbitmq/advanced.config" \
    "$@"
)

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

install() {
  # What `make venv` itself needs on a bare Debian: make, and a Python that can make a venv.
  command -v make >/dev/null || apt_install make
  command -v python3 >/dev/null || apt_install python3
  python3 -c "import venv, ensurepip" 2>/dev/null || apt_install python3-venv
  say "checking Debian packages and the virtualenv (make venv; log: $state/install.log)"
  if ! make -C "$root" --no-print-directory venv >"$state/install.log" 2>&1; then
    tail -20 "$state/install.log" >&2
    die "installation failed; see $state/install.log"
  fi
}

start_redis() {
  if alive "$state/redis.pid"; then say "redis already running on $REDIS_PORT"; return; fi
  mkdir -p "$state/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$state/redis" \
    --appendonly yes --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log" \
    --save ""
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  say "redis on 127.0.0.1:$REDIS_PORT (data in $state/redis)"
}

start_rabbitmq() {
  if alive "$state/rabbitmq.pid"; then say "rabbitmq already running on $RABBITMQ_PORT"; return; fi
  mkdir -p "$state/rabbitmq/mnesia" "$state/rabbitmq/log"
  echo "[]." > "$state/rabbitmq/enabled_plugins"
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$RABBITMQ_PORT" \
    > "$state/rabbitmq/rabbitmq.conf"
  echo "[]." > "$state/rabbitmq/advanced.config"
  rabbit_env "$RABBITMQ_BIN/rabbitmq-server" -detached
  if ! rabbit_env timeout 120 "$RABBITMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODE" wait "$state/rabbitmq.pid" >/dev/null; then
    die "rabbitmq did not start; see $state/rabbitmq/log"
  fi
  say "rabbitmq on 127.0.0.1:$RABBITMQ_PORT (data in $state/rabbitmq)"
}

start_service() {  # start_service NAME COMMAND...: a background process with a pid file and log
  local name="$1"; shift
  if alive "$state/$name.pid"; then say "$name already running"; return; fi
  nohup "$@" >>"$state/$name.log" 2>&1 &
  echo $! > "$state/$name.pid"
  say "$name started (log: $state/$name.log)"
}

ready() {  # ready URL: it answers 200 (Python, not curl: a bare Debian has no curl)
  "$venv/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
}

wait_ready() {
  local url="http://127.0.0.1:$PORT/readyz"
  for _ in $(seq 120); do
    if ready "$url"; then return 0; fi
    sleep 0.5
  done
  die "the REST service is not ready at $url; see $state/rest.log"
}

metrics_targets() {  # metrics_targets: "job host:port" per service serving /metrics
  echo "rest 127.0.0.1:$PORT"
  for i in $(seq "$WORKERS"); do echo "worker 127.0.0.1:$((WORKER_METRICS_PORT + i - 1))"; done
  echo "logs 127.0.0.1:$LOGS_METRICS_PORT"
}

start_prometheus() {  # Debian's prometheus scraping every service, with the stack's alert rules
  local dir="$state/prometheus"
  mkdir -p "$dir"
  # shellcheck disable=SC2046  # one argument per "job=host:port"
  "$venv/bin/python" - "$root/k8s/components/monitoring/prometheus-rules.yaml" "$dir" \
    $(metrics_targets | tr ' ' '=') <<'PY'
import sys, yaml
rules, out, *targets = sys.argv[1:]
with open(f"{out}/alerts.yml", "w") as alerts:
    yaml.safe_dump(yaml.safe_load(open(rules))["spec"], alerts)
jobs = {}
for item in targets:
    job, target = item.split("=", 1)
    jobs.setdefault(job, []).append(target)
config = {"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}, "rule_files": ["alerts.yml"],
          "scrape_configs": [{"job_name": job, "static_configs": [{"targets": found}]} for job, found in jobs.items()]}
with open(f"{out}/prometheus.yml", "w") as output:
    yaml.safe_dump(config, output)
PY
  start_service prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
}

up() {
  mkdir -p "$state"
  install
  start_redis
  start_rabbitmq
  METRICS_PORT="$LOGS_METRICS_PORT" start_service logs "$venv/bin/python" -m logs
  start_service rest "$venv/bin/python" -m rest
  for i in $(seq "$WORKERS"); do
    WORKER_HEALTH_FILE="$state/worker-$i.alive" METRICS_PORT="$((WORKER_METRICS_PORT + i - 1))" \
      start_service "worker-$i" "$venv/bin/python" -m worker
  done
  if [ "$with_prometheus" = 1 ]; then start_prometheus; fi
  wait_ready
  say "ready: http://localhost:$PORT  (try: ./rest-client.py upload some.jpg; logs: tail -f $state/logs.log)"
  say "metrics: $(metrics_targets | awk '{printf "%s%s http://%s/metrics", sep, $1, $2; sep = ", "}')"
  if [ "$with_prometheus" = 1 ]; then say "prometheus: http://localhost:$PROMETHEUS_PORT (alerts: /alerts)"; fi
}

stop_pidfile() {  # stop_pidfile NAME: TERM, wait up to 30 s, then KILL
  local file="$state/$1.pid"
  alive "$file" || { rm -f "$file"; return 0; }
  local pid; pid="$(cat "$file")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do running "$pid" || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$file"
  say "$1 stopped"
}

down() {
  mkdir -p "$state"
  for file in "$state"/worker-*.pid; do [ -e "$file" ] && stop_pidfile "$(basename "$file" .pid)"; done
  stop_pidfile prometheus
  stop_pidfile rest
  stop_pidfile logs
  if alive "$state/rabbitmq.pid"; then
    rabbit_env "$RABBITMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODE" stop "$state/rabbitmq.pid" >/dev/null 2>&1 \
      || stop_pidfile rabbitmq
    say "rabbitmq stopped"
  fi
  rm -f "$state/rabbitmq.pid"
  rabbit_env epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
  if alive "$state/redis.pid"; then
    redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || stop_pidfile redis
    say "redis stopped"
  fi
  rm -f "$state/redis.pid"
}

status() {
  local name
  for file in "$state"/*.pid; do
    [ -e "$file" ] || continue
    name="$(basename "$file" .pid)"
    if alive "$file"; then echo "$name: running (pid $(cat "$file"))"; else echo "$name: stopped"; fi
  done
}

action=up
with_prometheus=0
for arg in "$@"; do
  case "$arg" in
    up | down | status) action="$arg" ;;
    --with-prometheus) with_prometheus=1 ;;
    *) die "usage: deploy-all.sh local [up [--with-prometheus]|down|status]" ;;
  esac
done
"$action"
