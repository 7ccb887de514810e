#!/bin/sh
# Runs a throw-away RabbitMQ node (Debian's rabbitmq-server) on loopback,
# as a plain background process with its own node name and state directory.
# No systemd, no root needed.
#
#   xtask/scripts/rabbitmq.sh start|stop|status|ctl ARGS...
#
# Environment:
#   OM_RMQ_DIR   state directory (required; created on start)
#   OM_RMQ_PORT  AMQP port (default 35672); Erlang distribution uses PORT+20000,
#                and the CLI tools (rabbitmqctl) PORT+11000 to PORT+11010.
set -eu
: "${OM_RMQ_DIR:?set OM_RMQ_DIR to a scratch directory}"
port=${OM_RMQ_PORT:-35672}
bin=/usr/lib/rabbitmq/bin   # the /usr/sbin wrappers switch to the rabbitmq user
if [ ! -x "$bin/rabbitmq-server" ]; then
  echo "rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
  exit 3
fi
mkdir -p "$OM_RMQ_DIR"
dir=$(cd "$OM_RMQ_DIR" && pwd)
export HOME="$dir/home"                       # holds the Erlang cookie
export RABBITMQ_CONF_ENV_FILE=/dev/null
export RABBITMQ_NODENAME="om$port@localhost"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$port"
export RABBITMQ_DIST_PORT=$((port + 20000))
# The CLI tools start their own Erlang node, which takes a distribution port
# from 35672-35682 unless told otherwise: the very range of our AMQP ports.
# `rabbitmqctl wait` then races the server for its listener (eaddrinuse).
export RABBITMQ_CTL_DIST_PORT_MIN=$((port + 11000))
export RABBITMQ_CTL_DIST_PORT_MAX=$((port + 11010))
export RABBITMQ_MNESIA_BASE="$dir/mnesia"
export RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_PID_FILE="$dir/rabbit.pid"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
case "${1:-}" in
start)
  mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
  echo '[rabbitmq_amqp1_0].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$port" > "$dir/rabbitmq.conf"
  "$bin/rabbitmq-server" -detached
  "$bin/rabbitmqctl" -q wait --timeout 120 "$RABBITMQ_PID_FILE"
  ;;
stop)
  "$bin/rabbitmqctl" -q shutdown || true
  ;;
status)
  "$bin/rabbitmqctl" -q status >/dev/null
  ;;
ctl)
  shift
  exec "$bin/rabbitmqctl" "$@"
  ;;
*)
  echo "usage: $0 start|stop|status|ctl ARGS..." >&2
  exit 2
  ;;
esac
