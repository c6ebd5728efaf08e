#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""120: the SOAP binding against a real Dovecot (draft 2.2).

The draft's session (LOGIN, then SELECT) as SOAP 1.1 and 1.2, APPEND with
<T> and <B> literals, UID_FETCH of flags, envelope and body sections,
STORE, SEARCH, a batch of methods, a NO as a Fault, and values that hold
CRLF or quotes that must not run a second command. The session lives in
the tunnel's cookie, so SOAP and tunnel requests share it. Every answer is
checked against conf.d/lemonade.xsd."""

import base64
import http.client
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post)
from lemsoap import Answer, envelope, q, soap_post, valid  # noqa: E402

PATH = "/lemonade/imap"
MESSAGE = ("From: Terry Gray <gray@example.org>\n"
           "To: demo@example.org\n"
           "Subject: lunch & <soap>\n"
           "\n"
           "Line one\n"
           "Line two, \"quoted\"\n")


class Soap:
    """One client: a cookie jar, and every answer checked on its way."""

    def __init__(self, t, port, version=11):
        self.t, self.port, self.version = t, port, version
        self.jar = CookieJar()

    def call(self, body, what, status=200):
        st, headers, data = soap_post(self.port, body, jar=self.jar,
                                      version=self.version)
        ok, why = valid(data)
        self.t.ok(st == status and ok, "%s: %d, and the answer validates "
                  "against lemonade.xsd" % (what, status),
                  "status %d\n%s\n%s" % (st, why, data[:3000]))
        return Answer(data), headers


def session(t, port):
    s = Soap(t, port)
    # draft 2.2: C-SOAP: <LOGIN><P>username</P><P>password</P>
    doc, headers = s.call("<LOGIN><P>demo</P><P>demo</P></LOGIN>",
                          "draft 2.2 LOGIN")
    t.eq(doc.resp("LOGIN"), "OK", "LOGIN is answered with <RESP><OK>")
    t.ok(headers.get("Content-Type", "").startswith("text/xml"),
         "a SOAP 1.1 answer is text/xml", headers.get("Content-Type"))
    t.ok(s.jar, "the answer sets the session cookie (draft 2.1.1)")

    doc, _ = s.call("<SELECT>INBOX</SELECT>", "draft 2.2 SELECT, bare text")
    t.eq(doc.resp("SELECT"), "OK", "SELECT INBOX is answered OK")
    exists = doc.untagged("SELECT", "EXISTS")
    t.ok(exists and exists[0].text.isdigit(),
         "'* n EXISTS' is <EXISTS>n</EXISTS>", repr(exists))
    flags = doc.untagged("SELECT", "FLAGS")
    t.ok(flags and flags[0].find(q("L")).find(q("SEEN")) is not None,
         "* FLAGS (... \\Seen) is <FLAGS><L>...<SEEN/></L></FLAGS>")
    t.ok(doc.answer("SELECT").find("%s/%s/%s/%s" % (
         q("RESP"), q("OK"), q("CODE"), q("READ-WRITE"))) is not None,
         "the completion's [READ-WRITE] is <CODE><READ-WRITE/></CODE>")
    return s


def appends(t, s, dc):
    text_body = ("<APPEND><P>INBOX</P><L><FLAGGED/></L><T>%s</T></APPEND>"
                 % MESSAGE.replace("&", "&amp;").replace("<", "&lt;"))
    doc, _ = s.call(text_body, "APPEND with a <T> literal")
    uid_t = doc.code("APPEND", "APPENDUID")
    t.ok(uid_t is not None and len(uid_t) == 2,
         "its completion carries <APPENDUID><P>v</P><P>uid</P>")
    binary = (b"From: x@example.org\r\nSubject: bytes\r\n\r\n"
              + bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"")
              + b"\r\n")
    doc, _ = s.call("<APPEND><P>INBOX</P><B>%s</B></APPEND>"
                    % base64.b64encode(binary).decode(),
                    "APPEND with a <B> literal of 8-bit octets")
    uid_b = doc.code("APPEND", "APPENDUID")
    t.ok(uid_b is not None, "it is stored too")
    return (int(uid_t[1].text) if uid_t is not None else 0,
            int(uid_b[1].text) if uid_b is not None else 0, binary)


def fetches(t, s, uid_t, uid_b, binary):
    doc, _ = s.call(
        "<UID_FETCH><SEQUENCE>%d</SEQUENCE><L><FLAGS/><ENVELOPE/>"
        "<BODY.PEEK><SECTION>HEADER.FIELDS (Subject)</SECTION></BODY.PEEK>"
        "<BODY.PEEK><SECTION/></BODY.PEEK></L></UID_FETCH>" % uid_t,
        "UID_FETCH of flags, envelope and two body sections")
    fetch = doc.untagged("UID_FETCH", "FETCH")
    t.eq(len(fetch), 1, "one <U><FETCH> for the one message")
    f = fetch[0] if fetch else None
    t.ok(f is not None and f.find(q("UID")).text == str(uid_t),
         "it holds <UID>uid</UID>")
    t.ok(f is not None and f.find("%s/%s/%s" % (q("FLAGS"), q("L"),
                                                q("FLAGGED"))) is not None,
         "and <FLAGS><L><FLAGGED/></L></FLAGS>: the flag given at APPEND")
    env = f.find(q("ENVELOPE")) if f is not None else None
    subject = env[0][1].text if env is not None else None
    t.eq(subject, "lunch & <soap>", "<ENVELOPE><L>: its second <P> is the "
         "subject, & and < intact")
    bodies = f.findall(q("BODY")) if f is not None else []
    t.ok(len(bodies) == 2 and bodies[0].find(q("SECTION")).text
         == "HEADER.FIELDS (SUBJECT)", "each section is <BODY><SECTION>",
         repr([b.find(q("SECTION")).text for b in bodies]))
    whole = bodies[1].find(q("T")) if len(bodies) == 2 else None
    want = MESSAGE.replace("\n", "\r\n")
    t.eq(whole.text if whole is not None else None, want,
         "BODY[] comes back as <T>, every line end CRLF, octet for octet")

    doc, _ = s.call("<UID_FETCH><SEQUENCE>%d</SEQUENCE><BODY.PEEK><SECTION/>"
                    "</BODY.PEEK></UID_FETCH>" % uid_b,
                    "UID_FETCH of the 8-bit message")
    f = doc.untagged("UID_FETCH", "FETCH")
    b = f[0].find("%s/%s" % (q("BODY"), q("B"))) if f else None
    t.ok(b is not None and base64.b64decode(b.text) == binary,
         "octets that are not UTF-8 come back as <B>, exactly")


def store_and_search(t, s, uid_t):
    doc, _ = s.call("<UID_STORE><SEQUENCE>%d</SEQUENCE><P>+FLAGS.SILENT</P>"
                    "<L><SEEN/><P>$Lunch</P></L></UID_STORE>" % uid_t,
                    "UID_STORE +FLAGS.SILENT (\\Seen $Lunch)")
    t.eq(doc.resp("UID_STORE"), "OK", "it is answered OK")
    doc, _ = s.call("<UID_SEARCH><SEEN/><KEYWORD>$Lunch</KEYWORD>"
                    "<SUBJECT>lunch</SUBJECT></UID_SEARCH>",
                    "UID_SEARCH SEEN KEYWORD $Lunch SUBJECT lunch")
    found = doc.untagged("UID_SEARCH", "SEARCH")
    t.eq(found[0].text if found else None, str(uid_t),
         "<SEARCH>uid</SEARCH>: SEEN was a search key, not a flag")


def batch(t, port):
    s = Soap(t, port)
    doc, _ = s.call("<LOGIN><P>demo</P><P>demo</P></LOGIN><EXAMINE>INBOX"
                    "</EXAMINE><SEARCH><ALL/></SEARCH><LOGOUT/>",
                    "four methods in one request")
    t.eq([a.tag.split("}")[1] for a in doc.answers],
         ["LOGINResponse", "EXAMINEResponse", "SEARCHResponse",
          "LOGOUTResponse"], "one answer element each, in order")
    t.ok(doc.answer("LOGOUT").find("%s/%s" % (q("U"), q("BYE")))
         is not None, "LOGOUT's * BYE is its <U><BYE>")


def faults(t, s):
    doc, _ = s.call("<SELECT>Nosuch</SELECT>", "SELECT of a missing "
                    "mailbox", status=500)
    t.eq(doc.faultcode(), "soap:Server.NO", "a NO is a Fault, faultcode "
         "soap:Server.NO")
    t.ok(doc.faultstring().startswith("SELECT: NO"),
         "its faultstring names the method and the response",
         doc.faultstring())
    t.eq(doc.resp("SELECT"), "NO", "its detail holds <SELECTResponse> "
         "with <RESP><NO>")

    doc, _ = s.call("<FROB/>", "an unknown method", status=500)
    t.eq(doc.faultcode(), "soap:Client", "is a Client fault")

    bad = Soap(t, s.port)
    doc, _ = bad.call("<LOGIN><P>demo</P><P>wrong</P></LOGIN>",
                      "a LOGIN with a wrong password", status=500)
    t.eq(doc.resp("LOGIN"), "NO", "is a Fault whose detail says NO")


def soap12(t, port):
    s = Soap(t, port, version=12)
    doc, headers = s.call("<LOGIN><P>demo</P><P>demo</P></LOGIN>"
                          "<SELECT>INBOX</SELECT>", "SOAP 1.2 LOGIN, SELECT")
    t.ok(headers.get("Content-Type", "").startswith("application/soap+xml"),
         "a SOAP 1.2 answer is application/soap+xml")
    t.eq((doc.resp("LOGIN"), doc.resp("SELECT")), ("OK", "OK"),
         "both are answered OK")
    doc, _ = s.call("<EXAMINE>Nosuch</EXAMINE>", "SOAP 1.2 NO", status=500)
    t.eq(doc.faultcode(), "soap:Receiver/lem:NO", "is env:Receiver with "
         "the subcode lem:NO")
    doc, _ = s.call("<FROB/>", "SOAP 1.2 unknown method", status=400)
    t.eq(doc.faultcode(), "soap:Sender", "is env:Sender, HTTP 400 (SOAP 1.2 "
         "part 2, 7.5.2.2)")


def no_injection(t, s, dc, port):
    # RFC 3501 4.3: a value with CRLF goes as a literal; quotes are escaped
    doc, _ = s.call("<CREATE><P>Lunch&#13;\ns9 CREATE Injected1</P></CREATE>"
                    "<CREATE><P>a\" s9 CREATE Injected2 \"b</P></CREATE>"
                    "<CREATE><P>x\ns9 CREATE Injected3</P></CREATE>",
                    "CREATE with names that hold CRLF, LF or quotes",
                    status=500)
    st, _, body = post(port, PATH, imap_lines('l1 LIST "" "Injected*"'),
                       jar=s.jar)
    t.ok(st == 200 and b"* LIST" not in body,
         "no second command ran: no mailbox Injected*", repr(body))
    names = [n for n in os.listdir(os.path.join(dc.mail, "demo"))
             if "Injected" in n and "\r" not in n and "\n" not in n
             and " " not in n and '"' not in n]
    t.eq(names, [], "and none is on disk")

    doc, _ = s.call("<SELECT>INBOX</SELECT><UID_FETCH><SEQUENCE>1</SEQUENCE>"
                    "<BODY><SECTION>1] s9 LOGOUT</SECTION></BODY>"
                    "</UID_FETCH>", "a section that tries to close itself",
                    status=500)
    t.ok(doc.faultcode() == "soap:Client", "is refused as a Client fault",
         doc.faultstring())


def chunked_request(t, s, port):
    # a chunked SOAP POST is read whole, never taken for in-band mode
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", PATH, body=iter([envelope("<NOOP/>")]),
                     headers={"Content-Type": "text/xml",
                              "SOAPAction": "x", "Cookie": s.jar.header()},
                     encode_chunked=True)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    t.ok(resp.status == 200 and Answer(data).resp("NOOP") == "OK"
         and valid(data)[0], "a chunked SOAP request is one request, "
         "answered as any other", data[:500])


def shared_session(t, s, port):
    st, _, body = post(port, PATH, imap_lines("t1 NOOP"), jar=s.jar)
    t.ok(st == 200 and b"t1 OK" in body, "the tunnel serves the SOAP "
         "client's session with the same cookie", repr(body))


def run(t, tmp, dc):
    with Httpd(tmp, body=lemonade_location(dc)) as httpd:
        s = session(t, httpd.port)
        uid_t, uid_b, binary = appends(t, s, dc)
        fetches(t, s, uid_t, uid_b, binary)
        store_and_search(t, s, uid_t)
        batch(t, httpd.port)
        faults(t, s)
        soap12(t, httpd.port)
        no_injection(t, s, dc, httpd.port)
        chunked_request(t, s, httpd.port)
        shared_session(t, s, httpd.port)
        errors = httpd.log_lines()
    t.ok(not errors, "the error log has no error", "\n".join(errors))


with Test("120 SOAP binding") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        run(t, tmp, dc)
