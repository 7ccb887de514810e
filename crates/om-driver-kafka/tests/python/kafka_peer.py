"""Python oslo.messaging 18.3.1 peer for om's Kafka interop test.

Usage: kafka_peer.py URL TOPIC_OUT TOPIC_IN WANT SECONDS POOL|--no-pool GROUP

Sends to TOPIC_OUT, with an oslo.context RequestContext: one `messagingv2`
and one `messaging` notification, one with non-ASCII text and one with a
large payload (BIG_BYTES of text). Then listens on TOPIC_IN and prints one
`GOT <json>` line per notification (a `big` string in the payload is
printed as its length and whether it is the expected text), until WANT
arrived or SECONDS passed. The listener is in pool POOL, or, with
`--no-pool`, in no pool: then its consumer group is the
`[oslo_messaging_kafka] consumer_group` option, set to GROUP. Needs
confluent-kafka (oslo.messaging's `kafka` extra).
"""
import json
import sys
import threading

from oslo_config import cfg
from oslo_context import context as octx
import oslo_messaging as om

url, topic_out, topic_in, want, seconds, pool = sys.argv[1:7]
want, seconds = int(want), float(seconds)
group = None
if pool == "--no-pool":
    pool, group = None, sys.argv[7]

UNICODE = "caf\u00e9 \u2603 \U0001F600 \u6f22\u5b57 \u00fc\u00df"
BIG_BYTES = 256 * 1024


def big_text(n):
    """`n` characters of the text both sides expect in a `big` payload."""
    unit = "om-kafka-interop 0123456789 "
    return (unit * (n // len(unit) + 1))[:n]


conf = cfg.ConfigOpts()
conf([])
transport = om.get_notification_transport(conf, url=url)
ctx = octx.RequestContext(user_id="u-py", project_id="p-py", request_id="req-py")
for driver in ("messagingv2", "messaging"):
    notifier = om.Notifier(transport, publisher_id="py.host", driver=driver, topics=[topic_out])
    notifier.info(ctx, "py.event." + driver, {"from": "python", "driver": driver})
notifier = om.Notifier(transport, publisher_id="py.host", driver="messagingv2", topics=[topic_out])
notifier.info(ctx, "py.event.unicode", {"from": "python", "driver": "unicode", "text": UNICODE})
notifier.info(ctx, "py.event.big", {"from": "python", "driver": "big", "big": big_text(BIG_BYTES)})
print("SENT", flush=True)

done = threading.Event()
count = [0]
out_lock = threading.Lock()


def emit(line):
    # The listener's executor runs endpoints on several threads, and print()
    # writes the text and the newline separately: two GOT lines could come
    # out interleaved. One locked write per line keeps them whole.
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Endpoint:
    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        payload = dict(payload)
        big = payload.pop("big", None)
        if big is not None:
            payload["big_len"] = len(big)
            payload["big_ok"] = big == big_text(len(big))
        emit("GOT " + json.dumps({"ctxt": ctxt, "publisher_id": publisher_id,
                                  "event_type": event_type, "payload": payload}))
        with out_lock:
            count[0] += 1
            if count[0] >= want:
                done.set()
        return om.NotificationResult.HANDLED


listen_transport = om.get_notification_transport(conf, url=url)
if group is not None:
    # Registered by the driver when the first transport was made.
    conf.set_override("consumer_group", group, group="oslo_messaging_kafka")
listener = om.get_notification_listener(
    listen_transport, [om.Target(topic=topic_in)], [Endpoint()],
    executor="threading", pool=pool)
listener.start()
emit("LISTENING")
done.wait(seconds)
listener.stop()
listener.wait()
transport.cleanup()
listen_transport.cleanup()
emit("DONE")
