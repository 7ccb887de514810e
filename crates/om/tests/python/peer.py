#!/usr/bin/env python3
"""Python oslo.messaging 18.3.1 peer for om's interoperability tests.

Runs the real Python library against the same broker as om. The modes,
arguments and output are those of the shared core,
crates/om-driver-api/testkit/python/oslo_peer.py (also used by the AMQP 1.0
peer); this script adds what is specific to 18.3.1 on RabbitMQ:

  notify-listen   [--pool P]  (a listener pool; 30 s default --timeout)
"""

import os
import sys
import warnings

warnings.filterwarnings("ignore")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "om-driver-api", "testkit", "python"))

import oslo_peer  # noqa: E402


def main():
    parser = oslo_peer.parser()
    parser.add_argument("--pool")
    args = parser.parse_args()
    oslo_peer.CONF([], project="om-interop-peer")
    oslo_peer.run_mode(args, listen_timeout=30.0)


if __name__ == "__main__":
    main()
