#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# holdproxy.py LISTEN_PORT UPSTREAM_PORT CTL_DIR: a TCP proxy for one NATS
# client (tests/nats/test_bridge_adv2.sh, late). Client-to-server bytes
# pass until the first publish with headers ("HPUB "); from there they
# are held (their count in CTL_DIR/held), also after the client is gone,
# and delivered when CTL_DIR/release appears: a dead client's publishes
# that reach the server late. It writes CTL_DIR/ready when it listens
# and CTL_DIR/delivered when it has delivered.
import os
import socket
import sys
import threading
import time

lp, up, ctl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lp))
ls.listen(1)
open(os.path.join(ctl, "ready"), "w").close()


def to_client(u, c):
    try:
        while True:
            d = u.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass


c, _ = ls.accept()
u = socket.create_connection(("127.0.0.1", up))
threading.Thread(target=to_client, args=(u, c), daemon=True).start()
held = bytearray()
holding = False
while True:
    try:
        d = c.recv(65536)
    except OSError:
        d = b""
    if not d:
        break
    if not holding:
        i = d.find(b"HPUB ")
        if i < 0:
            u.sendall(d)
            continue
        holding = True
        u.sendall(d[:i])
        d = d[i:]
    held += d
    with open(os.path.join(ctl, "held.tmp"), "w") as f:
        f.write(str(len(held)))
    os.rename(os.path.join(ctl, "held.tmp"), os.path.join(ctl, "held"))
while not os.path.exists(os.path.join(ctl, "release")):
    time.sleep(0.05)
u.sendall(bytes(held))
open(os.path.join(ctl, "delivered"), "w").close()
time.sleep(3)
u.close()
