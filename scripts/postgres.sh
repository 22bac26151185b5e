#!/usr/bin/env bash
# Throwaway Postgres 15 for tests and benchmarks.
#   scripts/postgres.sh start DIR [PORT]  -> prints the DSN on stdout
#   scripts/postgres.sh stop DIR
# The server refuses to run as root, so it runs as the `postgres` OS user.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  else
    echo "postgres is not installed (apt-get install postgresql)" >&2; exit 1
  fi
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
  start)
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    mkdir -p "$dir"; [ "$(id -u)" = 0 ] && chown postgres: "$dir"; chmod 755 "$dir"
    cd "$dir"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    printf "listen_addresses='127.0.0.1'\nport=%s\nunix_socket_directories='%s'\nmax_connections=300\n%s\n" \
      "$port" "$dir" "${PG_EXTRA_CONF:-}" >> "$dir/data/postgresql.conf"
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    cd "$dir" && as_pg "$PGBIN/pg_ctl" -D "$dir/data" stop -m fast >/dev/null || true
    ;;
  restart)
    cd "$dir" && as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w restart -m fast >/dev/null
    ;;
  *) echo "unknown command $cmd" >&2; exit 2;;
esac
