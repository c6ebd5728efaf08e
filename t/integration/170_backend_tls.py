#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""170: TLS to the backend, verified.

Dovecot with an imaps listener and STARTTLS, and a certificate for
"localhost" from a test CA made here with openssl; Dovecot's log says
which logins came over TLS. imaps:// and
imap:// with LemonadeBackendStartTLS both work in both modes when the
certificate verifies against LemonadeBackendCA; a certificate from another
CA, or one that does not name the host, is a 502 with a clear log line,
never a silent fallback to plaintext."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, InbandClient, Test, free_port, imap_lines,
    lemonade_location, make_dir, post, wait_for)

PATH = "/lemonade/imap"

TLS_CONF = """
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
service imap-login {{
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
"""


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   capture_output=True, timeout=60)


def make_pki(d):
    """A CA, a server certificate for localhost it signed, another CA."""
    make_dir(d)
    f = {n: os.path.join(d, n) for n in (
        "ca.key", "ca.pem", "other.key", "other.pem", "server.key",
        "server.csr", "server.pem", "ext.cnf")}
    for ca in ("ca", "other"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", f[ca + ".key"], "-out", f[ca + ".pem"],
                "-subj", "/CN=mod_lemonade test %s" % ca)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout",
            f["server.key"], "-out", f["server.csr"], "-subj",
            "/CN=localhost")
    with open(f["ext.cnf"], "w") as fh:
        fh.write("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", f["server.csr"], "-CA", f["ca.pem"],
            "-CAkey", f["ca.key"], "-CAcreateserial", "-days", "1",
            "-extfile", f["ext.cnf"], "-out", f["server.pem"])
    for name in f.values():
        if os.path.exists(name):
            os.chmod(name, 0o644)
    return f


class TlsDovecot(Dovecot):
    """lemtest's Dovecot with ssl = required and an imaps listener."""

    def __init__(self, tmp, pki, **kw):
        super().__init__(tmp, **kw)
        self.pki = pki
        self.imaps_port = free_port()

    def write_config(self):
        super().write_config()
        with open(self.conf, "a") as f:
            f.write(TLS_CONF.format(cert=self.pki["server.pem"],
                                    key=self.pki["server.key"],
                                    port=self.imaps_port))


def location(path, url, ca, extra=""):
    return lemonade_location(url, path=path, extra="LemonadeBackendCA %s\n"
                             "LemonadeBackendTimeout 5\n%s" % (ca, extra))


with Test("170 backend TLS") as t:
    tmp = t.tmpdir()
    pki = make_pki(os.path.join(tmp, "pki"))
    with TlsDovecot(tmp, pki, users={"demo": "demo"}) as dc:
        imaps = "imaps://localhost:%d" % dc.imaps_port
        plain = "imap://localhost:%d" % dc.port
        body = (location("/imaps", imaps, pki["ca.pem"])
                + location("/starttls", plain, pki["ca.pem"],
                           "LemonadeBackendStartTLS On")
                + location("/plain", plain, pki["ca.pem"])
                + location("/othera", imaps, pki["other.pem"])
                + location("/byip", "imaps://127.0.0.1:%d" % dc.imaps_port,
                           pki["ca.pem"]))
        with Httpd(tmp, mpm="event", body=body) as h:
            for path, how in (("/imaps", "imaps://"),
                              ("/starttls", "STARTTLS")):
                jar = CookieJar()
                st, _, out = post(h.port, path, imap_lines(
                    "a1 LOGIN demo demo"), jar=jar)
                t.ok(st == 200 and b"a1 OK" in out,
                     "%s: a verified TLS connection carries a LOGIN" % how,
                     out)
                st, _, out = post(h.port, path,
                                  imap_lines("a2 SELECT INBOX"), jar=jar)
                t.eq(st, 200, "%s: and the session goes on in the next "
                     "request" % how)
                c = InbandClient(h.port, path=path)
                greeting = c.next_chunk()
                c.send("b1 LOGIN demo demo\r\n")
                got, ok = c.until_tagged("b1")
                t.ok(ok and got[-1].startswith(b"b1 OK"),
                     "%s: in-band too" % how, (greeting, got))
                c.close()

            def logins_now():
                return [ln for ln in dc.log().splitlines() if "Login:" in ln]
            wait_for(lambda: len(logins_now()) == 4, 5)
            logins = logins_now()
            t.ok(len(logins) == 4 and all(", TLS," in ln for ln in logins),
                 "Dovecot saw every one of those logins over TLS",
                 "\n".join(logins))
            st, _, out = post(h.port, "/plain",
                              imap_lines("c1 LOGIN demo demo"))
            wait_for(lambda: len(logins_now()) == 5, 5)
            logins = logins_now()
            t.ok(st == 200 and len(logins) == 5
                 and ", TLS," not in logins[-1],
                 "and one without LemonadeBackendStartTLS in clear (the "
                 "check can tell)", logins[-1:])

            st, _, out = post(h.port, "/othera",
                              imap_lines("d1 LOGIN demo demo"))
            t.ok(st == 502 and b"not trusted" in out,
                 "a certificate from another CA is a 502", out)
            st, _, out = post(h.port, "/byip",
                              imap_lines("e1 LOGIN demo demo"))
            t.ok(st == 502 and b"TLS" in out,
                 "a certificate that does not name the host is a 502", out)
            c = InbandClient(h.port, path="/othera")
            c.next_chunk()
            t.eq(c.status, 502, "in-band too")
            c.close()
            log = h.error_log()
            t.ok(re.search(r"lemonade:error.*LEM0601.*not trusted", log),
                 "the error log says why TLS failed", log[-3000:])
            t.ok("exit signal" not in log, "no child crashed")
