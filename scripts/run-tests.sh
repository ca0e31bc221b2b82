#!/bin/sh
# The whole suite once per database, the runs side by side: SQLite (the embedded default)
# and PostgreSQL (production; the tests start a throwaway cluster of their own). Each run
# has its own Redis, SMTP server, site and data folder, so they do not meet. Most of a
# run is waiting on real servers, so two cores carry both in about the time of one.
#
#   sh scripts/run-tests.sh .venv [pytest arguments...]
#
# KGI_TEST_DATABASES="sqlite" (or "postgresql") runs only that one. The first database's
# run prints as it goes; the others print when they end. Fails when any run fails.
set -u
venv=$1
shift
databases=${KGI_TEST_DATABASES:-sqlite postgresql}
logs=$(mktemp -d)
first=""
pids=""
for database in $databases; do
    if [ -z "$first" ]; then
        first=$database
        continue
    fi
    # No pytest cache for the runs beside the first: one writer per folder.
    KGI_TEST_DATABASE=$database "$venv/bin/python" -m pytest -p no:cacheprovider "$@" \
        >"$logs/$database.log" 2>&1 &
    pids="$pids $database:$!"
done
start=$(date +%s)
KGI_TEST_DATABASE=$first "$venv/bin/python" -m pytest "$@"
status=$?
summary="$first: exit $status after $(($(date +%s) - start)) s"
for entry in $pids; do
    database=${entry%%:*}
    wait "${entry#*:}"
    code=$?
    echo
    echo "======================== the suite on $database ========================"
    cat "$logs/$database.log"
    summary="$summary; $database: exit $code after $(($(date +%s) - start)) s"
    [ "$code" -eq 0 ] || status=$code
done
rm -rf "$logs"
echo "$summary"
exit "$status"
