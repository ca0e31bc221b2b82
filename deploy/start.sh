#!/usr/bin/env bash
# The production shape on one machine, without Docker: what docker-compose.yml runs, as
# processes. The databases are migrated first (retried while PostgreSQL is still coming
# up); then every part with pages runs as its own `kgi serve` on loopback, the worker
# pools and the scheduler start, and nginx (configured by `kgi proxy-config`) serves
# them all on one address, caching feeds. Every process is restarted when it dies, as
# compose's `restart: unless-stopped` does; SIGTERM or Ctrl-C stops them all.
#
#   KGI_ENV_FILE=/etc/kgi/production.env deploy/start.sh
#
# PostgreSQL and Redis run beside it (system services, or managed ones) at the URLs the
# environment names, with the settings of the README's production section. The tests'
# production-shape run (tests/test_production_shape.py) uses this script as it is.
#
# Settings of this script, [default]:
#   KGI_ENV_FILE          a file of KGI_* assignments to read first [none]
#   KGI_DEPLOY_DIR        nginx.conf, its cache, pid files and logs [./var/deploy]
#   KGI_PROXY_LISTEN      where nginx listens [127.0.0.1:8080]
#   KGI_SERVICE_PORT      the first of the loopback ports of the `kgi serve` processes [8100]
#   KGI_WORKER_POOLS      worker pools, each `kgi worker` [2]
#   KGI_WORKER_PROCESSES  processes per worker pool [2]
#   KGI_COMMAND           how to run kgi, e.g. `.venv/bin/kgi` [kgi]
#   NGINX                 the nginx program [nginx on the PATH, else /usr/sbin/nginx]
set -eu

if [ -n "${KGI_ENV_FILE:-}" ]; then
    set -a
    # shellcheck disable=SC1090
    . "$KGI_ENV_FILE"
    set +a
fi
mkdir -p "${KGI_DEPLOY_DIR:-var/deploy}"
dir=$(cd "${KGI_DEPLOY_DIR:-var/deploy}" && pwd)
listen=${KGI_PROXY_LISTEN:-127.0.0.1:8080}
first_port=${KGI_SERVICE_PORT:-8100}
pools=${KGI_WORKER_POOLS:-2}
processes=${KGI_WORKER_PROCESSES:-2}
kgi=${KGI_COMMAND:-kgi}
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
export KGI_ENV=${KGI_ENV:-production}
# Only nginx, on this machine, may tell the services who the client is.
export KGI_TRUSTED_PROXY=127.0.0.1
mkdir -p "$dir/logs" "$dir/pids" "$dir/nginx"

if [ ! -x "$nginx" ]; then
    echo "nginx is missing: install it (Debian: apt-get install nginx) or set NGINX" >&2
    exit 1
fi

# Like compose's gate: nothing starts before every database is at its newest migration.
echo "Migrating the databases ($dir/logs/migrate.log)"
tries=0
until $kgi migrate >>"$dir/logs/migrate.log" 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 15 ]; then
        tail -n 20 "$dir/logs/migrate.log" >&2
        echo "kgi migrate failed $tries times; nothing was started." >&2
        exit 1
    fi
    sleep 2
done

supervisors=""

# supervise NAME COMMAND...: COMMAND in a session of its own (a signal to its process
# group reaches a worker pool's forked processes too), its output in logs/NAME.log, its
# pid in pids/NAME.pid; restarted two seconds after it dies, until this script stops.
supervise() {
    local name=$1
    shift
    (
        stopping=0
        child=""
        trap 'stopping=1; [ -z "$child" ] || kill -TERM -- "-$child" 2>/dev/null || true' TERM
        while [ "$stopping" = 0 ]; do
            setsid "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null &
            child=$!
            echo "$child" >"$dir/pids/$name.pid"
            status=0
            wait "$child" || status=$?
            # A signal ends `wait` early; the child is still shutting down.
            while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
            [ "$stopping" = 0 ] || break
            echo "$(date '+%F %T') $name stopped (exit $status), restarting; see $dir/logs/$name.log" >&2
            sleep 2
        done
    ) &
    supervisors="$supervisors $!"
}

stop_all() {
    trap - TERM INT
    echo "Stopping..."
    for supervisor in $supervisors; do
        kill -TERM "$supervisor" 2>/dev/null || true
    done
    wait
    exit 0
}
trap stop_all TERM INT

parts=$($kgi parts)
upstreams=""
port=$first_port
for part in $parts; do
    upstreams="$upstreams --upstream $part=http://127.0.0.1:$port"
    # The services call each other directly, not through nginx (KGI_SUBSCRIBERS_URL...).
    export "KGI_$(echo "$part" | tr '[:lower:]' '[:upper:]')_URL=http://127.0.0.1:$port"
    port=$((port + 1))
done
port=$first_port
for part in $parts; do
    supervise "serve-$part" $kgi serve "$part" --host 127.0.0.1 --port "$port"
    port=$((port + 1))
done
for pool in $(seq 1 "$pools"); do
    supervise "worker-$pool" $kgi worker --processes "$processes"
done
supervise scheduler $kgi scheduler
# shellcheck disable=SC2086
$kgi proxy-config $upstreams --listen "$listen" --standalone "$dir/nginx" \
    --output "$dir/nginx/nginx.conf"
supervise nginx "$nginx" -e stderr -p "$dir/nginx" -c "$dir/nginx/nginx.conf"

echo "KGI-Infobrief runs behind nginx on $listen (logs in $dir/logs); Ctrl-C stops it."
wait
