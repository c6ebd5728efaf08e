#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""130: the status page for operators.

`SetHandler lemonade-status` shows sessions by protocol and what they do,
backend connections, requests, errors and bytes; `?auto` gives the same
as "Key: value" lines; mod_status's server-status shows them too. No
cookie, user name or password appears on either."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    HTTPD_MODULES, CookieJar, Dovecot, Httpd, InbandClient, SmtpSink, Test,
    imap_lines, lemonade_location, post, request, wait_for)

STATUS = """\
LoadModule status_module "{m}/mod_status.so"
<Location "/lemonade-status">
    SetHandler lemonade-status
</Location>
<Location "/server-status">
    SetHandler server-status
</Location>
""".format(m=HTTPD_MODULES)


def figures(port):
    st, _, body = request(port, "/lemonade-status?auto", method="GET")
    out = {}
    for line in body.decode().splitlines():
        key, _, value = line.partition(": ")
        out[key] = int(value)
    return st, out


with Test("130 status") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc, \
            SmtpSink(tmp) as sink, \
            Httpd(tmp, mpm="event", body=STATUS
                  + lemonade_location(dc, extra="LemonadeHeartbeat 3")
                  + lemonade_location(sink.url(), path="/lemonade/smtp")
                  ) as h:
        st, fig = figures(h.port)
        t.eq(st, 200, "?auto answers 200")
        t.eq(fig.get("Sessions"), 0, "with Sessions: 0 before any client")

        jar = CookieJar()
        post(h.port, "/lemonade/imap", imap_lines("a1 LOGIN demo demo"),
             jar=jar)
        smtp = CookieJar()
        post(h.port, "/lemonade/smtp", b"EHLO me\r\n", jar=smtp)
        post(h.port, "/lemonade/imap", b"x1 NOOP \xe9\r\n")
        c = InbandClient(h.port)
        c.next_chunk()
        st, fig = figures(h.port)
        t.eq((fig["Sessions"], fig["IMAPIdle"], fig["SMTPIdle"],
              fig["IMAPInBand"]), (3, 1, 1, 1),
             "an IMAP and an SMTP session idle and an in-band one are "
             "counted by protocol")
        t.eq(fig["BackendConnections"], 3, "with their backend connections")
        t.ok(fig["Requests"] >= 3 and fig["ErrorsClient"] >= 1
             and fig["BytesIn"] > 0 and fig["BytesOut"] > 0,
             "requests, bytes and a client error are counted", fig)

        poll = threading.Thread(target=post, args=(
            h.port, "/lemonade/imap", imap_lines("p1 SELECT INBOX",
                                                 "p2 IDLE")),
            kwargs={"jar": jar})
        poll.start()
        t.ok(wait_for(lambda: figures(h.port)[1]["IMAPLongPoll"] == 1, 5),
             "a session held in a long poll shows as IMAPLongPoll")
        poll.join(10)
        c.send("b1 LOGOUT\r\n")
        c.until(lambda ch: ch == b"")
        c.close()
        t.ok(wait_for(lambda: figures(h.port)[1]["IMAPInBand"] == 0, 5),
             "an ended in-band session leaves the count")

        st, _, html = request(h.port, "/lemonade-status", method="GET")
        t.ok(st == 200 and b"<table>" in html and b"Sessions" in html,
             "the page itself is HTML", html[:200])
        cookie = jar.cookies["lemonade_session"].encode()
        t.ok(cookie not in html and b"demo" not in html,
             "and shows no cookie and no user name")

        st, _, text = request(h.port, "/server-status?auto", method="GET")
        t.ok(st == 200 and b"LemonadeSessions: " in text,
             "mod_status's server-status carries the same figures", text)
        st, _, _ = request(h.port, "/lemonade-status", body=b"x",
                           method="POST")
        t.eq(st, 405, "the status page answers only GET")
