#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""140: scale-out across Apache nodes with mod_proxy_balancer.

Two nodes with the module (LemonadeRoute node1 / node2) behind Apache's own
balancer, sticky on the session cookie: a session's requests come back to
the node that holds its backend connection; when that node goes away, the
client gets a clean not-authenticated answer and its new login lands on
the surviving node."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    HTTPD_MODULES, CookieJar, Dovecot, Httpd, Test, imap_lines,
    lemonade_location, post)

PATH = "/lemonade/imap"


def balancer(p1, p2):
    return """\
LoadModule proxy_module "{m}/mod_proxy.so"
LoadModule proxy_http_module "{m}/mod_proxy_http.so"
LoadModule proxy_balancer_module "{m}/mod_proxy_balancer.so"
LoadModule slotmem_shm_module "{m}/mod_slotmem_shm.so"
LoadModule lbmethod_byrequests_module "{m}/mod_lbmethod_byrequests.so"
<Proxy "balancer://mail">
    BalancerMember "http://127.0.0.1:{p1}" route=node1 retry=60
    BalancerMember "http://127.0.0.1:{p2}" route=node2 retry=60
    ProxySet stickysession=lemonade_session
</Proxy>
ProxyPass "/lemonade/" "balancer://mail/lemonade/"
""".format(m=HTTPD_MODULES, p1=p1, p2=p2)


def route_of(jar):
    return jar.cookies.get("lemonade_session", "").rpartition(".")[2]


with Test("140 balancer") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        node1 = Httpd(tmp, mpm="event", name="httpd-node1",
                      body="LemonadeRoute node1\n" + lemonade_location(dc))
        node2 = Httpd(tmp, mpm="event", name="httpd-node2",
                      body="LemonadeRoute node2\n" + lemonade_location(dc))
        with node1, node2, Httpd(tmp, mpm="event", name="httpd-balancer",
                                 body=balancer(node1.port, node2.port)) as lb:
            sessions = []
            for i in range(4):
                jar = CookieJar()
                st, _, out = post(lb.port, PATH, imap_lines(
                    "a1 LOGIN demo demo", "a2 SELECT INBOX"), jar=jar)
                sessions.append(jar)
            routes = sorted(route_of(j) for j in sessions)
            t.eq(routes, ["node1", "node1", "node2", "node2"],
                 "new sessions are spread over both nodes, each id ending "
                 "in its node's route")
            stuck = 0
            for jar in sessions:
                for n in range(5):
                    st, _, out = post(lb.port, PATH,
                                      imap_lines("s%d NOOP" % n), jar=jar)
                    stuck += st == 200
            t.eq(stuck, 20, "every later request of a session reaches the "
                 "node that holds it (NOOP after SELECT answered 200)")

            on1 = [j for j in sessions if route_of(j) == "node1"][0]
            node1.stop()
            st, _, out = post(lb.port, PATH, imap_lines("g1 SELECT INBOX"),
                              jar=on1)
            t.ok(st == 500 and b"g1 OK" not in out,
                 "when its node goes away, a session's next request gets a "
                 "clean not-authenticated answer", (st, out))
            t.eq(route_of(on1), "node2", "with a new session on the "
                 "surviving node")
            st, _, out = post(lb.port, PATH, imap_lines(
                "g2 LOGIN demo demo", "g3 SELECT INBOX"), jar=on1)
            st2, _, out2 = post(lb.port, PATH, imap_lines("g4 NOOP"),
                                jar=on1)
            t.ok(st == 200 and st2 == 200 and route_of(on1) == "node2",
                 "a new login lands on the surviving node and stays there",
                 (out, out2))
