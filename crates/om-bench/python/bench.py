#!/usr/bin/env python3
"""Python oslo.messaging side of `cargo xtask bench`.

Measures the real oslo.messaging library (18.3.1) on the same brokers and
with the same scenarios as the `om-bench` binary, and prints one JSON
object with the same fields (see om_bench::harness::BenchResult).

  bench.py rpc    --url rabbit://guest:guest@127.0.0.1:35672/ --concurrency 16
  bench.py cast   --url ... --concurrency 16
  bench.py notify --url rabbit://... | kafka://127.0.0.1:39092/ --concurrency 16

The RPC server / notification listener runs in a child process (as a
separate service would, and so that it does not share the GIL with the
clients), with executor="threading". The clients are threads of the main
process: each loops over call() / cast() / notifier.info() until the end
of the window. Calls are counted (with their latency) when they complete
inside the measured window; casts and notifications are counted when they
arrive at the server / listener, sampled at the start and end of the
window.
"""

import argparse
import json
import math
import multiprocessing
import os
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore")

TEXT = "om-bench payload: the quick brown fox jumps over the lazy dog 0123456789. "
CONTEXT = {"user": "bench", "project_id": "bench"}
SERVER = "bench-server"


def payload(n):
    return (TEXT * (n // len(TEXT) + 1))[:n]


def conf():
    from oslo_config import cfg

    return cfg.CONF


# ---------------------------------------------------------------- children


def rpc_server_main(url, topic, counter, ready, stop):
    import oslo_messaging as messaging

    lock = threading.Lock()

    class Endpoint(object):
        def echo(self, ctxt, payload):
            return payload

        def hit(self, ctxt, payload):
            with lock:
                counter.value += 1

    transport = messaging.get_rpc_transport(conf(), url=url)
    target = messaging.Target(topic=topic, server=SERVER)
    server = messaging.get_rpc_server(transport, target, [Endpoint()], executor="threading")
    server.start()
    ready.set()
    stop.wait()
    server.stop()
    server.wait()
    transport.cleanup()


def listener_main(url, topic, pool, counter, ready, stop):
    import oslo_messaging as messaging

    lock = threading.Lock()

    class Endpoint(object):
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            with lock:
                counter.value += 1

    transport = messaging.get_notification_transport(conf(), url=url)
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()], executor="threading", pool=pool
    )
    listener.start()
    ready.set()
    stop.wait()
    listener.stop()
    listener.wait()
    transport.cleanup()


def start_child(target, *args):
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("Q", 0, lock=False)
    ready = ctx.Event()
    stop = ctx.Event()
    proc = ctx.Process(target=target, args=args + (counter, ready, stop), daemon=True)
    proc.start()
    if not ready.wait(120):
        proc.kill()
        raise RuntimeError("the server / listener process did not start within 120 s")
    return proc, counter, stop


def stop_child(proc, stop):
    stop.set()
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


# ---------------------------------------------------------------- timing


def percentiles(samples):
    if not samples:
        return None
    samples.sort()
    n = len(samples)

    def pct(p):
        # nearest rank, as om_bench::harness::Latency
        rank = max(1, min(n, math.ceil(p / 100.0 * n)))
        return samples[rank - 1] * 1000.0

    return {
        "samples": n,
        "mean_ms": sum(samples) / n * 1000.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": samples[-1] * 1000.0,
    }


class Run(object):
    def __init__(self, args, scenario):
        self.args = args
        self.scenario = scenario
        self.start = time.monotonic()
        self.t_from = self.start + args.warmup
        self.t_to = self.t_from + args.duration
        self.lock = threading.Lock()
        self.completed = 0
        self.latencies = []
        self.errors = 0
        self.first_error = None
        self.succeeded = 0
        self.backlog = None
        # With --max-backlog and a counter: sends per worker so far, and the
        # counter before the run (see wait_for_backlog).
        self.sent_by = []
        self.gate = None

    def wait_for_backlog(self):
        """Waits while more than --max-backlog messages are sent and not
        yet received (for senders that only queue), but not past the
        window's end."""
        counter, before, limit = self.gate
        while sum(self.sent_by) - (counter.value - before) > limit and time.monotonic() < self.t_to:
            time.sleep(0.001)

    def loop(self, op, w=0):
        """One worker: op() back to back until the window ends."""
        done, lat, errors, first, ok = 0, [], 0, None, 0
        while True:
            t0 = time.monotonic()
            if t0 >= self.t_to:
                break
            if self.gate is not None:
                # Inside the timed send, as in om-bench.
                self.wait_for_backlog()
            try:
                op()
            except Exception as e:  # counted, reported, and the worker goes on
                errors += 1
                if first is None:
                    first = "%s: %s" % (type(e).__name__, e)
                time.sleep(0.01)
                continue
            t1 = time.monotonic()
            ok += 1
            if self.gate is not None:
                self.sent_by[w] = ok
            if self.t_from <= t1 <= self.t_to:
                done += 1
                lat.append(t1 - t0)
        with self.lock:
            self.completed += done
            self.latencies.extend(lat)
            self.errors += errors
            self.succeeded += ok
            if self.first_error is None:
                self.first_error = first

    def workers(self, op, concurrency, counter=None):
        """Runs the workers; with a counter, samples it at the window edges."""
        threads = [
            threading.Thread(target=self.loop, args=(op, w), daemon=True) for w in range(concurrency)
        ]
        before = counter.value if counter is not None else 0
        if counter is not None and self.args.max_backlog is not None:
            self.sent_by = [0] * concurrency
            self.gate = (counter, before, self.args.max_backlog)
        c1 = None
        for t in threads:
            t.start()
        arrived = None
        if counter is not None:
            time.sleep(max(0.0, self.t_from - time.monotonic()))
            c0 = counter.value
            time.sleep(max(0.0, self.t_to - time.monotonic()))
            c1 = counter.value
            arrived = c1 - c0
        for t in threads:
            t.join()
        if c1 is not None:
            self.backlog = max(0, self.succeeded - (c1 - before))
        return arrived

    def result(self, backend, arrived=None, notes=None):
        a = self.args
        ops = self.completed if arrived is None else arrived
        return {
            "backend": backend,
            "implementation": "python",
            "scenario": self.scenario,
            "concurrency": a.concurrency,
            "payload_bytes": a.payload,
            "warmup_s": a.warmup,
            "duration_s": a.duration,
            "operations": ops,
            "rate_per_s": ops / a.duration,
            "sent": self.completed,
            "errors": self.errors,
            "latency": percentiles(self.latencies),
            "first_error": self.first_error,
            "notes": notes or [],
            "backlog": self.backlog,
        }


def wait_count(counter, target, limit):
    deadline = time.monotonic() + limit
    while counter.value < target:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def backend_of(url):
    return "kafka" if url.startswith("kafka://") else "rabbit"


# ---------------------------------------------------------------- scenarios


def scenario_rpc(args, cast):
    import oslo_messaging as messaging

    topic = "%s_%s" % (args.prefix, "cast" if cast else "rpc")
    proc, counter, stop = start_child(rpc_server_main, args.url, topic)
    try:
        transport = messaging.get_rpc_transport(conf(), url=args.url)
        client = messaging.get_rpc_client(transport, messaging.Target(topic=topic), timeout=30)
        p = payload(args.payload)
        if cast:
            client.cast(CONTEXT, "hit", payload=p)
            if not wait_count(counter, 1, 30):
                raise RuntimeError("the first cast never reached the server")

            def op():
                client.cast(CONTEXT, "hit", payload=p)

        else:
            if len(client.call(CONTEXT, "echo", payload=p)) != len(p):
                raise RuntimeError("bad echo")

            def op():
                back = client.call(CONTEXT, "echo", payload=p)
                if len(back) != len(p):
                    raise RuntimeError("echo returned %d bytes" % len(back))

        run = Run(args, "cast" if cast else "rpc")
        arrived = run.workers(op, args.concurrency, counter if cast else None)
        result = run.result("rabbit", arrived)
        transport.cleanup()
    finally:
        stop_child(proc, stop)
        delete_queues(args.url, [topic, "%s.%s" % (topic, SERVER)])
    return result


def scenario_notify(args):
    import oslo_messaging as messaging

    backend = backend_of(args.url)
    topic = "%s_notify" % args.prefix
    transport = messaging.get_notification_transport(conf(), url=args.url)
    notifier = messaging.Notifier(
        transport, publisher_id="bench.python", driver="messagingv2", topics=[topic]
    )
    body = {"payload": payload(args.payload)}
    notes = []
    pool = None
    if backend == "kafka":
        # The topic must exist before the listener subscribes (librdkafka
        # sees new topics only at its next metadata refresh, 5 min by
        # default), and a fresh consumer group per run avoids waiting for
        # members of earlier runs to time out.
        notifier.info(CONTEXT, "bench.event", body)
        time.sleep(1.0)
        pool = "%s_py_group" % args.prefix
    started = time.monotonic()
    proc, counter, stop = start_child(listener_main, args.url, topic, pool)
    try:
        probes = 0
        while True:
            notifier.info(CONTEXT, "bench.event", body)
            probes += 1
            if wait_count(counter, 1, 0.5):
                break
            if time.monotonic() - started > 180:
                raise RuntimeError("no notification arrived within 180 s (%d probes)" % probes)
        notes.append("listener ready (first probe received) after %.1f s" % (time.monotonic() - started))

        def op():
            notifier.info(CONTEXT, "bench.event", body)

        run = Run(args, "notify")
        arrived = run.workers(op, args.concurrency, counter)
        if backend == "kafka":
            notes.append("Python's Kafka notifier does not wait for delivery reports (produce + poll(0))")
        result = run.result(backend, arrived, notes)
        transport.cleanup()
    finally:
        stop_child(proc, stop)
        if backend == "rabbit":
            delete_queues(args.url, ["%s.info" % topic])
    return result


def delete_queues(url, queues):
    """Best-effort removal of the run's queues (kombu, as oslo uses it)."""
    try:
        import kombu

        amqp = url.replace("rabbit://", "amqp://", 1)
        with kombu.Connection(amqp, connect_timeout=5) as c:
            ch = c.channel()
            for q in queues:
                try:
                    ch.queue_delete(q)
                except Exception:
                    ch = c.channel()
    except Exception:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=["rpc", "cast", "notify"])
    ap.add_argument("--url", default="rabbit://guest:guest@127.0.0.1:35672/")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--payload", type=int, default=200)
    ap.add_argument("--prefix", default=None)
    ap.add_argument(
        "--max-backlog",
        type=int,
        default=None,
        help="casts and notifications: senders wait while more than this many are sent and not yet received",
    )
    args = ap.parse_args()
    if args.prefix is None:
        args.prefix = "bench_py_%s" % os.urandom(4).hex()
    if args.scenario == "notify":
        result = scenario_notify(args)
    else:
        if backend_of(args.url) != "rabbit":
            raise SystemExit("rpc and cast run on RabbitMQ only")
        result = scenario_rpc(args, cast=args.scenario == "cast")
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    # Daemon threads of the library may linger; the result is out.
    os._exit(0)


if __name__ == "__main__":
    main()
