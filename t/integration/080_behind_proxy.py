#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""080: what survives a buffering reverse proxy (draft 2.1.2: "proxies ...
might not forward the requests chunk by chunk").

A second Apache with mod_proxy_http stands between client and module, as
an operator's front end would. In-response batches and long polls pass
through it; an in-band session does not: the proxy forwards the response
only once it has sent the whole request, so the greeting never arrives
while the session is open. Clients behind such a proxy use long polls."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    HTTPD_MODULES, CookieJar, Dovecot, Httpd, InbandClient, Test,
    imap_lines, lemonade_location, post)
from imaplib import IMAP4  # noqa: E402

PATH = "/lemonade/imap"


def proxy_conf(port):
    return """\
LoadModule proxy_module "{m}/mod_proxy.so"
LoadModule proxy_http_module "{m}/mod_proxy_http.so"
ProxyPass "/lemonade/" "http://127.0.0.1:{p}/lemonade/"
ProxyPassReverse "/lemonade/" "http://127.0.0.1:{p}/lemonade/"
""".format(m=HTTPD_MODULES, p=port)


with Test("080 behind a proxy") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc, \
            Httpd(tmp, mpm="event", name="httpd-module",
                  body=lemonade_location(dc, extra="LemonadeHeartbeat 5")
                  ) as module, \
            Httpd(tmp, mpm="event", name="httpd-proxy",
                  body=proxy_conf(module.port)) as proxy:
        jar = CookieJar()
        st, _, out = post(proxy.port, PATH, imap_lines(
            "a1 LOGIN demo demo", "a2 SELECT INBOX"), jar=jar)
        t.ok(st == 200 and b"a2 OK" in out and jar,
             "an in-response batch and its cookie pass the proxy", out)

        def later():
            time.sleep(1)
            imap = IMAP4("127.0.0.1", dc.port)
            imap.login("demo", "demo")
            imap.append("INBOX", None, None, b"Subject: n\r\n\r\nn\r\n")
            imap.logout()
        th = threading.Thread(target=later)
        th.start()
        start = time.time()
        st, _, out = post(proxy.port, PATH, imap_lines("p1 IDLE"), jar=jar)
        took = time.time() - start
        th.join(10)
        t.ok(st == 200 and b"EXISTS" in out and took < 4.5,
             "a long poll passes the proxy and brings the news "
             "(%.2f s)" % took, out)

        c = InbandClient(proxy.port)
        c.send("b1 NOOP\r\n")
        first = c.next_chunk(timeout=3)
        t.ok(first is None, "an in-band session does not: the proxy holds "
             "the greeting back while the request is open", first)
        c.close()
