"""The shared core of om's Python oslo.messaging interop peers.

Imported by the version-specific peer scripts (crates/om/tests/python/peer.py
for oslo.messaging 18.3.1 on RabbitMQ, crates/om-driver-amqp1/tests/python/
peer_amqp1.py for 14.9.3 on AMQP 1.0), which run in different venvs: only
what behaves the same in both series lives here; each script passes its
version-specific bits to main(). Works with both series as long as it only
uses the public oslo_messaging API.

Modes (each prints JSON lines on stdout; long-running modes print
{"event": "ready"} once subscribed and run until stdin is closed
(rpc-server) or N notifications arrived or the timeout passed
(notify-listen)):

  rpc-server      --url U --topic T --server S [--exchange E]
  rpc-call        --url U --topic T [--server S] [--exchange E] [--namespace N]
                  [--version V] [--timeout F] [--call-monitor-timeout F]
                  [--context JSON] [--allowed-exmods M,...] --method M [--args JSON]
  rpc-cast        same as rpc-call plus [--fanout]
  notify-send     --url U --topic T [--driver messagingv2|messaging]
                  [--priority info] [--event-type E] [--publisher-id P]
                  [--context JSON] [--payload JSON] [--count N]
                  [--typed JSON]  ({"field": [TYPE, VALUE]}: payload entries
                  of Python type TYPE (datetime, date, uuid, decimal) made
                  from VALUE, for what JSON alone cannot carry)
  notify-listen   --url U --topic T [--pool P] [--exchange E] --count N
                  [--timeout F]

JSON arguments may be given as @FILE (large payloads exceed the command-line
limit).

Results: rpc-call prints {"result": ..., "elapsed": S} or {"error":
{"class": ..., "module": ..., "message": ..., "exc_type": ..., "value": ...}};
rpc-cast prints {"result": null} or {"error": ...}; rpc-server prints one
{"event": "handled", "server": S, "method": ..., "ctxt": ..., "args": ...}
line per request; notify-send prints {"sent": N}; notify-listen prints one
{"priority": ..., "publisher_id": ..., "event_type": ..., "payload": ...,
"ctxt": ..., "metadata": ...} line per notification, then
{"event": "done", "received": N}.
"""

import argparse
import datetime
import decimal
import json
import sys
import threading
import time
import uuid

from oslo_config import cfg
import oslo_messaging as messaging
from oslo_context import context as oslo_context

CONF = cfg.CONF


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load_json(text):
    """JSON from the argument, or from a file when it starts with '@'."""
    if not text:
        return None
    if text.startswith("@"):
        with open(text[1:], "r", encoding="utf-8") as f:
            return json.load(f)
    return json.loads(text)


class Echo(object):
    """Endpoint in the null namespace, version 1.5 (so 1.x clients reach it)."""

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

    def sleep(self, ctxt, seconds):
        self._seen("sleep", ctxt, {"seconds": seconds})
        time.sleep(seconds)
        return seconds

    def context(self, ctxt):
        self._seen("context", ctxt, {})
        return ctxt

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


# Python values that plain JSON cannot carry, made from their text.
TYPED = {
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "uuid": lambda text: uuid.UUID(hex=text),
    "decimal": decimal.Decimal,
}


def notify_send(args, serializer=None):
    transport = messaging.get_notification_transport(CONF, url=args.url)
    kwargs = {"serializer": serializer} if serializer is not None else {}
    notifier = messaging.Notifier(transport, publisher_id=args.publisher_id,
                                  driver=args.driver, topics=[args.topic], **kwargs)
    # A plain dict context would be dropped by the notifier (only a
    # RequestContext is kept, as its redacted copy).
    ctx_data = load_json(args.context) or {}
    ctxt = oslo_context.RequestContext.from_dict(ctx_data) if ctx_data else {}
    payload = load_json(args.payload)
    if payload is None:
        payload = {}
    for field, (kind, value) in (load_json(args.typed) or {}).items():
        payload[field] = TYPED[kind](value)
    method = getattr(notifier, args.priority)
    for i in range(args.count):
        p = payload
        if args.count > 1 and isinstance(payload, dict):
            p = dict(payload, seq=i)
        method(ctxt, args.event_type, p)
    emit({"sent": args.count})
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
    # Pass a pool only when one is asked for: the 14.9.3 AMQP 1.0 driver
    # raises NotImplementedError for pools.
    kwargs = {"pool": args.pool} if getattr(args, "pool", None) else {}
    listener = messaging.get_notification_listener(transport, targets, [collector],
                                                   executor="threading", **kwargs)
    listener.start()
    emit({"event": "ready"})
    collector.done.wait(args.timeout)
    listener.stop()
    listener.wait()
    emit({"event": "done", "received": collector.got})
    transport.cleanup()


def parser():
    """The arguments every mode understands; a script may add its own."""
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--url", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--server")
    p.add_argument("--exchange")
    p.add_argument("--namespace")
    p.add_argument("--version")
    p.add_argument("--fanout", action="store_true")
    p.add_argument("--timeout", type=float)
    p.add_argument("--call-monitor-timeout", type=float)
    p.add_argument("--context")
    p.add_argument("--allowed-exmods")
    p.add_argument("--method")
    p.add_argument("--args")
    p.add_argument("--driver", default="messagingv2")
    p.add_argument("--priority", default="info")
    p.add_argument("--event-type", default="om.test")
    p.add_argument("--publisher-id", default="python.peer")
    p.add_argument("--payload")
    p.add_argument("--typed")
    p.add_argument("--count", type=int, default=1)
    return p


def run_mode(args, listen_timeout, serializer=None):
    """Runs args.mode; notify-listen waits `listen_timeout` seconds unless
    --timeout is given; `serializer` is the notifier's serializer."""
    if args.mode == "notify-listen" and args.timeout is None:
        args.timeout = listen_timeout
    {
        "rpc-server": rpc_server,
        "rpc-call": rpc_call,
        "rpc-cast": rpc_cast,
        "notify-send": lambda a: notify_send(a, serializer),
        "notify-listen": notify_listen,
    }[args.mode](args)
