#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""160: HTTPS in front (draft 3), and HTTP CONNECT to the mail server
(draft 2.1.3) with Apache's own mod_proxy_connect.

Over HTTPS the session cookie is Secure and LemonadeRequireTLS lets the
binding through. A real client (curl's imap:// through --proxytunnel)
reaches Dovecot through CONNECT, while a CONNECT to another port or
another host is refused, as conf.d/lemonade-connect.conf sets it up."""

import os
import socket
import ssl
import subprocess
import sys
import http.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    HTTPD_MODULES, Dovecot, Httpd, Test, free_port, imap_lines,
    lemonade_location, make_dir)


def make_cert(d):
    """A self-signed certificate for 127.0.0.1, made by openssl here."""
    make_dir(d)
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1",
                    "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)
    return key, crt


def https_conf(port, key, crt, dc):
    return """\
LoadModule ssl_module "{m}/mod_ssl.so"
LoadModule socache_shmcb_module "{m}/mod_socache_shmcb.so"
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile "{crt}"
    SSLCertificateKeyFile "{key}"
{loc}
</VirtualHost>
{loc}
""".format(m=HTTPD_MODULES, port=port, crt=crt, key=key,
           loc=lemonade_location(dc, extra="LemonadeRequireTLS On"))


def connect_conf(dc):
    return """\
LoadModule proxy_module "{m}/mod_proxy.so"
LoadModule proxy_connect_module "{m}/mod_proxy_connect.so"
ProxyRequests On
AllowCONNECT 25 143 465 587 993 {port}
<Proxy "*">
    Require all denied
</Proxy>
<ProxyMatch "^127\\.0\\.0\\.1:(25|143|465|587|993|{port})$">
    Require all granted
</ProxyMatch>
""".format(m=HTTPD_MODULES, port=dc.port)


def https_post(port, crt, body):
    ctx = ssl.create_default_context(cafile=crt)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                       timeout=30)
    try:
        conn.request("POST", "/lemonade/imap", body=body, headers={
            "Content-Type": "application/vnd.lemonade"})
        resp = conn.getresponse()
        return resp.status, resp.msg, resp.read()
    finally:
        conn.close()


def connect_status(proxy_port, target):
    """The proxy's status line for a CONNECT to target."""
    with socket.create_connection(("127.0.0.1", proxy_port), 10) as s:
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                   % (target, target)).encode())
        return int(s.recv(256).split(b" ")[1])


def curl_connect(proxy_port, target):
    return subprocess.run(
        ["curl", "-s", "--max-time", "10", "--proxytunnel", "-x",
         "http://127.0.0.1:%d" % proxy_port, "-u", "demo:demo",
         "imap://%s/" % target], capture_output=True, timeout=30)


with Test("160 HTTPS and CONNECT") as t:
    tmp = t.tmpdir()
    key, crt = make_cert(os.path.join(tmp, "pki"))
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        tls_port = free_port()
        with Httpd(tmp, mpm="event", name="httpd-https",
                   body=https_conf(tls_port, key, crt, dc)) as h:
            st, hdrs, out = https_post(tls_port, crt,
                                       imap_lines("a1 LOGIN demo demo"))
            cookie = hdrs.get("Set-Cookie") or ""
            t.ok(st == 200 and b"a1 OK" in out,
                 "the binding answers over HTTPS, LemonadeRequireTLS on",
                 out)
            t.ok("; Secure" in cookie and "HttpOnly" in cookie,
                 "and its session cookie is Secure", cookie)

        with Httpd(tmp, mpm="event", name="httpd-connect",
                   body=connect_conf(dc)) as p:
            res = curl_connect(p.port, "127.0.0.1:%d" % dc.port)
            t.ok(res.returncode == 0 and b"INBOX" in res.stdout,
                 "curl's imap:// reaches Dovecot through CONNECT",
                 res.stdout + res.stderr)
            # targets that answer, so only the proxy can refuse them
            st = connect_status(p.port, "127.0.0.1:%d" % p.port)
            t.ok(st in (403, 405), "a CONNECT to a port that is not a mail "
                 "port is refused (%s)" % st)
            st = connect_status(p.port, "localhost:%d" % dc.port)
            t.eq(st, 403, "a CONNECT to another host name is refused")
            st = connect_status(p.port, "127.0.0.1:%d" % dc.port)
            t.eq(st, 200, "while the mail host's own is let through")
