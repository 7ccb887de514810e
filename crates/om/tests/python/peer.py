#!/usr/bin/env python3
"""Python oslo.messaging 18.3.1 peer for om's interoperability tests.

Runs the real Python library against the same broker as om, in one of these
modes (each prints JSON lines on stdout; servers print {"event": "ready"}
once subscribed and run until stdin is closed or they are killed):

  rpc-server      --url U --topic T --server S [--exchange E] [--allowed-exmods M,...]
  (JSON arguments may be given as @FILE.)
  rpc-call        --url U --topic T [--server S] [--exchange E] [--namespace N]
                  [--version V] [--timeout F] [--call-monitor-timeout F]
                  [--context JSON] [--allowed-exmods M,...] --method M [--args JSON]
  rpc-cast        same as rpc-call plus [--fanout]
  notify-send     --url U --topic T [--driver messagingv2|messaging]
                  [--priority info] [--event-type E] [--publisher-id P]
                  [--context JSON] [--payload JSON] [--count N]
  notify-listen   --url U --topic T [--pool P] [--exchange E] --count N
                  [--timeout F]

Results: rpc-call prints {"result": ...} or {"error": {"class": ..., "module":
..., "message": ..., "exc_type": ...}}; rpc-server prints one
{"event": "handled", "method": ..., "ctxt": ..., "args": ...} line per
request; notify-listen prints one {"priority": ..., "publisher_id": ...,
"event_type": ..., "payload": ..., "ctxt": ..., "metadata": ...} line per
notification, then exits when N were received or the timeout passed.
"""

import argparse
import json
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore")

from oslo_config import cfg
import oslo_messaging as messaging
from oslo_context import context as oslo_context

CONF = cfg.CONF


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load_json(text):
    """JSON from the argument, or from a file when it starts with '@'
    (large payloads exceed the command-line limit)."""
    if not text:
        return None
    if text.startswith("@"):
        with open(text[1:], "r", encoding="utf-8") as f:
            return json.load(f)
    return json.loads(text)


def make_context(text):
    """A RequestContext when the JSON has keys (a plain dict would be
    dropped by the notifier), else an empty dict."""
    return load_json(text) or {}


class Echo(object):
    """Endpoint in the null namespace, version 1.5 (so 1.x clients reach it)."""

    target = messaging.Target(version="1.5")

    def echo(self, ctxt, **kwargs):
        emit({"event": "handled", "method": "echo", "ctxt": ctxt, "args": kwargs})
        return kwargs

    def add(self, ctxt, a, b):
        emit({"event": "handled", "method": "add", "ctxt": ctxt, "args": {"a": a, "b": b}})
        return a + b

    def fail(self, ctxt, message="boom"):
        emit({"event": "handled", "method": "fail", "ctxt": ctxt, "args": {"message": message}})
        raise ValueError(message)

    def sleep(self, ctxt, seconds):
        emit({"event": "handled", "method": "sleep", "ctxt": ctxt, "args": {"seconds": seconds}})
        time.sleep(seconds)
        return seconds

    def context(self, ctxt):
        emit({"event": "handled", "method": "context", "ctxt": ctxt, "args": {}})
        return ctxt

    def cast_sink(self, ctxt, **kwargs):
        emit({"event": "handled", "method": "cast_sink", "ctxt": ctxt, "args": kwargs})


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
    server = messaging.get_rpc_server(transport, target, [Echo(), Versioned()], executor="threading")
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
    ctxt = make_context(args.context)
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
    ctxt = make_context(args.context)
    call_args = load_json(args.args) or {}
    try:
        rpc.cast(ctxt, args.method, **call_args)
        emit({"result": None})
    except Exception as exc:
        emit({"error": error_json(exc)})
    transport.cleanup()


def notify_send(args):
    transport = messaging.get_notification_transport(CONF, url=args.url)
    notifier = messaging.Notifier(transport, publisher_id=args.publisher_id,
                                  driver=args.driver, topics=[args.topic])
    ctx_data = load_json(args.context) or {}
    ctxt = oslo_context.RequestContext.from_dict(ctx_data) if ctx_data else {}
    payload = load_json(args.payload)
    if payload is None:
        payload = {}
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
    listener = messaging.get_notification_listener(transport, targets, [collector],
                                                   executor="threading", pool=args.pool)
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
    parser.add_argument("--pool")
    args = parser.parse_args()
    CONF([], project="om-interop-peer")
    if args.mode == "notify-listen" and args.timeout is None:
        args.timeout = 30.0
    {
        "rpc-server": rpc_server,
        "rpc-call": rpc_call,
        "rpc-cast": rpc_cast,
        "notify-send": notify_send,
        "notify-listen": notify_listen,
    }[args.mode](args)


if __name__ == "__main__":
    main()
