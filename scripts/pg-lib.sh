# Shared functions of the database test rig (sourced by scripts/test.sh and scripts/pg.sh).
# Facts and pitfalls behind each step: shared/rig.md.
# shellcheck shell=bash

rig_log() { echo "[rig] $*" >&2; }

# Run a command as root: directly when we are root, through sudo otherwise.
rig_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    rig_log "need root to run: $* (no sudo found)"
    return 1
  fi
}

# The PostgreSQL server binaries (initdb, pg_ctl, postgres), newest major version first.
rig_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -rn); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

# Install the Debian packages the rig needs, only when something is missing.
rig_ensure_packages() {
  local missing=()
  local p
  for p in unixodbc unixodbc-dev odbc-postgresql; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  rig_pg_bindir >/dev/null || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  rig_log "installing ${missing[*]}"
  rig_as_root apt-get update -qq
  rig_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    unixodbc unixodbc-dev odbc-postgresql postgresql postgresql-client >/dev/null
}

# The absolute path of the psqlODBC Unicode driver.
rig_psqlodbc_path() {
  local p
  p=$(dpkg -L odbc-postgresql 2>/dev/null | grep '/psqlodbcw\.so$' | head -n 1)
  if [ -z "$p" ]; then
    p=$(odbcinst -q -d -n "PostgreSQL Unicode" 2>/dev/null | sed -n 's/^Driver=//p' | head -n 1)
    case "$p" in /*) ;; ?*) p="/usr/lib/$(uname -m)-linux-gnu/odbc/$p" ;; esac
  fi
  [ -n "$p" ] && [ -f "$p" ] || { rig_log "psqlODBC driver (psqlodbcw.so) not found"; return 1; }
  echo "$p"
}

# A private odbcinst.ini without psqlODBC's communication log (rig.md pitfall 2).
# Usage: rig_write_odbcinst DIR   (then export ODBCSYSINI=DIR)
rig_write_odbcinst() {
  local dir=$1 driver
  driver=$(rig_psqlodbc_path) || return 1
  cat >"$dir/odbcinst.ini" <<INI
[ODBC]
Trace=No

[PostgreSQL Unicode]
Description=PostgreSQL ODBC driver (Unicode), bplmigrate test rig
Driver=$driver
Debug=0
CommLog=0
UsageCount=1
INI
  : >"$dir/odbc.ini"
}

# Run a command as the server's owner: `postgres` when we are root (the server refuses root).
rig_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A port nothing listens on (loopback), or nothing when none was found.
rig_free_port() {
  local port i
  for i in $(seq 1 50); do
    port=$((20000 + (RANDOM * 7 + i) % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Create a cluster in DIR/data and start it on a free loopback port; writes DIR/port and
# DIR/connect (the ODBC connection string of a fresh role and database).
# Usage: rig_pg_start DIR
rig_pg_start() {
  local dir=$1 bin data port pass try
  bin=$(rig_pg_bindir) || { rig_log "PostgreSQL server binaries not found"; return 1; }
  data="$dir/data"
  mkdir -p "$data"
  chmod 700 "$data"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$dir"
    chown postgres: "$data"
  fi
  rig_as_pg "$bin/initdb" --no-sync -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  for try in 1 2 3 4 5; do
    port=$(rig_free_port) || { rig_log "no free port"; return 1; }
    if rig_as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 2>&1; then
      break
    fi
    rig_log "start on port $port failed (try $try):"
    tail -n 5 "$data/server.log" >&2 || true
    port=""
  done
  [ -n "$port" ] || return 1
  echo "$port" >"$dir/port"
  pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  rig_as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE bplm_test LOGIN CREATEDB PASSWORD '$pass'" \
    -c "CREATE DATABASE bplm_test OWNER bplm_test" >/dev/null || return 1
  echo "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=$port;Database=bplm_test;Uid=bplm_test;Pwd=$pass;" \
    >"$dir/connect"
  chmod 600 "$dir/connect"
  rig_log "PostgreSQL $(basename "$(dirname "$bin")") on 127.0.0.1:$port, data in $data"
}

# Stop the server of DIR (if running). Usage: rig_pg_stop DIR
rig_pg_stop() {
  local dir=$1 bin
  bin=$(rig_pg_bindir) || return 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    rig_as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
}
