#!/bin/sh
# Like the official postgres image's entrypoint, in a few lines: as root, make the
# directories and drop to the postgres user (setpriv, from util-linux); as postgres,
# initialise the data directory when it is empty (a temporary server on the Unix socket
# only runs the init SQL), then exec the server listening on TCP.
set -eu

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 2775 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    psql -v ON_ERROR_STOP=1 --username=postgres --no-psqlrc \
        -c "CREATE DATABASE app" -c "CREATE TABLE greeting (word text)" \
        -c "INSERT INTO greeting VALUES ('hello')"
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "entrypoint: database initialised"
fi

exec "$@" -c listen_addresses='*'
