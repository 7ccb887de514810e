#!/usr/bin/env python3
"""Python oslo.messaging 14.9.3 AMQP 1.0 peer for om's interop tests.

14.9.x is the last oslo.messaging series that ships the `amqp://` driver
(oslo_messaging/_drivers/impl_amqp1.py, on pyngus and python-qpid-proton).
This script runs that real driver, unmodified, against a given amqp:// URL
(the tests point it at the in-process router fixture of
tests/support/router.rs). The modes, arguments and output are those of the
shared core, crates/om-driver-api/testkit/python/oslo_peer.py (also used by
the RabbitMQ peer); this script adds what is specific to 14.9.3 on AMQP 1.0:

  * every mode takes [--config-file F] (e.g. for [oslo_messaging_amqp]
    options);
  * notify-send serializes a RequestContext to its dict (ContextSerializer);
  * notify-listen takes no --pool (the driver raises NotImplementedError for
    pools) and waits 60 s by default;
  * rpc-call and rpc-cast exit at once when done (see main()).

The global cfg.CONF is used on purpose: with a private ConfigOpts the 14.9.3
RPC client fails (NoSuchOptError: oslo_messaging_metrics).
"""

import os
import sys
import warnings

warnings.filterwarnings("ignore")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "om-driver-api", "testkit", "python"))

import oslo_peer  # noqa: E402
import oslo_messaging as messaging  # noqa: E402


class ContextSerializer(messaging.NoOpSerializer):
    """Turns a RequestContext into its dict, as OpenStack services' own
    serializers do (nova.rpc.RequestContextSerializer and the like). The
    AMQP 1.0 driver JSON-encodes the context as given and fails on a
    RequestContext object (the rabbit driver calls to_dict() itself)."""

    def serialize_context(self, ctxt):
        return ctxt.to_dict() if hasattr(ctxt, "to_dict") else ctxt


def main():
    parser = oslo_peer.parser()
    parser.add_argument("--config-file", action="append", default=[])
    args = parser.parse_args()
    conf_args = []
    for f in args.config_file:
        conf_args += ["--config-file", f]
    oslo_peer.CONF(conf_args, project="om-interop-peer-amqp1", default_config_files=[])
    oslo_peer.run_mode(args, listen_timeout=60.0, serializer=ContextSerializer())
    if args.mode in ("rpc-call", "rpc-cast"):
        # The RPC client starts oslo.messaging's metrics sender, a non-daemon
        # thread that keeps the interpreter alive ~10 s after the work is
        # done; everything is printed and cleaned up by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
