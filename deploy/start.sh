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

main=$$
supervisors=""

# supervise NAME COMMAND...: COMMAND in a session of its own, its output in
# logs/NAME.log, its pid in pids/NAME.pid, restarted when it dies, until this script
# stops or is gone. What is left of its process group when it ends (an nginx worker, a
# worker pool's forked process) is killed first, so the restart finds its port free and
# no second pool runs beside the new one. A quick death waits longer each time (2 s up
# to a minute), so a taken port is not retried in a tight loop.
supervise() {
    local name=$1
    shift
    (
        stopping=0
        trap 'stopping=1' TERM
        trap '' INT HUP PIPE
        delay=2
        while [ "$stopping" = 0 ]; do
            started=$(date +%s)
            setsid "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null &
            child=$!
            echo "$child" >"$dir/pids/$name.pid"
            status=""
            while [ -z "$status" ]; do
                # Checked every second, not only on a signal: a SIGKILLed script cannot
                # say goodbye, and a TERM arriving just before `child=$!` is not lost.
                if [ "$stopping" = 1 ] || ! kill -0 "$main" 2>/dev/null; then
                    stopping=1
                    kill -TERM -- "-$child" 2>/dev/null || true
                fi
                sleep 1 &
                finished=""
                code=0
                wait -n -p finished "$child" $! || code=$?
                # An interrupted wait leaves `finished` unset.
                [ "${finished:-}" != "$child" ] || status=$code
            done
            kill -KILL -- "-$child" 2>/dev/null || true
            [ "$stopping" = 0 ] || break
            if [ $(($(date +%s) - started)) -ge 60 ]; then delay=2; fi
            echo "$(date '+%F %T') $name stopped (exit $status), restarting in $delay s;" \
                "see $dir/logs/$name.log" >&2 || true
            sleep "$delay" &
            wait $! || true
            delay=$((delay * 2 > 60 ? 60 : delay * 2))
        done
    ) &
    supervisors="$supervisors $!"
}

stop_all() {
    trap '' TERM INT HUP
    for supervisor in $supervisors; do
        kill -TERM "$supervisor" 2>/dev/null || true
    done
    echo "Stopping..." || true
    wait
    exit 0
}
# A closed terminal or pipe (`start.sh | tee log`, then Ctrl-C) must not kill this script
# before it has stopped what it started.
trap '' PIPE
trap stop_all TERM INT HUP

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

# Ready when nginx accepts connections (bash's /dev/tcp; listen is PORT or HOST:PORT).
case $listen in
*:*) host=${listen%:*} port=${listen##*:} ;;
*) host=127.0.0.1 port=$listen ;;
esac
ready=0
for _ in $(seq 60); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 1
done
if [ "$ready" = 1 ]; then
    echo "KGI-Infobrief runs behind nginx on $listen (logs in $dir/logs); Ctrl-C stops it."
else
    echo "nginx does not answer on $listen after a minute; see $dir/logs/nginx.log." \
        "Still trying; Ctrl-C stops everything." >&2
fi
wait || true
echo "Every supervisor has ended; stopping." >&2
exit 1
