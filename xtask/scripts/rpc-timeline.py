#!/usr/bin/env python3
"""Where one RabbitMQ call's time goes, from the socket calls of om-bench.

A diagnostic, not part of any test. Record one caller's socket writes and
reads (the four connections of om's layout each have their own lapin
thread), then run this on the `perf script` text:

    perf record -D 3000 -o calls.data \
        -e syscalls:sys_enter_sendto,syscalls:sys_enter_writev \
        -e syscalls:sys_exit_recvfrom,syscalls:sys_exit_read -- \
        om-bench rabbit om rpc --concurrency 1 --duration 3 --warmup 1 --url $OM_RABBIT_URL
    perf script -i calls.data -F comm,tid,time,event,trace > calls.txt
    python3 xtask/scripts/rpc-timeline.py calls.txt

(`raw --split-connections` instead of `om` times raw lapin on the same
layout.) The threads are told apart by what they send and receive:

- the server's consuming connection receives requests and sends
  acknowledgements (small frames);
- the client's reply connection only receives;
- of the two publishing connections, the client's sends requests whose
  delivery to the server is 38 bytes longer (the basic.deliver method
  against basic.publish); the server's sends replies.

Each call is then cut into the client's request write (W1), the server's
read of it (R1), its acknowledgement (ACK), its reply write (W2) and the
client's read of the reply (R2); the next W1 closes the cycle. The hops
W1→R1 and W2→R2 are the broker plus the wake-up of the reading thread;
R1→W2 and R2→W1 are the server's and the client's own work.
"""

import collections
import re
import statistics
import sys

LINE = re.compile(r"\s*(\S+)\s+(\d+)\s+([\d.]+):\s+syscalls:(sys_\w+):\s*(.*)")
SMALL = 100  # frames below this many bytes: acks and confirms


def events(path):
    out = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            comm, tid, t, name, args = m.groups()
            t = float(t) * 1e6
            if name == "sys_enter_sendto":
                n = int(re.search(r"len: (0x[0-9a-f]+)", args).group(1), 16)
                out.append((t, tid, "S", n))
            elif name == "sys_enter_writev":
                out.append((t, tid, "S", None))  # size unknown: a large write
            elif name in ("sys_exit_recvfrom", "sys_exit_read") and comm.startswith("lapin"):
                a = args.strip()
                n = int(a, 16) if a.startswith("0x") else int(a)
                if n > 0:
                    out.append((t, tid, "R", n))
    return out


def large(n):
    return n is None or n >= SMALL


def roles(evs):
    sends, recvs = collections.defaultdict(list), collections.defaultdict(list)
    for _, tid, kind, n in evs:
        (sends if kind == "S" else recvs)[tid].append(n)
    busy = lambda xs: sum(1 for n in xs if large(n)) > 100
    mode = lambda xs: collections.Counter(n for n in xs if large(n)).most_common(1)[0][0]
    acks = lambda tid: sum(1 for n in sends[tid] if n is not None and n < SMALL)
    readers = [t for t in recvs if busy(recvs[t])]
    consumer = max(readers, key=acks)
    reply = next(t for t in readers if t != consumer)
    writers = [t for t in sends if busy(sends[t])]
    if len(writers) != 2:
        sys.exit(f"expected two publishing threads, found {len(writers)}")
    delivered = mode(recvs[consumer])
    client = next((t for t in writers if mode(sends[t]) == delivered - 38), writers[0])
    server = next(t for t in writers if t != client)
    return client, consumer, server, reply


def main(path):
    evs = events(path)
    client, consumer, server, reply = roles(evs)
    marks = []
    for t, tid, kind, n in evs:
        if tid == client and kind == "S" and large(n):
            marks.append(("W1", t))
        elif tid == consumer and kind == "R" and large(n):
            marks.append(("R1", t))
        elif tid == consumer and kind == "S" and not large(n):
            marks.append(("ACK", t))
        elif tid == server and kind == "S" and large(n):
            marks.append(("W2", t))
        elif tid == reply and kind == "R" and large(n):
            marks.append(("R2", t))
    segs = collections.defaultdict(list)
    for i, (name, t0) in enumerate(marks):
        if name != "W1":
            continue
        times, ack, k = [t0], None, i + 1
        for want in ("R1", "W2", "R2", "W1"):
            while k < len(marks) and marks[k][0] != want:
                if marks[k][0] == "ACK" and ack is None and len(times) == 2:
                    ack = marks[k][1]
                k += 1
            if k == len(marks):
                break
            times.append(marks[k][1])
            k += 1
        if len(times) != 5 or times[4] - times[0] > 3000:
            continue
        w1, r1, w2, r2, nxt = times
        segs["broker hop W1->R1"].append(r1 - w1)
        segs["server R1->W2"].append(w2 - r1)
        if ack is not None:
            segs["  of which R1->ACK"].append(ack - r1)
        segs["broker hop W2->R2"].append(r2 - w2)
        segs["client R2->W1"].append(nxt - r2)
        segs["cycle"].append(nxt - w1)
    for name, xs in segs.items():
        print(f"{name:20} n={len(xs):5}  p50 {statistics.median(xs):6.1f} us  mean {statistics.mean(xs):6.1f} us")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
