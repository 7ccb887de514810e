#!/usr/bin/env python3
"""Write om-core's wire fixtures from the real Python oslo.messaging.

Run with a Python that has oslo.messaging 18.3.1 (and oslo.context 6.5.0)
installed, from the repository root:

    /tmp/setup/venv/bin/python scripts/gen_fixtures.py

The JSON files land in ``crates/om-core/tests/fixtures/``. Every message is
produced by the real library: an RPC server, RPC client and notifier talk
over kombu's in-process ``memory`` transport (``kombu+memory:////``), and
every body is captured where kombu serializes it for publishing, so the
bytes are exactly what the rabbit driver puts on the wire. ``uuid4`` (in the
driver and notifier modules only) and ``utcnow`` are patched to return fixed
values, so the output does not change from run to run; only tracebacks carry
paths and line numbers of the machine that ran the script.

See scripts/README.md.
"""

import argparse
import datetime
import importlib.metadata
import json
import logging
import os
import sys
import threading
import time
import types
import uuid
import warnings

EXPECTED_VERSIONS = {"oslo.messaging": "18.3.1", "oslo.context": "6.5.0"}

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "crates", "om-core", "tests", "fixtures")


def check_versions(force):
    for dist, want in EXPECTED_VERSIONS.items():
        have = importlib.metadata.version(dist)
        if have != want:
            msg = f"{dist} {have} is installed, the fixtures describe {want}"
            if not force:
                sys.exit(msg + " (use --force to generate anyway)")
            print("warning: " + msg, file=sys.stderr)


warnings.filterwarnings("ignore")
logging.basicConfig(level=logging.CRITICAL)

import kombu.messaging  # noqa: E402
import oslo_messaging  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_context import context as oslo_context  # noqa: E402
from oslo_messaging._drivers import amqp as rpc_amqp  # noqa: E402
from oslo_messaging._drivers import amqpdriver  # noqa: E402
from oslo_messaging._drivers import common as rpc_common  # noqa: E402
from oslo_messaging.notify import notifier as notifier_mod  # noqa: E402
from oslo_messaging.rpc import dispatcher as rpc_dispatcher  # noqa: E402
from oslo_utils import timeutils  # noqa: E402


# --------------------------------------------------------------------------
# Deterministic ids
# --------------------------------------------------------------------------

class DeterministicUuid:
    """Stands in for the ``uuid`` module inside one oslo module.

    ``uuid4()`` returns well-formed version-4 UUIDs built from a tag (which
    module drew it) and a counter, e.g. ``a1000000-0000-4000-8000-000000000003``.
    """

    UUID = uuid.UUID

    def __init__(self, tag):
        self._tag = tag
        self._n = 0
        self._lock = threading.Lock()

    def uuid4(self):
        with self._lock:
            self._n += 1
            return uuid.UUID("%08x-0000-4000-8000-%012x" % (self._tag, self._n))


def patch_uuids():
    # msg ids and reply queue names come from amqpdriver, _unique_id from
    # amqp, notification message ids from the notifier. kombu and the rabbit
    # connection keep the real uuid module.
    amqpdriver.uuid = DeterministicUuid(0xA1000000)
    rpc_amqp.uuid = DeterministicUuid(0xB2000000)
    notifier_mod.uuid = DeterministicUuid(0xC3000000)


# --------------------------------------------------------------------------
# Capturing what kombu publishes
# --------------------------------------------------------------------------

class Capture:
    """Records every message kombu publishes: body bytes and properties."""

    def __init__(self):
        self.messages = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        orig_prepare = kombu.messaging.Producer._prepare
        orig_publish = kombu.messaging.Producer.publish
        capture = self

        def _prepare(producer, *args, **kwargs):
            result = orig_prepare(producer, *args, **kwargs)
            capture._local.prepared = result
            return result

        def publish(producer, body, routing_key=None, **kwargs):
            capture._local.prepared = None
            result = orig_publish(producer, body, routing_key=routing_key,
                                  **kwargs)
            encoded, content_type, content_encoding = capture._local.prepared
            if isinstance(encoded, bytes):
                encoded = encoded.decode(content_encoding or "utf-8")
            exchange = kwargs.get("exchange")
            record = {
                "exchange": getattr(exchange, "name", exchange) or "",
                "routing_key": routing_key,
                "mandatory": bool(kwargs.get("mandatory")),
                "expiration": kwargs.get("expiration"),
                "content_type": content_type,
                "content_encoding": content_encoding,
                "body": encoded,
            }
            with capture._cond:
                capture.messages.append(record)
                capture._cond.notify_all()
            return result

        kombu.messaging.Producer._prepare = _prepare
        kombu.messaging.Producer.publish = publish

    def mark(self):
        with self._lock:
            return len(self.messages)

    def since(self, mark):
        with self._lock:
            return list(self.messages[mark:])

    def wait_for(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(predicate(m) for m in self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("timed out waiting for a published message")
                self._cond.wait(left)


def inner(record):
    """The decoded inner message of a captured 2.0 body (or the 1.0 body)."""
    outer = json.loads(record["body"])
    if "oslo.message" in outer:
        return json.loads(outer["oslo.message"])
    return outer


def is_heartbeat(record):
    if record["exchange"] != "" or not record["routing_key"].startswith("reply_"):
        return False
    msg = inner(record)
    return msg.get("ending") is False


# --------------------------------------------------------------------------
# Transport URLs
# --------------------------------------------------------------------------

VALID_URLS = [
    "rabbit://",
    "rabbit:///",
    "rabbit://h1,h2/",
    "rabbit://u1:p1@h1:5672,u2:p2@h2:5673/vh?a=1&a=2",
    "rabbit://u:p%40x@[::1]:5672/%2F",
    "rabbit://h//",
    "kombu+memory:////",
    "foo:",
    "rabbit:",
    "rabbit://guest:guest@localhost:5672/",
    "rabbit://user@host/",
    "rabbit://user:@host/",
    "rabbit://:pass@host/",
    "rabbit://us%3Aer:p%3Ass%2F%3F%23@host:1/",
    "rabbit://u@x:p@host/",
    "rabbit://user:pa:ss@host/",
    "rabbit://[::1]/",
    "rabbit://[2001:db8::1]:5671,[2001:DB8::2]:5672/",
    "rabbit://[fe80::1%25eth0]:5672/",
    "rabbit://::1/",
    "rabbit://fe80::a:b/",
    "rabbit://h1:5672,,h2:5673,/",
    "rabbit://h/vh%20with%20space",
    "rabbit://h/a/b",
    "rabbit://h/?ssl=1&heartbeat_timeout_threshold=60",
    "rabbit://h/?a=&b=2&c",
    "rabbit://h/?x=a+b&y=%26%3D&x=c%2Cd",
    "rabbit://h/?=x",
    "rabbit://h/?a=1;b=2",
    "kafka://kafka1:9092,kafka2:9092",
    "rabbit://h/vh#fragment",
    "rabbit://h/vh?q=1#frag?x=2",
    "RABBIT://Host.Example.COM:5672/VH",
    "rabbit:/vh",
    "rabbit://h:0/",
    "rabbit://h:65535/",
    "rabbit://%C3%BCser:p%C3%A4ss%E2%98%83@h/v%C3%A9",
    "rabbit://u:p@h?x=1",
    "fake://",
    "rabbit://127.0.0.1:5672/",
    "rabbit://h/%2Fvh%2F",
    "rabbit://u:p%zz@h/%zz",
    "amqp+ssl.v2-x://h/",
]

# Malformed URLs: om rejects every one with InvalidTransportUrl. The fixture
# records what Python does with each: most raise, some are accepted by Python
# with a meaningless result, where om is deliberately stricter.
INVALID_URLS = [
    "",
    "   ",
    "//h/",
    "h",
    "://h/",
    "1abc://h/",
    "rab_bit://h/",
    "ra bbit://h/",
    "rabbit://u:s3cr3t@h:abc/",
    "rabbit://u:s3cr3t@h:/",
    "rabbit://u:s3cr3t@[::1/",
    "rabbit://u:s3cr3t@::1]/",
    "rabbit://u:s3cr3t@[::1]:/",
    "rabbit://u:s3cr3t@[::1]:x/",
    "rabbit://u:s3cr3t@[not-ipv6]:5672/",
    "rabbit://u:s3cr3t@[127.0.0.1]:5672/",
    "rabbit://u:s3cr3t@[::1]]/",
    "rabbit://u:s3cr3t@h:5672x/",
    "rabbit://u:s3cr3t@h:1.5/",
    "rabbit://u:s3cr3t@h:0x10/",
    "rabbit://u:s3cr3t@h:99999/",
    "rabbit://u:s3cr3t@h:-1/",
    "rabbit://u:s3cr3t@h:+5/",
    "rabbit://u:s3cr3t@h: 5/",
    "rabbit://u:s3cr3t@h /",
    "rabbit://u:s3cr3t@h\t/",
    "rabbit://u:s3cr3t@/",
    "rabbit://u:s3cr3t@:5672/",
    "rabbit://u:s3cr3t@h:1:2/",
    "rabbit://u:s3cr3t@[::1]x/",
    "rabbit://u:s3cr3t@[::1]:80:90/",
    "rabbit://u:s3cr3t@h!x/",
    "rabbit:u:s3cr3t@h",
    "localhost:5672",
    "rabbit://u:s3cr3t@h/%ff",
    "rabbit://u:%ff%fes3cr3t@h/",
    "rabbit://u:s3cr3t@h/v\x00h",
    "rabbit://u:s3cr3t@h1,h2:x/",
]


def url_to_json(url):
    return {
        "transport": url.transport,
        "virtual_host": url.virtual_host,
        "hosts": [
            {"hostname": h.hostname, "port": h.port,
             "username": h.username, "password": h.password}
            for h in url.hosts
        ],
        "query": url.query,
        "str": str(url),
    }


def gen_transport_urls(conf):
    valid = []
    for text in VALID_URLS:
        parsed = oslo_messaging.TransportURL.parse(conf, text)
        valid.append({"url": text, "python": url_to_json(parsed)})
    invalid = []
    for text in INVALID_URLS:
        entry = {"url": text}
        try:
            parsed = oslo_messaging.TransportURL.parse(conf, text)
        except Exception as exc:  # noqa: BLE001 - any exception is the point
            entry["python_error"] = "%s: %s" % (type(exc).__name__, exc)
        else:
            entry["python_accepts"] = url_to_json(parsed)
        invalid.append(entry)
    return {
        "comment": "TransportURL.parse results of oslo.messaging "
                   + EXPECTED_VERSIONS["oslo.messaging"]
                   + "; `str` is str(TransportURL) (passwords in clear).",
        "valid": valid,
        "invalid": invalid,
    }


# --------------------------------------------------------------------------
# RPC traffic
# --------------------------------------------------------------------------

UNICODE_ARGS = {"s": "\u00e9\u2603\U0001F600 \u00fc", "k": "\u65e5\u672c\u8a9e",
                "\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"}
NESTED_ARGS = {"a": {"b": [1, [2, {"c": None}], {}], "d": []}, "e": True,
               "f": False, "g": {"h": {"i": {"j": "deep"}}}}
NULL_ARGS = {"n": None, "l": [None, None], "o": {"x": None}}
FLOAT_ARGS = {"f": [0.1, 1.0, -0.0, 0.0, 1e16, 1e15, 1.5e-07, 0.0001, 1e-05,
                    123456789.123, 2.5e300, 5e-324, 1.7976931348623157e308,
                    -3.14, 100.0, 1e22, 12345678901234567.0, 0.30000000000000004]}
INT_ARGS = {"i": [0, -1, 1, 2 ** 53, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1]}
ESCAPE_ARGS = {"q": "q\"\\/\n\r\t\b\f\x00\x01\x1f\x7f\u0080\u2028 end",
               "key\"with\\quote": "v"}


class Endpoint:
    target = oslo_messaging.Target(version="1.5")

    def __init__(self, capture):
        self._capture = capture

    def echo(self, ctxt, **kwargs):
        return kwargs

    def slow(self, ctxt):
        # Return once the call-monitor heartbeat has been published, so the
        # fixture always holds exactly one heartbeat.
        self._capture.wait_for(is_heartbeat)
        return "done"

    def boom(self, ctxt):
        raise ValueError("bad value")


def request_context(**extra):
    kwargs = dict(user_id="u1", project_id="p1", domain_id=None,
                  user_domain_id="ud1", project_domain_id="pd1",
                  auth_token="tok-secret", request_id="req-00000000-0000-4000-8000-000000000001",
                  roles=["admin", "member"], is_admin=False, overwrite=False)
    kwargs.update(extra)
    return oslo_context.RequestContext(**kwargs)


def context_ctor(**extra):
    """The RequestContext constructor arguments of request_context(), for the
    Rust side to rebuild the same context."""
    kwargs = dict(user_id="u1", project_id="p1", domain_id=None,
                  user_domain_id="ud1", project_domain_id="pd1",
                  auth_token="tok-secret", request_id="req-00000000-0000-4000-8000-000000000001",
                  roles=["admin", "member"], is_admin=False)
    kwargs.update(extra)
    return kwargs


def ctxt_description(ctxt):
    if isinstance(ctxt, dict):
        return {"kind": "dict", "value": ctxt}
    return {"kind": "request_context", "to_dict": ctxt.to_dict()}


def gen_rpc(conf, capture):
    transport = oslo_messaging.get_rpc_transport(conf, "kombu+memory:////")
    topic = "om_fixtures"
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=topic, server="srv1"),
        [Endpoint(capture)], executor="threading")
    server.start()
    client = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic=topic))
    cases = []

    def run(name, description, prepare, op, ctxt, method, args, expect_error=None):
        mark = capture.mark()
        cctx = client.prepare(**prepare)
        outcome = None
        try:
            result = getattr(cctx, op)(ctxt, method, **args)
            outcome = {"result": result}
        except Exception as exc:  # noqa: BLE001
            if expect_error is None or not isinstance(exc, expect_error):
                raise
            outcome = {"error": type(exc).__name__}
        if op == "cast":
            # Casts are fire-and-forget; let the server consume it before the
            # next case so the server's own traffic cannot interleave.
            time.sleep(0.2)
        published = capture.since(mark)
        cases.append({
            "name": name,
            "description": description,
            "op": op,
            "prepare": prepare,
            "method": method,
            "args": args,
            "context": ctxt_description(ctxt),
            "python_outcome": outcome,
            "published": published,
        })

    rc = request_context()
    run("call_echo", "call with a RequestContext, client version 1.3",
        {"version": "1.3"}, "call", rc, "echo", {"a": 1, "b": "x"})
    run("call_heartbeat", "call with call_monitor_timeout=2.5: one heartbeat, then the reply",
        {"call_monitor_timeout": 2.5, "timeout": 30}, "call", {"user": "bob"}, "slow", {})
    run("call_int_monitor_timeout", "call_monitor_timeout given as an int",
        {"call_monitor_timeout": 60, "timeout": 30}, "call", {}, "echo", {"z": 0})
    run("call_value_error", "endpoint raises ValueError('bad value')",
        {}, "call", {"user": "bob", "roles": ["admin"], "nested": {"a": [1, 2]}},
        "boom", {}, expect_error=ValueError)
    run("call_no_such_method", "no endpoint has the method",
        {}, "call", {}, "nosuch", {}, expect_error=oslo_messaging.RemoteError)
    run("call_unsupported_version", "client asks for version 2.0",
        {"version": "2.0"}, "call", {}, "echo", {},
        expect_error=oslo_messaging.RemoteError)
    run("call_unicode", "unicode arguments and result",
        {}, "call", {"user": "\u00fcser"}, "echo", UNICODE_ARGS)
    run("call_nested", "nested arguments and result",
        {}, "call", {}, "echo", NESTED_ARGS)
    run("call_null", "null arguments and result",
        {}, "call", {"nothing": None}, "echo", NULL_ARGS)
    run("call_floats", "floats", {}, "call", {}, "echo", FLOAT_ARGS)
    run("call_ints", "integers up to 64 bits", {}, "call", {}, "echo", INT_ARGS)
    run("call_escapes", "characters JSON must escape",
        {}, "call", {}, "echo", ESCAPE_ARGS)
    run("cast", "cast to the topic", {}, "cast", {"a": 1}, "echo", {"x": 1})
    run("cast_fanout", "fanout cast", {"fanout": True}, "cast",
        {"a": 1}, "echo", {"y": 2})
    run("cast_direct", "server-directed cast with namespace and version",
        {"server": "srv1", "namespace": "nsX", "version": "2.4"}, "cast",
        {}, "direct", {"y": 2})
    run("cast_request_context", "cast with a RequestContext",
        {}, "cast", request_context(is_admin=True, read_only=True,
                                    global_request_id="greq-1",
                                    system_scope="all"),
        "echo", {"payload": {"k": [1.5, "v"]}})

    server.stop()
    server.wait()
    transport.cleanup()
    return {
        "comment": "RPC traffic of oslo.messaging " + EXPECTED_VERSIONS["oslo.messaging"]
                   + " over kombu+memory; `published` lists every body kombu "
                   "serialized for the case, in order.",
        "context_ctor": {
            "call_echo": context_ctor(),
            "cast_request_context": context_ctor(is_admin=True, read_only=True,
                                                 global_request_id="greq-1",
                                                 system_scope="all"),
        },
        "cases": cases,
    }


# --------------------------------------------------------------------------
# Notifications
# --------------------------------------------------------------------------

def gen_notifications(conf, capture):
    transport = oslo_messaging.get_notification_transport(conf, "kombu+memory:////")
    cases = []

    def run(name, description, driver, when, ctxt, priority, event_type, payload,
            publisher_id="compute.host1", topics=("notifications",)):
        timeutils.set_time_override(when)
        try:
            notifier = oslo_messaging.Notifier(
                transport, publisher_id=publisher_id, driver=driver,
                topics=list(topics))
            mark = capture.mark()
            getattr(notifier, priority.lower())(ctxt, event_type, payload)
            published = capture.since(mark)
        finally:
            timeutils.clear_time_override()
        cases.append({
            "name": name,
            "description": description,
            "driver": driver,
            "priority": priority,
            "event_type": event_type,
            "publisher_id": publisher_id,
            "payload": payload,
            "utcnow": when.isoformat(),
            "context": ctxt_description(ctxt),
            "sent_context": (ctxt.redacted_copy().to_dict()
                             if not isinstance(ctxt, dict) else {}),
            "published": published,
        })

    t1 = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)
    t0 = datetime.datetime(2024, 1, 2, 3, 4, 5)
    run("v2_info", "messagingv2 with a RequestContext (redacted)", "messagingv2",
        t1, request_context(), "INFO", "compute.instance.create.end",
        {"id": 2, "name": "vm"})
    run("v1_info", "messaging (1.0, no envelope)", "messaging",
        t1, request_context(), "INFO", "compute.instance.create.end",
        {"id": 2, "name": "vm"})
    run("v2_warn_dict_context", "a dict context is dropped; timestamp without microseconds",
        "messagingv2", t0, {"user": "dropped"}, "WARN",
        "compute.instance.delete.start", {"id": 3})
    run("v2_null_payload", "null payload", "messagingv2", t1, {}, "ERROR",
        "x.y", None)
    run("v2_unicode_payload", "unicode payload", "messagingv2", t1, {},
        "AUDIT", "\u00e9v\u00e9nement", UNICODE_ARGS)
    run("v2_nested_payload", "nested payload, floats, ints", "messagingv2", t1, {},
        "SAMPLE", "metric", {"nested": NESTED_ARGS, "floats": FLOAT_ARGS["f"],
                             "ints": INT_ARGS["i"]})
    run("v1_escapes", "escapes in a 1.0 body", "messaging", t1, {}, "DEBUG",
        "esc", ESCAPE_ARGS)
    run("v2_two_topics", "one notification to two topics", "messagingv2", t1,
        {}, "CRITICAL", "crit", [1, "two"], publisher_id=None,
        topics=("notifications", "monitor"))

    transport.cleanup()
    return {
        "comment": "Notifications of oslo.messaging " + EXPECTED_VERSIONS["oslo.messaging"]
                   + " over kombu+memory, utcnow overridden to `utcnow`.",
        "context_ctor": context_ctor(),
        "cases": cases,
    }


# --------------------------------------------------------------------------
# Failures (serialize_remote_exception / deserialize_remote_exception)
# --------------------------------------------------------------------------

def _exc_class(name, module, base=Exception, with_kwargs=False):
    def __init__(self, *args, **kwargs):
        base.__init__(self, *args)
        if with_kwargs:
            self.kwargs = kwargs

    cls = type(name, (base,), {"__init__": __init__})
    cls.__module__ = module
    return cls


def _raise_and_serialize(make):
    try:
        raise make()
    except Exception:  # noqa: BLE001
        return rpc_common.serialize_remote_exception(sys.exc_info())


def _wrong_kwargs():
    def f(a):
        return a
    return f(b=1)


def gen_failures():
    instance_not_found = _exc_class("InstanceNotFound", "nova.exception", with_kwargs=True)
    remote_cls = _exc_class("InstanceNotFound_Remote", "nova.exception_Remote", with_kwargs=True)
    half_remote = _exc_class("Thing_Remote", "plain.module")
    makers = [
        ("value_error", "ValueError('bad value')", lambda: ValueError("bad value")),
        ("no_such_method", "NoSuchMethod('nosuch')",
         lambda: rpc_dispatcher.NoSuchMethod("nosuch")),
        ("unsupported_version", "UnsupportedVersion('2.0', method='echo')",
         lambda: rpc_dispatcher.UnsupportedVersion("2.0", method="echo")),
        ("value_error_many_args", "ValueError(1, 'two', None, 2.5)",
         lambda: ValueError(1, "two", None, 2.5)),
        ("key_error", "KeyError('k')", lambda: KeyError("k")),
        ("runtime_error_unicode", "RuntimeError with a unicode message",
         lambda: RuntimeError("\u00e9chec \u2603")),
        ("custom_with_kwargs", "nova.exception.InstanceNotFound with kwargs",
         lambda: instance_not_found("Instance 1 could not be found.", instance_id=1,
                                    flavor={"ram": 512})),
        ("remote_suffix_stripped", "class and module both end with _Remote",
         lambda: remote_cls("again", code=404)),
        ("remote_suffix_kept", "only the class ends with _Remote",
         lambda: half_remote("half")),
        ("no_args", "Exception()", lambda: Exception()),
    ]
    serialized = []
    for name, description, make in makers:
        failure = _raise_and_serialize(make)
        serialized.append({"name": name, "description": description,
                           "failure": failure, "decoded": json.loads(failure)})
    try:
        _wrong_kwargs()
    except TypeError:
        failure = rpc_common.serialize_remote_exception(sys.exc_info())
        serialized.append({"name": "type_error_wrong_kwargs",
                           "description": "calling a function with a wrong keyword argument",
                           "failure": failure, "decoded": json.loads(failure)})

    # What a Python client makes of failures, including incomplete ones.
    incoming = [
        ("builtin", json.dumps({"class": "ValueError", "module": "builtins",
                                "message": "bad value", "tb": ["tb1\n", "tb2\n"],
                                "args": ["bad value"], "kwargs": {}})),
        ("exceptions_module", json.dumps({"class": "ValueError", "module": "exceptions",
                                          "message": "old", "tb": [],
                                          "args": ["old"], "kwargs": {}})),
        ("not_allowed_module", json.dumps({"class": "InstanceNotFound",
                                           "module": "nova.exception",
                                           "message": "Instance 1 could not be found.",
                                           "tb": ["Traceback...\n"],
                                           "args": ["Instance 1 could not be found."],
                                           "kwargs": {"instance_id": 1}})),
        ("dispatcher_module", json.dumps({"class": "NoSuchMethod",
                                          "module": "oslo_messaging.rpc.dispatcher",
                                          "message": "Endpoint does not support RPC method x",
                                          "tb": [], "args": ["Endpoint does not support RPC method x"],
                                          "kwargs": {}})),
        ("missing_tb_args_kwargs", json.dumps({"class": "ValueError", "module": "builtins",
                                               "message": "m"})),
        ("only_class", json.dumps({"class": "Boom", "module": "some.module"})),
        ("empty_object", "{}"),
    ]
    deserialized = []
    for name, text in incoming:
        entry = {"name": name, "failure": text}
        try:
            exc = rpc_common.deserialize_remote_exception(text, [])
        except Exception as err:  # noqa: BLE001
            entry["python_raises"] = "%s: %s" % (type(err).__name__, err)
        else:
            entry["python_result"] = {
                "type": type(exc).__name__,
                "module": type(exc).__module__,
                "str": str(exc),
                "args": [a if isinstance(a, (str, int, float, type(None))) else repr(a)
                         for a in exc.args],
            }
            if isinstance(exc, oslo_messaging.RemoteError):
                entry["python_result"]["remote_error"] = {
                    "exc_type": exc.exc_type, "value": exc.value,
                    "traceback": exc.traceback}
        deserialized.append(entry)
    return {
        "comment": "serialize_remote_exception / deserialize_remote_exception of "
                   "oslo.messaging " + EXPECTED_VERSIONS["oslo.messaging"]
                   + " (allowed_remote_exmods = []). Tracebacks depend on the machine.",
        "serialized": serialized,
        "deserialized": deserialized,
    }


# --------------------------------------------------------------------------
# oslo.context
# --------------------------------------------------------------------------

def gen_contexts():
    ctors = [
        ("minimal", {"request_id": "req-00000000-0000-4000-8000-00000000000a"}),
        ("typical", context_ctor()),
        ("full", {
            "auth_token": "tok", "user_id": "u", "project_id": "p",
            "domain_id": "d", "user_domain_id": "ud", "project_domain_id": "pd",
            "is_admin": True, "read_only": True, "show_deleted": True,
            "request_id": "req-2", "resource_uuid": "res-1",
            "roles": ["r1", "r2"], "user_name": "un", "project_name": "pn",
            "domain_name": "dn", "user_domain_name": "udn",
            "project_domain_name": "pdn", "is_admin_project": False,
            "service_token": "stok", "service_user_id": "su",
            "service_roles": ["sr"], "global_request_id": "greq-2",
            "system_scope": "all",
        }),
        ("unicode", {"user_id": "\u00fcser", "project_id": "\u2603",
                     "request_id": "req-\u00e9"}),
        ("is_admin_none", {"request_id": "req-3", "is_admin": None}),
    ]
    cases = []
    for name, kwargs in ctors:
        ctx = oslo_context.RequestContext(overwrite=False, **kwargs)
        cases.append({
            "name": name,
            "ctor": kwargs,
            "to_dict": ctx.to_dict(),
            "redacted_copy_to_dict": ctx.redacted_copy().to_dict(),
            "to_dict_json": json.dumps(ctx.to_dict()),
        })
    from_dict_inputs = [
        ("extra_keys", {"user": "bob", "roles": ["admin"], "tenant_name": "t",
                        "nested": {"a": [1, 2]}, "project": "ignored",
                        "user_identity": "ignored too"}),
        ("empty", {}),
        ("nulls", {"user": None, "roles": None, "is_admin": None,
                   "read_only": None, "is_admin_project": None}),
    ]
    from_dict = []
    for name, values in from_dict_inputs:
        ctx = oslo_context.RequestContext.from_dict(dict(values), overwrite=False)
        out = ctx.to_dict()
        if values.get("request_id") is None:
            # A fresh random request id: keep the shape, not the value.
            out["request_id"] = "req-<generated>"
        from_dict.append({"name": name, "input": values, "to_dict": out})
    return {
        "comment": "oslo.context " + EXPECTED_VERSIONS["oslo.context"]
                   + " RequestContext(**ctor).to_dict() / redacted_copy().to_dict(), "
                   "and from_dict(input).to_dict().",
        "cases": cases,
        "from_dict": from_dict,
    }


# --------------------------------------------------------------------------
# Floats
# --------------------------------------------------------------------------

def gen_floats():
    """json.dumps of many doubles, each given by its exact bit pattern."""
    import random
    import struct

    rng = random.Random(20240102)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 100.0, 1e15, 1e16, 1e17,
              9999999999999998.0, 1e-4, 1e-5, 0.00012345, 1.2345e-5,
              5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
              123456789.123, 0.30000000000000004, 2.0 ** 53, 2.0 ** 63, 2.0 ** 64]
    values += [10.0 ** e for e in range(-30, 31)]
    values += [-(10.0 ** e) * 1.25 for e in range(-20, 21)]
    while len(values) < 1500:
        kind = rng.randrange(4)
        if kind == 0:  # any bit pattern
            (v,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        elif kind == 1:  # "human" decimals
            v = round(rng.uniform(-1e6, 1e6), rng.randrange(0, 8))
        elif kind == 2:  # around the notation switches
            v = rng.choice([1e16, 1e-4, 1e15, 1e-5]) * rng.uniform(0.5, 2.0)
        else:  # wide exponent range
            v = rng.uniform(1, 10) * 10.0 ** rng.randrange(-320, 308)
        if v == v and v not in (float("inf"), float("-inf")):
            values.append(v)
    return {
        "comment": "json.dumps(float) for doubles given by their IEEE-754 bits (hex)",
        "values": [{"bits": struct.pack(">d", v).hex(), "json": json.dumps(v)}
                   for v in values],
    }


# --------------------------------------------------------------------------

def write(out_dir, name, data):
    path = os.path.join(out_dir, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", os.path.relpath(path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="output directory (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="run even with other library versions")
    args = parser.parse_args()
    check_versions(args.force)
    os.makedirs(args.out, exist_ok=True)

    conf = cfg.CONF
    conf([], project="om-fixtures")
    patch_uuids()
    capture = Capture()

    write(args.out, "transport_urls.json", gen_transport_urls(conf))
    write(args.out, "rpc.json", gen_rpc(conf, capture))
    write(args.out, "notifications.json", gen_notifications(conf, capture))
    write(args.out, "failures.json", gen_failures())
    write(args.out, "contexts.json", gen_contexts())
    write(args.out, "floats.json", gen_floats())
    # Thread pools of the RPC server may linger; do not wait for them.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
