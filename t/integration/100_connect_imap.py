#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""100: lemonade-connect carries IMAP clients over the binding, in-band.

A real synchroniser (mbsync) syncs a mailbox of several folders, flags
and message sizes through lemonade-connect, and ends with the same
Maildir as a direct sync against Dovecot; its changes go back up the
same way. imaplib's IDLE gets news pushed at once. HTTPS is verified
against a CA of the test's own (and refused for a name the certificate
does not carry), also through an HTTP proxy's CONNECT (draft 2.1.3). A
dropped HTTP connection gives the client a BYE and a close. Every
lemonade-connect is a child on a free port, stopped by its PID."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    HTTPD_MODULES, Httpd, Test, lemonade_location)
from lemconnect import (  # noqa: E402
    CONNECT_BIN, Connect, IdleDovecot, change_locally, idle_news,
    imap_logged_in, maildir_state, mbsync, populate, read_until_close,
    state_diff)
from imaplib import IMAP4  # noqa: E402

PATH = "/lemonade/imap"


def sync_matches(t, tmp, dc, lc):
    rc, out, direct = mbsync(tmp, "direct", dc.port)
    t.ok(rc == 0, "mbsync syncs directly against Dovecot", out)
    start = time.time()
    rc, out, through = mbsync(tmp, "through", lc.port)
    t.ok(rc == 0, "mbsync syncs through lemonade-connect (%.1f s)"
         % (time.time() - start), out + lc.log())
    a, b = maildir_state(direct), maildir_state(through)
    t.ok(len(a) == 4 and sum(len(m) for m in a.values()) == 18,
         "the direct sync has the four folders and 18 messages", sorted(a))
    t.ok(a == b, "the Maildir synced through it is identical: folders, "
         "flags, contents", state_diff(a, b))

    change_locally(through)
    rc, out, _ = mbsync(tmp, "through", lc.port)
    t.ok(rc == 0, "local changes go up through lemonade-connect", out)
    rc, out, _ = mbsync(tmp, "direct", dc.port)
    a, b = maildir_state(direct), maildir_state(through)
    t.ok(rc == 0 and a == b, "and a direct sync finds them on the server: "
         "a 300 kB message and a flag", state_diff(a, b))
    t.ok("IMAP in-band" in lc.log() and "in-response" not in
         lc.log().split("listening", 1)[1], "every session was in-band",
         lc.log())


def idle(t, dc, lc):
    cont, exists, tagged, took, stray = idle_news(lc.port, dc)
    t.ok(cont.startswith(b"+"), "IDLE gets the server's continuation", cont)
    t.ok(exists and took < 3, "an APPEND elsewhere is pushed as EXISTS "
         "(%s s)" % (took and "%.2f" % took), exists)
    t.ok(tagged.split(b" ")[1:2] == [b"OK"] and not stray,
         "DONE gets the tagged OK, and only one", (tagged, stray))


def dropped(t, tmp, dc):
    # prefork: its children end at once on SIGTERM, mid-session
    with Httpd(tmp, mpm="prefork", name="httpd-drop",
               body=lemonade_location(dc)) as h, \
            Connect(tmp, h.url(PATH), name="connect-drop") as lc:
        sock, got = imap_logged_in(lc.port)
        t.ok(b"d1 OK" in got, "a client logs in through lemonade-connect",
             got)
        start = time.time()
        h.stop()
        data, closed = read_until_close(sock, 20)
        took = time.time() - start
        sock.close()
        t.ok(b"* BYE" in data and closed, "stopping the httpd gives the "
             "client a BYE and a close (%.1f s)" % took, data)
        t.ok(lc.alive(), "lemonade-connect goes on serving", lc.log())


# --- HTTPS, and a proxy's CONNECT --------------------------------------------

def make_ca(tmp):
    """A CA and a certificate for the IP address 127.0.0.1 only."""
    d = os.path.join(tmp, "pki")
    os.makedirs(d)

    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       capture_output=True, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=lemtest CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=lemtest server")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey",
        "ca.key", "-CAcreateserial", "-days", "2", "-out", "server.crt",
        "-extfile", "ext.cnf")
    return d


def tls_conf(pki):
    return """\
LoadModule ssl_module "{m}/mod_ssl.so"
SSLEngine on
SSLCertificateFile "{d}/server.crt"
SSLCertificateKeyFile "{d}/server.key"
""".format(m=HTTPD_MODULES, d=pki)


def forward_proxy_conf(allowed_port):
    return """\
LoadModule proxy_module "{m}/mod_proxy.so"
LoadModule proxy_connect_module "{m}/mod_proxy_connect.so"
ProxyRequests On
AllowCONNECT {p}
<Proxy "*">
    Require all granted
</Proxy>
""".format(m=HTTPD_MODULES, p=allowed_port)


def login_works(port):
    imap = IMAP4("127.0.0.1", port, timeout=15)
    try:
        return imap.login("demo", "demo")[0] == "OK" and \
            imap.select("INBOX")[0] == "OK"
    finally:
        imap.logout()


def probe_fails(url, args):
    res = subprocess.run([CONNECT_BIN] + args + ["127.0.0.1:1", url],
                         capture_output=True, text=True, timeout=30)
    return res.returncode, res.stderr


def https(t, tmp, dc):
    pki = make_ca(tmp)
    ca = os.path.join(pki, "ca.crt")
    with Httpd(tmp, mpm="event", name="httpd-tls",
               body=tls_conf(pki) + lemonade_location(dc)) as h, \
            Httpd(tmp, mpm="event", name="httpd-forward",
                  body=forward_proxy_conf(0)) as proxy:
        url = "https://127.0.0.1:%d%s" % (h.port, PATH)
        with Connect(tmp, url, ["--ca", ca], name="connect-tls") as lc:
            t.ok(login_works(lc.port), "over HTTPS, verified with --ca, a "
                 "client logs in")
            rc, out, tls = mbsync(tmp, "tls", lc.port)
            _, _, direct = mbsync(tmp, "direct", dc.port)
            a, b = maildir_state(direct), maildir_state(tls)
            t.ok(rc == 0 and a == b, "and mbsync's sync over HTTPS matches "
                 "a direct one", out + state_diff(a, b))
            change_locally(tls)
            rc, out, _ = mbsync(tmp, "tls", lc.port)
            mbsync(tmp, "direct", dc.port)
            a, b = maildir_state(direct), maildir_state(tls)
            t.ok(rc == 0 and a == b, "and its changes go up over HTTPS",
                 out + state_diff(a, b))

        with Connect(tmp, url, ["--ca", ca, "--mode", "in-response"],
                     name="connect-tls-batches") as lc:
            t.ok(login_works(lc.port), "over HTTPS in in-response mode, a "
                 "client logs in")

        rc, err = probe_fails(url, [])
        t.ok(rc == 1 and "not trusted" in err, "a certificate from no CA "
             "of the system's store is refused", err)
        with Connect(tmp, url, ["--insecure"], name="connect-insecure") as lc:
            t.ok(login_works(lc.port), "and taken only with --insecure")
        rc, err = probe_fails("https://localhost:%d%s" % (h.port, PATH),
                              ["--ca", ca])
        t.ok(rc == 1 and "not trusted" in err, "a certificate that does not "
             "name the URL's host is refused", err)

        proxy.body = forward_proxy_conf(h.port)
        proxy.stop()
        proxy.start()
        args = ["--ca", ca, "--proxy", "http://127.0.0.1:%d" % proxy.port]
        with Connect(tmp, url, args, name="connect-proxy") as lc:
            t.ok(login_works(lc.port), "through an HTTP proxy's CONNECT, "
                 "TLS end to end, a client logs in", lc.log())


with Test("100 lemonade-connect, IMAP") as t:
    tmp = t.tmpdir()
    with IdleDovecot(tmp, users={"demo": "demo"}) as dc:
        populate(dc)
        with Httpd(tmp, mpm="event", body=lemonade_location(dc)) as h, \
                Connect(tmp, h.url(PATH)) as lc:
            t.ok("IMAP at http://" in lc.log(), "OPTIONS tells "
                 "lemonade-connect the URL carries IMAP", lc.log())
            sync_matches(t, tmp, dc, lc)
            idle(t, dc, lc)
        dropped(t, tmp, dc)
        https(t, tmp, dc)
