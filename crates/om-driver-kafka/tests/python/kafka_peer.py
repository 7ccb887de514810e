"""Python oslo.messaging 18.3.1 peer for om's Kafka interop test.

Usage: kafka_peer.py URL TOPIC_OUT TOPIC_IN WANT SECONDS

Sends one `messagingv2` and one `messaging` notification (with an
oslo.context RequestContext) to TOPIC_OUT, then listens on TOPIC_IN in pool
`py-<TOPIC_IN>` and prints one `GOT <json>` line per notification, until
WANT arrived or SECONDS passed. Needs confluent-kafka (oslo.messaging's
`kafka` extra).
"""
import json
import sys
import threading

from oslo_config import cfg
from oslo_context import context as octx
import oslo_messaging as om

url, topic_out, topic_in, want, seconds = sys.argv[1:6]
want, seconds = int(want), float(seconds)

conf = cfg.ConfigOpts()
conf([])
transport = om.get_notification_transport(conf, url=url)
ctx = octx.RequestContext(user_id="u-py", project_id="p-py", request_id="req-py")
for driver in ("messagingv2", "messaging"):
    notifier = om.Notifier(transport, publisher_id="py.host", driver=driver, topics=[topic_out])
    notifier.info(ctx, "py.event." + driver, {"from": "python", "driver": driver})
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
        emit("GOT " + json.dumps({"ctxt": ctxt, "publisher_id": publisher_id,
                                  "event_type": event_type, "payload": payload}))
        with out_lock:
            count[0] += 1
            if count[0] >= want:
                done.set()
        return om.NotificationResult.HANDLED


listen_transport = om.get_notification_transport(conf, url=url)
listener = om.get_notification_listener(
    listen_transport, [om.Target(topic=topic_in)], [Endpoint()],
    executor="threading", pool="py-" + topic_in)
listener.start()
emit("LISTENING")
done.wait(seconds)
listener.stop()
listener.wait()
transport.cleanup()
listen_transport.cleanup()
emit("DONE")
