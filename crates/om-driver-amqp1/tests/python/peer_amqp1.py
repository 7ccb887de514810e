#!/usr/bin/env python3
"""Python oslo.messaging 14.9.3 AMQP 1.0 peer for om's interop tests.

14.9.x is the last oslo.messaging series that ships the `amqp://` driver
(oslo_messaging/_drivers/impl_amqp1.py, on pyngus and python-qpid-proton).
This script runs that real driver, unmodified, against a given amqp:// URL
(the tests point it at the in-process router fixture of
tests/support/router.rs), in one of these modes. Each prints JSON lines on
stdout; the long-running modes print {"event": "ready"} once started and run
until stdin is closed (rpc-server) or N notifications arrived (notify-listen).

  rpc-server     --url U --topic T --server S [--exchange E]
  rpc-call       --url U --topic T [--server S] [--exchange E] [--namespace N]
                 [--version V] [--timeout F] [--call-monitor-timeout F]
                 [--context JSON]
                 [--allowed-exmods M,...] --method M [--args JSON]
  rpc-cast       same as rpc-call plus [--fanout]
  notify-send    --url U --topic T [--driver messagingv2|messaging]
                 [--priority info] [--event-type E] [--publisher-id P]
                 [--context JSON] [--payload JSON]
  notify-listen  --url U --topic T [--exchange E] --count N [--timeout F]

Every mode takes [--config-file F] (e.g. for [oslo_messaging_amqp] options).

Results: rpc-call prints {"result": ..., "elapsed": S} or {"error": {"class": ...,
"module": ..., "message": ..., "exc_type": ..., "value": ...}}; rpc-cast
prints {"result": null} or {"error": ...}; rpc-server prints one
{"event": "handled", "server": S, "method": ..., "ctxt": ..., "args": ...}
line per request; notify-listen prints one {"priority": ..., "publisher_id":
..., "event_type": ..., "payload": ..., "ctxt": ..., "metadata": ...} line per
notification, then {"event": "done", "received": N}.

The global cfg.CONF is used on purpose: with a private ConfigOpts the 14.9.3
RPC client fails (NoSuchOptError: oslo_messaging_metrics).
"""

import argparse
import json
import os
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore")

from oslo_config import cfg  # noqa: E402
import oslo_messaging as messaging  # noqa: E402
from oslo_context import context as oslo_context  # noqa: E402

CONF = cfg.CONF


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load_json(text):
    if not text:
        return None
    return json.loads(text)


class Echo(object):
    """Endpoint in the null namespace, version 1.5."""

    target = messaging.Target(version="1.5")

    def __init__(self, server):
        self.server = server

    def _seen(self, method, ctxt, args):
        emit({"event": "handled", "server": self.server, "method": method,
              "ctxt": ctxt, "args": args})

    def echo(self, ctxt, **kwargs):
        self._seen("echo", ctxt, kwargs)
        return kwargs

    def add(self, ctxt, a, b):
        self._seen("add", ctxt, {"a": a, "b": b})
        return a + b

    def fail(self, ctxt, message="boom"):
        self._seen("fail", ctxt, {"message": message})
        raise ValueError(message)

    def context(self, ctxt):
        self._seen("context", ctxt, {})
        return ctxt

    def sleep(self, ctxt, seconds):
        self._seen("sleep", ctxt, {"seconds": seconds})
        time.sleep(seconds)
        return seconds

    def cast_sink(self, ctxt, **kwargs):
        self._seen("cast_sink", ctxt, kwargs)


class Versioned(object):
    """Endpoint in namespace 'om_ns', version 2.3."""

    target = messaging.Target(namespace="om_ns", version="2.3")

    def ns_echo(self, ctxt, **kwargs):
        emit({"event": "handled", "method": "ns_echo", "ctxt": ctxt, "args": kwargs})
        return {"ns": "om_ns", "args": kwargs}


def wait_for_stdin_close():
    try:
        while sys.stdin.read(1):
            pass
    except Exception:
        pass


def rpc_server(args):
    transport = messaging.get_rpc_transport(CONF, url=args.url)
    target = messaging.Target(topic=args.topic, server=args.server, exchange=args.exchange)
    server = messaging.get_rpc_server(transport, target, [Echo(args.server), Versioned()],
                                      executor="threading")
    server.start()
    emit({"event": "ready"})
    wait_for_stdin_close()
    server.stop()
    server.wait()
    transport.cleanup()


def error_json(exc):
    out = {
        "class": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
    }
    if isinstance(exc, messaging.RemoteError):
        out["exc_type"] = exc.exc_type
        out["value"] = exc.value
    return out


def client(args):
    exmods = [m for m in (args.allowed_exmods or "").split(",") if m]
    transport = messaging.get_rpc_transport(CONF, url=args.url, allowed_remote_exmods=exmods)
    target = messaging.Target(topic=args.topic, server=args.server, exchange=args.exchange,
                              namespace=args.namespace, version=args.version,
                              fanout=args.fanout or None)
    kwargs = {}
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    if args.call_monitor_timeout is not None:
        kwargs["call_monitor_timeout"] = args.call_monitor_timeout
    return transport, messaging.get_rpc_client(transport, target, **kwargs)


def rpc_call(args):
    transport, rpc = client(args)
    ctxt = load_json(args.context) or {}
    call_args = load_json(args.args) or {}
    started = time.time()
    try:
        result = rpc.call(ctxt, args.method, **call_args)
        emit({"result": result, "elapsed": time.time() - started})
    except Exception as exc:  # report every failure as data
        emit({"error": error_json(exc), "elapsed": time.time() - started})
    transport.cleanup()


def rpc_cast(args):
    transport, rpc = client(args)
    ctxt = load_json(args.context) or {}
    call_args = load_json(args.args) or {}
    try:
        rpc.cast(ctxt, args.method, **call_args)
        emit({"result": None})
    except Exception as exc:
        emit({"error": error_json(exc)})
    transport.cleanup()


class ContextSerializer(messaging.NoOpSerializer):
    """Turns a RequestContext into its dict, as OpenStack services' own
    serializers do (nova.rpc.RequestContextSerializer and the like). The
    AMQP 1.0 driver JSON-encodes the context as given and fails on a
    RequestContext object (the rabbit driver calls to_dict() itself)."""

    def serialize_context(self, ctxt):
        return ctxt.to_dict() if hasattr(ctxt, "to_dict") else ctxt


def notify_send(args):
    transport = messaging.get_notification_transport(CONF, url=args.url)
    notifier = messaging.Notifier(transport, publisher_id=args.publisher_id,
                                  driver=args.driver, topics=[args.topic],
                                  serializer=ContextSerializer())
    ctx_data = load_json(args.context) or {}
    # A plain dict context would be dropped by the notifier (only a
    # RequestContext is kept, as its redacted copy).
    ctxt = oslo_context.RequestContext.from_dict(ctx_data) if ctx_data else {}
    payload = load_json(args.payload)
    if payload is None:
        payload = {}
    getattr(notifier, args.priority)(ctxt, args.event_type, payload)
    emit({"sent": 1})
    transport.cleanup()


class Collector(object):
    def __init__(self, want):
        self.want = want
        self.got = 0
        self.done = threading.Event()
        self.lock = threading.Lock()

    def _record(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            emit({"priority": priority, "publisher_id": publisher_id, "event_type": event_type,
                  "payload": payload, "ctxt": ctxt, "metadata": metadata})
            self.got += 1
            if self.got >= self.want:
                self.done.set()
        return messaging.NotificationResult.HANDLED


def _make_method(priority):
    def method(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._record(priority, ctxt, publisher_id, event_type, payload, metadata)
    return method


for _p in ("audit", "debug", "info", "warn", "error", "critical", "sample"):
    setattr(Collector, _p, _make_method(_p))


def notify_listen(args):
    transport = messaging.get_notification_transport(CONF, url=args.url)
    collector = Collector(args.count)
    targets = [messaging.Target(topic=args.topic, exchange=args.exchange)]
    # No pool: the 14.9.3 AMQP 1.0 driver raises NotImplementedError for pools.
    listener = messaging.get_notification_listener(transport, targets, [collector],
                                                   executor="threading")
    listener.start()
    emit({"event": "ready"})
    collector.done.wait(args.timeout)
    listener.stop()
    listener.wait()
    emit({"event": "done", "received": collector.got})
    transport.cleanup()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--server")
    parser.add_argument("--exchange")
    parser.add_argument("--namespace")
    parser.add_argument("--version")
    parser.add_argument("--fanout", action="store_true")
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--call-monitor-timeout", type=float)
    parser.add_argument("--context")
    parser.add_argument("--allowed-exmods")
    parser.add_argument("--method")
    parser.add_argument("--args")
    parser.add_argument("--driver", default="messagingv2")
    parser.add_argument("--priority", default="info")
    parser.add_argument("--event-type", default="om.test")
    parser.add_argument("--publisher-id", default="python.peer")
    parser.add_argument("--payload")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--config-file", action="append", default=[])
    args = parser.parse_args()
    conf_args = []
    for f in args.config_file:
        conf_args += ["--config-file", f]
    CONF(conf_args, project="om-interop-peer-amqp1", default_config_files=[])
    if args.mode == "notify-listen" and args.timeout is None:
        args.timeout = 60.0
    mode = {
        "rpc-server": rpc_server,
        "rpc-call": rpc_call,
        "rpc-cast": rpc_cast,
        "notify-send": notify_send,
        "notify-listen": notify_listen,
    }[args.mode]
    mode(args)
    if args.mode in ("rpc-call", "rpc-cast"):
        # The RPC client starts oslo.messaging's metrics sender, a non-daemon
        # thread that keeps the interpreter alive ~10 s after the work is
        # done; everything is printed and cleaned up by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
