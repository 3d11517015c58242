#!/usr/bin/env bash
# Throwaway PostgreSQL server for revy's tests, benchmarks and development.
#
#   scripts/postgres.sh start    start the server (idempotent), creating the cluster,
#                                the `revy` role and the `revy` database if missing
#   scripts/postgres.sh stop     stop the server (the data is kept)
#   scripts/postgres.sh status   say whether it runs (exit 0) or not (exit 3)
#   scripts/postgres.sh env      print `export` lines: eval "$(scripts/postgres.sh env)"
#   scripts/postgres.sh psql ... run psql against the server as `revy`
#   scripts/postgres.sh destroy  stop the server and delete its data
#
# Environment:
#   REVY_PG_PORT=54329   TCP port (the server listens on 127.0.0.1 only)
#   REVY_PG_DURABLE=1    keep PostgreSQL's default durability settings; otherwise the
#                        server runs with fsync, synchronous_commit and
#                        full_page_writes off. A running server started with the other
#                        setting is restarted by `start`.
#   REVY_PG_OS_USER=postgres  system user that runs the server when this script runs as
#                        root (created with `useradd --system` if missing)
#
# The cluster lives in .pgdata/ in the project (or, when the `postgres` user can't reach
# the project directory, in /tmp/revy-pg-<hash of the project path>/). Authentication is
# `trust`: the server is for local throwaway use only. As root, the server runs as the
# `postgres` system user (PostgreSQL refuses to run as root); otherwise as the current user.
set -euo pipefail

PORT="${REVY_PG_PORT:-54329}"
DURABLE="${REVY_PG_DURABLE:-0}"
DB_NAME=revy
DB_USER=revy
SUPERUSER=postgres # bootstrap superuser name given to initdb, whoever runs the server
PG_OS_USER="${REVY_PG_OS_USER:-postgres}" # the server's OS user when run as root

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    # the comment block at the top of this file
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

[[ "$PORT" =~ ^[0-9]+$ ]] || die "REVY_PG_PORT must be a number, got '$PORT'"

# ---------------------------------------------------------------------------------------
# Who runs the server
# ---------------------------------------------------------------------------------------
if is_root; then
    RUN_USER="$PG_OS_USER"
else
    RUN_USER="$(id -un)"
fi

# Run a command as the server's OS user, from / (the caller's directory may be unreadable
# to that user).
as_pg() {
    if is_root; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$PG_OS_USER" -- "$@")
        else
            local quoted
            printf -v quoted '%q ' "$@"
            (cd / && su -s /bin/sh "$PG_OS_USER" -c "$quoted")
        fi
    else
        (cd / && "$@")
    fi
}

ensure_pg_user() {
    is_root || return 0
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        log "creating system user '$PG_OS_USER'"
        local nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/bin/false
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell "$nologin" "$PG_OS_USER" ||
            die "could not create the '$PG_OS_USER' system user"
    fi
}

# ---------------------------------------------------------------------------------------
# Server binaries
# ---------------------------------------------------------------------------------------
has_server_bins() {
    [ -n "$1" ] && [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]
}

find_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        # Debian's pg_config may come from libpq-dev without any server installed.
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if has_server_bins "$dir"; then
            echo "$dir"
            return 0
        fi
    fi
    # Highest installed major version first.
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -rn); do
        if has_server_bins "$dir"; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dir="$(dirname "$(command -v pg_ctl)")"
        if has_server_bins "$dir"; then
            echo "$dir"
            return 0
        fi
    fi
    return 1
}

install_postgresql() {
    log "PostgreSQL server binaries not found; installing Debian's 'postgresql' package"
    # Don't let the package create and start its own 'main' cluster on port 5432: this
    # script runs its own. Only written when the file doesn't exist yet; dpkg is told to
    # keep it.
    local conf=/etc/postgresql-common/createcluster.conf
    if [ ! -e "$conf" ]; then
        mkdir -p "$(dirname "$conf")"
        printf '# Written by revy scripts/postgres.sh: no default cluster.\ncreate_main_cluster = false\n' >"$conf"
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        postgresql
}

resolve_bindir() {
    if BINDIR="$(find_bindir)"; then
        return 0
    fi
    if is_root && command -v apt-get >/dev/null 2>&1; then
        install_postgresql || die "installing PostgreSQL with apt-get failed"
        if BINDIR="$(find_bindir)"; then
            return 0
        fi
    fi
    die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found.
  Install them, e.g. on Debian/Ubuntu:  sudo apt-get install postgresql
  on macOS (Homebrew):                  brew install postgresql
  or put a directory holding initdb and pg_ctl on PATH (or pg_config there)."
}

# ---------------------------------------------------------------------------------------
# Where the cluster lives
# ---------------------------------------------------------------------------------------
path_hash() {
    if command -v sha256sum >/dev/null 2>&1; then
        printf '%s' "$PROJECT" | sha256sum | cut -c1-12
    else
        printf '%s' "$PROJECT" | cksum | cut -d' ' -f1
    fi
}

LOCAL_STATE="$PROJECT/.pgdata"
TMP_STATE="/tmp/revy-pg-$(path_hash)"

# The state directory holds data/ (the cluster), run/ (the unix socket) and server.log.
# An existing cluster wins; otherwise the project directory if the server user can use it.
pick_state_dir() {
    if [ -f "$LOCAL_STATE/data/PG_VERSION" ]; then
        STATE="$LOCAL_STATE"
    elif [ -f "$TMP_STATE/data/PG_VERSION" ]; then
        STATE="$TMP_STATE"
    else
        STATE="$LOCAL_STATE"
    fi
    set_paths
}

set_paths() {
    DATA="$STATE/data"
    SOCKDIR="$STATE/run"
    LOGFILE="$STATE/server.log"
}

# unix socket paths are limited to 107 bytes
socket_path_ok() {
    [ "${#1}" -le 100 ]
}

# Create the state directory owned by the server user; 0 if the server user can use it.
prepare_state_dir() {
    local dir="$1"
    mkdir -p "$dir" 2>/dev/null || return 1
    chmod 700 "$dir" 2>/dev/null || true
    if is_root; then
        # Fix ownership of anything left by another user (e.g. a run as non-root).
        find "$dir" ! -user "$PG_OS_USER" -exec chown "$PG_OS_USER:" {} + 2>/dev/null || return 1
    fi
    as_pg test -r "$dir" -a -w "$dir" -a -x "$dir"
}

choose_and_prepare_state_dir() {
    pick_state_dir
    if [ "$STATE" = "$LOCAL_STATE" ] && [ ! -f "$DATA/PG_VERSION" ]; then
        # New cluster: use the project only if the server user can get there and the
        # socket path is short enough.
        if ! socket_path_ok "$LOCAL_STATE/run/.s.PGSQL.$PORT" ||
            ! as_pg test -x "$PROJECT" || ! prepare_state_dir "$LOCAL_STATE"; then
            log "using $TMP_STATE (the project directory is not usable by user '$RUN_USER')"
            rmdir "$LOCAL_STATE" 2>/dev/null || true
            STATE="$TMP_STATE"
            set_paths
        fi
    fi
    prepare_state_dir "$STATE" || die "user '$RUN_USER' cannot use $STATE"
    mkdir -p "$SOCKDIR"
    chmod 700 "$SOCKDIR"
    is_root && chown "$PG_OS_USER:" "$SOCKDIR"
    socket_path_ok "$SOCKDIR/.s.PGSQL.$PORT" || die "socket path too long: $SOCKDIR"
}

# ---------------------------------------------------------------------------------------
# Server control
# ---------------------------------------------------------------------------------------
server_options() {
    local opts="-c listen_addresses=127.0.0.1 -c port=$PORT"
    opts+=" -c unix_socket_directories='$SOCKDIR' -c unix_socket_permissions=0777"
    if [ "$DURABLE" != 1 ]; then
        opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    echo "$opts"
}

is_running() {
    [ -f "$DATA/PG_VERSION" ] && as_pg "$BINDIR/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# psql as the bootstrap superuser over the unix socket
su_psql() {
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U "$SUPERUSER" "$@"
}

show_log_tail() {
    if [ -f "$LOGFILE" ]; then
        log "last lines of $LOGFILE:"
        tail -n 40 "$LOGFILE" >&2 || true
    fi
}

# 0 if the running server has the wanted port, socket directory and durability
running_config_matches() {
    local port fsync
    port="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)"
    [ "$port" = "$PORT" ] || return 1
    fsync="$(su_psql -d postgres -At -c 'SHOW fsync' 2>/dev/null)" || return 1
    if [ "$DURABLE" = 1 ]; then [ "$fsync" = on ]; else [ "$fsync" = off ]; fi
}

# e.g. 15.18 from "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
server_version() {
    "$BINDIR/postgres" --version | sed -E 's/^[^0-9]*([0-9]+(\.[0-9]+)?).*/\1/'
}

init_cluster() {
    local major
    if [ -f "$DATA/PG_VERSION" ]; then
        major="$(server_version | cut -d. -f1)"
        if [ "$(cat "$DATA/PG_VERSION")" != "$major" ]; then
            log "cluster in $DATA is from PostgreSQL $(cat "$DATA/PG_VERSION"), server is $major: recreating it"
            rm -rf "$DATA"
        else
            return 0
        fi
    fi
    log "initialising a new cluster in $DATA"
    rm -rf "$DATA"
    if ! as_pg "$BINDIR/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$STATE/initdb.log" 2>&1; then
        # Very old glibc without C.UTF-8: fall back to plain C.
        if ! as_pg "$BINDIR/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust \
            --encoding=UTF8 --locale=C >"$STATE/initdb.log" 2>&1; then
            cat "$STATE/initdb.log" >&2
            die "initdb failed"
        fi
    fi
}

wait_ready() {
    local _
    for _ in $(seq 1 120); do
        if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U "$SUPERUSER"; then
            return 0
        fi
        if ! is_running; then
            break
        fi
        sleep 0.5
    done
    return 1
}

create_role_and_db() {
    su_psql -d postgres <<SQL
SELECT 'CREATE ROLE $DB_USER LOGIN SUPERUSER'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') \\gexec
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \\gexec
SQL
}

cmd_start() {
    resolve_bindir
    ensure_pg_user
    choose_and_prepare_state_dir
    init_cluster
    if is_running; then
        if running_config_matches; then
            log "already running (port $PORT, data $DATA)"
            create_role_and_db
            return 0
        fi
        log "running with other settings (port or REVY_PG_DURABLE changed): restarting"
        as_pg "$BINDIR/pg_ctl" stop -D "$DATA" -m fast -w >/dev/null
    fi
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1; then
        die "another PostgreSQL server already listens on 127.0.0.1:$PORT (not this project's,
  $DATA). Stop it, or pick another port: export REVY_PG_PORT=<port>"
    fi
    local mode="fast (fsync off)"
    [ "$DURABLE" = 1 ] && mode="durable"
    log "starting PostgreSQL $(server_version) on 127.0.0.1:$PORT, $mode, data $DATA"
    if ! as_pg "$BINDIR/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t 60 \
        -o "$(server_options)" >/dev/null; then
        show_log_tail
        die "the server did not start"
    fi
    if ! wait_ready; then
        show_log_tail
        die "the server does not accept connections on 127.0.0.1:$PORT"
    fi
    create_role_and_db
    log "ready: eval \"\$(scripts/postgres.sh env)\""
}

# For commands that don't start anything: locate an existing cluster, no side effects.
locate_existing() {
    pick_state_dir
    if ! BINDIR="$(find_bindir)"; then
        BINDIR=""
    fi
}

cmd_stop() {
    locate_existing
    if [ -z "$BINDIR" ] || [ ! -f "$DATA/PG_VERSION" ]; then
        log "not running (no cluster)"
        return 0
    fi
    if is_running; then
        as_pg "$BINDIR/pg_ctl" stop -D "$DATA" -m fast -w >/dev/null
        log "stopped"
    else
        log "not running"
    fi
}

cmd_status() {
    locate_existing
    if [ -n "$BINDIR" ] && is_running; then
        echo "running: 127.0.0.1:$(sed -n 4p "$DATA/postmaster.pid"), pid $(head -n1 "$DATA/postmaster.pid"), data $DATA"
        return 0
    fi
    echo "not running (data: $DATA)"
    return 3
}

cmd_env() {
    cat <<EOF
export REVY_DB=postgres
export PGHOST=127.0.0.1
export PGPORT=$PORT
export PGUSER=$DB_USER
export PGDATABASE=$DB_NAME
EOF
}

cmd_psql() {
    locate_existing
    local psql=psql
    [ -n "$BINDIR" ] && [ -x "$BINDIR/psql" ] && psql="$BINDIR/psql"
    exec "$psql" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" "$@"
}

cmd_destroy() {
    cmd_stop
    local dir
    for dir in "$LOCAL_STATE" "$TMP_STATE"; do
        if [ -d "$dir" ]; then
            rm -rf "$dir"
            log "deleted $dir"
        fi
    done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
psql)
    shift
    cmd_psql "$@"
    ;;
destroy) cmd_destroy ;;
-h | --help | help)
    usage
    ;;
*)
    usage
    exit 2
    ;;
esac
