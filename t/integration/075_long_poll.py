#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""075: IDLE as a long poll in in-response mode, and OPTIONS probing.

An extension of draft 2.1.1 (which has no IDLE in this mode): IDLE in a
batch holds the request until the server has news or LemonadeHeartbeat
passes, then the gateway ends the IDLE and answers everything. OPTIONS
(draft section 5, item 1) tells a client what the URL is bound to."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post,
    request)
from imaplib import IMAP4  # noqa: E402

PATH = "/lemonade/imap"


def batch(port, jar, *lines):
    start = time.time()
    st, hdrs, body = post(port, PATH, imap_lines(*lines), jar=jar,
                          timeout=30)
    return st, body, time.time() - start


def append_later(dc, delay):
    def run():
        time.sleep(delay)
        imap = IMAP4("127.0.0.1", dc.port)
        imap.login("demo", "demo")
        imap.append("INBOX", None, None, b"Subject: news\r\n\r\nnews\r\n")
        imap.logout()
    th = threading.Thread(target=run)
    th.start()
    return th


with Test("075 long poll") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        body = lemonade_location(dc, extra="LemonadeHeartbeat 3")
        with Httpd(tmp, mpm="event", body=body) as h:
            st, hdrs, _ = request(h.port, PATH, method="OPTIONS")
            t.eq(st, 204, "OPTIONS is answered")
            t.eq(hdrs.get("Allow"), "POST, OPTIONS", "with Allow")
            t.eq(hdrs.get("Lemonade-Protocol"), "IMAP",
                 "naming the protocol the URL is bound to")
            t.eq(hdrs.get("Lemonade-Modes"), "in-response, in-band, "
                 "long-poll", "the modes it serves")
            t.eq(hdrs.get("Lemonade-Heartbeat"), "3",
                 "and the long poll's heartbeat in seconds")

            jar = CookieJar()
            batch(h.port, jar, "a1 LOGIN demo demo", "a2 SELECT INBOX")

            th = append_later(dc, 1.0)
            st, out, took = batch(h.port, jar, "p1 IDLE", "p2 NOOP")
            th.join(10)
            t.ok(st == 200 and b"EXISTS" in out and b"p1 OK" in out
                 and b"p2 OK" in out,
                 "a long poll is answered with the news and the tagged OK, "
                 "and the batch goes on", out)
            t.ok(1.0 <= took < 2.9, "as soon as the news came, not at the "
                 "heartbeat (%.2f s)" % took)
            t.ok(b"+ idling" not in out, "the continuation is the "
                 "gateway's, not the client's")

            st, out, took = batch(h.port, jar, "q1 IDLE")
            t.ok(st == 200 and b"q1 OK" in out and b"EXISTS" not in out,
                 "with no news it is answered at the heartbeat", out)
            t.ok(2.9 <= took < 6, "after LemonadeHeartbeat (%.2f s)" % took)

            st, out, took = batch(h.port, CookieJar(), "r1 IDLE")
            t.ok(st == 500 and b"r1 OK" not in out and took < 2,
                 "IDLE before LOGIN is refused by the server at once", out)
        t.ok("exit signal" not in h.error_log(), "no child crashed")
