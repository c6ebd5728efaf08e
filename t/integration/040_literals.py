#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""040: literals cross the gateway intact, both ways (draft 2.1.1).

Non-synchronizing literals {n+} (RFC 7888) are relayed as they are;
synchronizing ones {n} (RFC 3501 4.3) are fed to the IMAP server after
its continuation request, which never shows in the answer; literal8
~{n} (RFC 3516) works the same. A {n} the server refuses is dropped and
the batch goes on. Literal octets may be anything, 8-bit and NUL
included. Every message APPENDed is FETCHed back and compared byte for
byte, a 5 MB one too: once through a Location that keeps 64K of a
request or answer in memory, once through one with the default."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post)

PATH = "/lemonade/imap"
SMALL_SPOOL_PATH = "/lemonade/spooled"
LITERAL_AT_END = re.compile(rb"~?\{([0-9]+)\+?\}$")
APPENDUID = re.compile(rb"^\S+ OK \[APPENDUID [0-9]+ ([0-9]+)\]")


def responses(body):
    """Split an answer into IMAP responses, literals kept inside them."""
    found, pos = [], 0
    while pos < len(body):
        start = pos
        while True:
            eol = body.find(b"\r\n", pos)
            if eol < 0:
                found.append(body[start:])
                return found
            m = LITERAL_AT_END.search(body, pos, eol)
            if not m:
                break
            pos = eol + 2 + int(m.group(1))
        found.append(body[start:eol])
        pos = eol + 2
    return found


def tagged(body):
    """[(tag, status)] of the tagged responses, in order."""
    found = []
    for resp in responses(body):
        if resp[:2] in (b"* ", b"+ "):
            continue
        words = resp.split(b" ", 2)
        found.append((words[0].decode("latin-1"),
                      words[1].decode("latin-1").upper()
                      if len(words) > 1 else ""))
    return found


def continuations(body):
    return [resp for resp in responses(body) if resp.startswith(b"+")]


def appended_uids(body):
    """UIDs the APPENDs of an answer were given (RFC 4315 APPENDUID)."""
    uids = []
    for resp in responses(body):
        m = APPENDUID.match(resp)
        if m:
            uids.append(int(m.group(1)))
    return uids


def fetched(body, item):
    """The octets of the literal after `item` (e.g. b"BODY[]") in an
    answer, or None. Accepts {n} and ~{n}."""
    pattern = re.compile(re.escape(item) + rb" ~?\{([0-9]+)\}\r\n")
    m = pattern.search(body)
    if not m:
        return None
    start = m.end()
    return body[start:start + int(m.group(1))]


def message(subject, text):
    """A small message with CRLF line ends."""
    if isinstance(text, str):
        text = text.encode()
    return (b"From: lemtest <t@example.org>\r\nSubject: " + subject.encode()
            + b"\r\n\r\n" + text)


class Session:
    """One logged-in IMAP session behind one path, kept by a cookie jar."""

    def __init__(self, t, port, path=PATH):
        self.port, self.path, self.jar = port, path, CookieJar()
        status, _, _ = self.post(imap_lines("a0 LOGIN demo demo"))
        t.eq(status, 200, "a session logs in through %s" % path)

    def post(self, body, timeout=30):
        return post(self.port, self.path, body, jar=self.jar,
                    timeout=timeout)

    def fetch_uid(self, uid, item=b"BODY[]"):
        """Select INBOX and FETCH one item of one message by UID."""
        status, _, body = self.post(b"f1 SELECT INBOX\r\n"
                                    b"f2 UID FETCH %d (%s)\r\n"
                                    % (uid, item), timeout=60)
        if status != 200:
            return None
        return fetched(body, item)


def append_batch(kind, msg, tag=b"p1"):
    """An APPEND of msg to INBOX with a literal of the given kind."""
    marker = {"sync": b"{%d}", "plus": b"{%d+}",
              "lit8": b"~{%d}", "lit8plus": b"~{%d+}"}[kind]
    return (tag + b" APPEND INBOX " + marker % len(msg) + b"\r\n"
            + msg + b"\r\n")


def first_difference(got, want):
    """Where two byte strings part, for a failure's diagnostics."""
    if got is None:
        return "nothing was fetched"
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return "octet %d differs: %r vs %r" % (i, got[i:i + 16],
                                                  want[i:i + 16])
    return "lengths differ: got %d, want %d" % (len(got), len(want))


def appends_and_reads_back(t, s, what, kind, msg, item=b"BODY[]",
                           timeout=30):
    """APPEND msg with one kind of literal, FETCH item back, compare."""
    status, _, body = s.post(append_batch(kind, msg), timeout=timeout)
    t.eq(status, 200, "%s: the APPEND is answered 200" % what)
    t.eq(tagged(body), [("p1", "OK")], "%s: with one tagged OK" % what)
    t.eq(continuations(body), [], "%s: no continuation request shows in "
         "the answer" % what)
    uids = appended_uids(body)
    back = s.fetch_uid(uids[0], item) if uids else None
    t.ok(back == msg, "%s: FETCH %s gives back the same %d octets"
         % (what, item.decode(), len(msg)), first_difference(back, msg))


def literal_kinds(t, s):
    text = message("plus", "A non-synchronizing literal.\r\n")
    appends_and_reads_back(t, s, "{n+} (RFC 7888 3)", "plus", text)

    text = message("sync", "A synchronizing literal.\r\n")
    appends_and_reads_back(t, s, "{n} (RFC 3501 7.5: the gateway "
                           "answers the continuation)", "sync", text)

    text = message("lit8", b"Binary\x00content.\r\n")
    appends_and_reads_back(t, s, "~{n} (RFC 3516 4.4: literal8)", "lit8",
                           text, item=b"BINARY[]")
    appends_and_reads_back(t, s, "~{n+} (RFC 3516 and RFC 7888)",
                           "lit8plus", text, item=b"BINARY[]")


def eight_bit_octets(t, s):
    # Every octet but NUL in a plain literal: RFC 3501 9, CHAR8 = %x01-ff.
    # BODY[] is compared (the IMAP server may not send NUL in it). CR and
    # LF come as a pair: a store may turn a lone one into CRLF.
    octets = bytes(c for c in range(1, 256) if c not in (10, 13))
    text = message("8bit", octets + b"\r\n")
    appends_and_reads_back(t, s, "every octet 01-ff in {n} (RFC 3501 9: "
                           "CHAR8)", "sync", text)
    appends_and_reads_back(t, s, "every octet 01-ff in {n+}", "plus", text)

    # All 256, NUL included: literal8 in, BINARY[] out (RFC 3516).
    octets = bytes(c for c in range(256) if c not in (10, 13))
    text = message("256", (octets + b"\r\n") * 4)
    appends_and_reads_back(t, s, "all 256 octet values in ~{n} (RFC 3516 "
                           "4.4)", "lit8", text, item=b"BINARY[]")
    appends_and_reads_back(t, s, "all 256 octet values in {n+}, read "
                           "as BINARY[]", "plus", text,
                           item=b"BINARY[]")


def literal_that_looks_like_commands(t, s):
    # A literal's octets are data: what looks like a command in them
    # is not run.
    text = message("inject", "x9 CREATE FromLiteral\r\n"
                   "x10 LOGOUT\r\n")
    appends_and_reads_back(t, s, "a literal holding command lines",
                           "sync", text)
    status, _, body = s.post(imap_lines('q1 LIST "" FromLiteral'))
    t.ok(status == 200 and b"* LIST" not in body,
         "the command lines inside it were not run", repr(body))


def refused_sync_literal(t, s):
    # RFC 3501 7.5: the server may answer {n} with a tagged NO instead
    # of a continuation; the octets then are not a command line.
    bait = b"x8 CREATE FromRefusedLiteral\r\n"
    status, _, body = s.post(b"r1 APPEND Nosuch {%d}\r\n" % len(bait)
                             + bait + b"\r\nr2 NOOP\r\n", timeout=10)
    t.eq(status, 500, "an APPEND {n} to a missing mailbox is answered 500")
    t.eq(tagged(body), [("r1", "NO"), ("r2", "OK")],
         "its NO comes first and the next command is still answered OK")
    t.ok(b"[TRYCREATE]" in body, "the NO carries [TRYCREATE] (RFC 3501 "
         "6.3.11)", repr(body))
    t.eq(continuations(body), [], "no continuation request shows in the "
         "answer")
    status, _, body = s.post(imap_lines('r3 LIST "" FromRefusedLiteral'))
    t.ok(status == 200 and b"* LIST" not in body,
         "the refused literal's octets were not run as a command",
         repr(body))

    # The same in the middle of a batch, with a literal later on.
    text = message("after-refusal", "Sent after a refused literal.\r\n")
    status, _, body = s.post(
        b"r4 NOOP\r\nr5 APPEND Nosuch {5}\r\nhello\r\n"
        + append_batch("sync", text, b"r6"), timeout=10)
    t.eq(tagged(body), [("r4", "OK"), ("r5", "NO"), ("r6", "OK")],
         "a {n} APPEND after a refused one in the same batch is run")
    uids = appended_uids(body)
    t.ok(uids and s.fetch_uid(uids[0]) == text,
         "and its message is stored whole", repr(body))


def two_appends_in_one_batch(t, s):
    first = message("first", "The first of two.\r\n")
    second = message("second", "The second of two.\r\n" * 40)
    status, _, body = s.post(append_batch("plus", first, b"m1")
                             + append_batch("sync", second, b"m2")
                             + b"m3 NOOP\r\n")
    t.eq(status, 200, "two APPENDs in one batch are answered 200")
    t.eq(tagged(body), [("m1", "OK"), ("m2", "OK"), ("m3", "OK")],
         "each is answered OK in order, and the NOOP after them")
    uids = appended_uids(body)
    t.ok(len(uids) == 2 and s.fetch_uid(uids[0]) == first
         and s.fetch_uid(uids[1]) == second,
         "both messages are stored whole", repr(body))


def literals_in_other_commands(t, port):
    # RFC 3501 4.3: any string argument may be a literal.
    jar = CookieJar()
    status, _, body = post(port, PATH, b"l1 LOGIN {4}\r\ndemo {4+}\r\ndemo\r\n"
                           b"l2 SELECT {5}\r\nINBOX\r\n", jar=jar)
    t.eq(status, 200, "LOGIN and SELECT with their arguments as literals "
         "are answered 200")
    t.eq(tagged(body), [("l1", "OK"), ("l2", "OK")],
         "both are answered OK")


def big_message(t, port, path, label):
    s = Session(t, port, path)
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    body = b"".join(b"%06d " % i + line for i in range(5 * 1024 * 1024
                                                       // (len(line) + 7)))
    text = message("big", body)
    t.ok(len(text) > 5 * 1000 * 1000, "%s: the big message is %d octets"
         % (label, len(text)))
    appends_and_reads_back(t, s, "%s, 5 MB in {n+}" % label, "plus", text,
                           timeout=60)
    appends_and_reads_back(t, s, "%s, 5 MB in {n}" % label, "sync", text,
                           timeout=60)


def run(t, tmp, dc):
    # Nothing here takes the IMAP server more than a second: a shorter
    # backend timeout turns a stalled exchange into a quick failure.
    quick = "LemonadeBackendTimeout 10\n"
    conf = (lemonade_location(dc, extra=quick)
            + lemonade_location(dc, path=SMALL_SPOOL_PATH,
                                extra=quick + "LemonadeSpoolMemory 64K"))
    with Httpd(tmp, body=conf) as httpd:
        s = Session(t, httpd.port)
        literal_kinds(t, s)
        eight_bit_octets(t, s)
        literal_that_looks_like_commands(t, s)
        refused_sync_literal(t, s)
        two_appends_in_one_batch(t, s)
        literals_in_other_commands(t, httpd.port)
        big_message(t, httpd.port, PATH, "default spool")
        big_message(t, httpd.port, SMALL_SPOOL_PATH, "LemonadeSpoolMemory 64K")
        errors = httpd.log_lines()
    t.ok(not errors, "the error log has no error", "\n".join(errors))


with Test("040 literals") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        run(t, tmp, dc)
