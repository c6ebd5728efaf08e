#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""030: a batch with a malformed command is refused whole (draft 2.1).

Each row of BAD_BODIES is a request body that breaks the IMAP command
grammar (RFC 3501 section 9) or the draft's "The Lemonade command MUST be
plain text (7bit)"; each row of OVER_LIMITS breaks one of the Location's
limits. Every such batch is answered 400 or 413 with one line of
text/plain, `command N: reason`, and none of it reaches the IMAP server:
a row that could leave a trace starts with a CREATE of a mailbox of its
own, and the LIST at the end shows that none of them was made. After
every refusal the session still answers a NOOP."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post)

PATH = "/lemonade/imap"
CACHE_CONTROL = "no-cache, no-store, must-revalidate"

# Small limits, so that each can be crossed by a small request.
MAX_LINE = 1024
MAX_COMMANDS = 5
MAX_LITERAL = 100
MAX_BODY = 10 * 1024
LIMITS = """\
LemonadeMaxLineLength 1K
LemonadeMaxCommands 5
LemonadeMaxLiteralSize 100
LemonadeMaxRequestBody 10K
"""

R9 = "RFC 3501 9"
SEVEN_BIT = 'draft 2.1: "The Lemonade command MUST be plain text (7bit)"'


def created(box):
    """A first command that would leave mailbox `box` behind if run."""
    return b"c1 CREATE " + box.encode() + b"\r\n"


# Bodies that are not a well-formed batch: each is answered 400.
#   name, body, the command the answer blames (None: not checked),
#   mailbox the body would create if it were relayed (None: none), source
BAD_BODIES = [
    ("an 8-bit byte in the arguments",
     created("Bad8bit") + b"c2 NOOP \xe9\r\n", 2, "Bad8bit",
     SEVEN_BIT + "; " + R9 + ": CHAR = %x01-7F"),
    ("an 8-bit byte in the tag",
     created("Bad8bitTag") + b"c\xe92 NOOP\r\n", 2, "Bad8bitTag",
     SEVEN_BIT + "; " + R9 + ": tag = 1*<ASTRING-CHAR except \"+\">"),
    ("an 8-bit byte in a quoted string",
     created("Bad8bitQuoted") + b'c2 SELECT "caf\xe9"\r\n', 2,
     "Bad8bitQuoted", SEVEN_BIT + "; " + R9 + ": QUOTED-CHAR is TEXT-CHAR"),
    ("an 8-bit byte in the command name",
     created("Bad8bitName") + b"c2 NO\xcfP\r\n", 2, "Bad8bitName",
     SEVEN_BIT + "; " + R9 + ": command names are atoms"),
    ("a NUL byte",
     created("BadNul") + b"c2 NOOP \x00\r\n", 2, "BadNul",
     R9 + ": CHAR = %x01-7F, no NUL outside a literal"),
    ("a CR without LF",
     created("BadCr") + b"c2 NOOP\rc3 NOOP\r\n", 2, "BadCr",
     R9 + ": TEXT-CHAR excludes CR; lines end with CRLF"),
    ("a bare LF",
     created("BadLf") + b"c2 NOOP\nc3 NOOP\r\n", 2, "BadLf",
     R9 + ": lines end with CRLF, not LF"),
    ("a bare LF on the first line",
     b"c1 CREATE BadLfFirst\nc2 NOOP\r\n", 1, "BadLfFirst",
     R9 + ": lines end with CRLF, not LF"),
    ("an unterminated quoted string",
     created("BadQuote") + b'c2 SELECT "INBOX\r\n', 2, "BadQuote",
     R9 + ': quoted = DQUOTE *QUOTED-CHAR DQUOTE'),
    ("a missing tag",
     created("BadNoTag") + b" NOOP\r\n", 2, "BadNoTag",
     R9 + ": command = tag SP (...) CRLF"),
    ("a tag that starts with +",
     created("BadTagPlus") + b"+x NOOP\r\n", 2, "BadTagPlus",
     R9 + ': tag = 1*<any ASTRING-CHAR except "+">'),
    ("a tag that starts with (",
     created("BadTagParen") + b"(x NOOP\r\n", 2, "BadTagParen",
     R9 + ": atom-specials are not ASTRING-CHAR"),
    ("a tag that starts with *",
     created("BadTagStar") + b"*x NOOP\r\n", 2, "BadTagStar",
     R9 + ": list-wildcards are atom-specials"),
    ("a tag holding %",
     created("BadTagPercent") + b"x% NOOP\r\n", 2, "BadTagPercent",
     R9 + ": list-wildcards are atom-specials"),
    ("a tag holding a double quote",
     created("BadTagQuote") + b'x" NOOP\r\n', 2, "BadTagQuote",
     R9 + ": quoted-specials are atom-specials"),
    ("a tag holding {",
     created("BadTagBrace") + b"x{ NOOP\r\n", 2, "BadTagBrace",
     R9 + ": atom-specials are not ASTRING-CHAR"),
    ("a tag alone on its line",
     created("BadTagOnly") + b"c2\r\n", 2, "BadTagOnly",
     R9 + ": command = tag SP (command-any / ...) CRLF"),
    ("a tag and a space, no command name",
     created("BadTagSpace") + b"c2 \r\n", 2, "BadTagSpace",
     R9 + ": command = tag SP (command-any / ...) CRLF"),
    ("a tag holding a control character",
     created("BadTagCtl") + b"x\x01 NOOP\r\n", 2, "BadTagCtl",
     R9 + ": CTL is an atom-special"),
    ("a tag holding DEL",
     created("BadTagDel") + b"x\x7f NOOP\r\n", 2, "BadTagDel",
     R9 + ": CTL = %x00-1F / %x7F is an atom-special"),
    ("an empty line between commands",
     created("BadEmpty") + b"\r\nc3 NOOP\r\n", 2, "BadEmpty",
     R9 + ": every command starts with a tag"),
    ("a body that ends without the final CRLF",
     created("BadNoCrlf") + b"c2 NOOP", 2, "BadNoCrlf",
     R9 + ": command = ... CRLF"),
    ("a body that ends with a lone CR",
     created("BadHalfCrlf") + b"c2 NOOP\r", 2, "BadHalfCrlf",
     R9 + ": command = ... CRLF"),
    ("a non-synchronizing literal shorter than announced",
     created("BadShortLitPlus") + b"c2 APPEND INBOX {50+}\r\nshort\r\n",
     2, "BadShortLitPlus", "RFC 7888 3: literal = \"{\" number \"+}\" "
     "CRLF *CHAR8 of exactly number octets"),
    ("a synchronizing literal shorter than announced",
     created("BadShortLit") + b"c2 APPEND INBOX {50}\r\nshort\r\n",
     2, "BadShortLit", R9 + ": literal = \"{\" number \"}\" CRLF *CHAR8"),
    ("a literal not followed by the rest of its line",
     created("BadLitEnd") + b"c2 APPEND INBOX {5+}\r\nhello",
     2, "BadLitEnd", R9 + ": the command goes on after the literal up to "
     "CRLF"),
    ("an 8-bit byte right after a literal",
     created("Bad8bitAfterLit")
     + b"c2 APPEND INBOX {5+}\r\nhello \xe9\r\n", 2, "Bad8bitAfterLit",
     SEVEN_BIT + "; only literal octets may be 8-bit"),
    ("an empty body", b"", None, None,
     "draft 2.1: one or more tagged commands make the body"),
    ("a body of one CRLF", b"\r\n", 1, None,
     R9 + ": every command starts with a tag"),
]

# Bodies over one of the Location's limits: each is answered 413.
#   name, body, mailbox it would create (None: none), source
OVER_LIMITS = [
    ("a line longer than LemonadeMaxLineLength",
     created("BigLine") + b"c2 NOOP " + b"a" * (MAX_LINE + 16) + b"\r\n",
     "BigLine", "RFC 7162 4: a server may bound the command line"),
    ("a non-synchronizing literal larger than LemonadeMaxLiteralSize",
     created("BigLitPlus") + b"c2 APPEND INBOX {%d+}\r\n" % (MAX_LITERAL + 1)
     + b"x" * (MAX_LITERAL + 1) + b"\r\n", "BigLitPlus",
     "RFC 7888 4: a server may refuse a literal that is too large"),
    ("a synchronizing literal larger than LemonadeMaxLiteralSize",
     created("BigLit") + b"c2 APPEND INBOX {%d}\r\n" % (MAX_LITERAL + 1)
     + b"x" * (MAX_LITERAL + 1) + b"\r\n", "BigLit",
     "RFC 7888 4: a server may refuse a literal that is too large"),
    ("a literal announced far larger than LemonadeMaxLiteralSize",
     created("HugeLit") + b"c2 APPEND INBOX {99999999999+}\r\nx\r\n",
     "HugeLit", "RFC 7888 4: the announced size alone is too large"),
    ("more commands than LemonadeMaxCommands",
     created("ManyCommands")
     + imap_lines(*["c%d NOOP" % i for i in range(2, MAX_COMMANDS + 2)]),
     "ManyCommands", "draft 2.1: \"Multiple Lemonade commands MAY be "
     "sent\", up to a bound"),
    ("a body larger than LemonadeMaxRequestBody",
     created("BigBody") + b"c2 NOOP\r\nc3 NOOP {99+}\r\n"
     + (b"y" * 99 + b" {99+}\r\n") * 100 + b"z" * 99 + b"\r\n",
     "BigBody",
     "RFC 9110 15.5.14: content larger than the server will take"),
]

# Bodies that stay within the limits: the other side of each bound.
#   name, body, how many tagged OK it gets
WITHIN_LIMITS = [
    ("a line shorter than LemonadeMaxLineLength",
     b"w1 NOOP " + b"a" * (MAX_LINE - 64) + b"\r\n", 1),
    ("a literal of exactly LemonadeMaxLiteralSize",
     b"w2 APPEND INBOX {%d+}\r\n" % MAX_LITERAL
     + b"Subject: w2\r\n\r\n" + b"x" * (MAX_LITERAL - 17) + b"\r\n\r\n", 1),
    ("exactly LemonadeMaxCommands commands",
     imap_lines(*["w%d NOOP" % i for i in range(3, MAX_COMMANDS + 3)]),
     MAX_COMMANDS),
]


def no_cache(headers):
    return (headers.get("Cache-Control") == CACHE_CONTROL
            and headers.get("Pragma") == "no-cache")


def blamed_command(body):
    """N of a `command N: reason` line, or None if the body is not one."""
    m = re.match(rb"^command ([0-9]+): [^\r\n]+\r\n$", body)
    return int(m.group(1)) if m else None


def mailbox_names(answer):
    """Names in the `* LIST (flags) "delim" name` lines of an answer."""
    names = re.findall(rb'(?m)^\* LIST \([^)]*\) \S+ "?([^"\r\n]*)"?\r$',
                       answer)
    return {name.decode("latin-1") for name in names}


def session_still_answers(t, port, jar):
    status, _, body = post(port, PATH, imap_lines("n1 NOOP"), jar=jar)
    t.ok(status == 200 and body.startswith(b"n1 OK"),
         "  and then the session still answers a NOOP with 200", "%s %r"
         % (status, body))


def refused(t, port, jar, name, body, want_status, want_cmd, source):
    status, headers, answer = post(port, PATH, body, jar=jar)
    t.eq(status, want_status, "%s is refused with %d (%s)"
         % (name, want_status, source))
    t.ok((headers.get("Content-Type") or "").startswith("text/plain")
         and blamed_command(answer) is not None,
         "  with one text/plain line `command N: reason`", repr(answer))
    if want_cmd is not None:
        t.eq(blamed_command(answer), want_cmd,
             "  which blames command %d" % want_cmd)
    t.ok(no_cache(headers), "  and forbids caching (draft 3)", str(headers))
    session_still_answers(t, port, jar)


def run(t, tmp, dc):
    body = lemonade_location(dc, extra=LIMITS)
    with Httpd(tmp, body=body) as httpd:
        port, jar = httpd.port, CookieJar()
        status, _, _ = post(port, PATH, imap_lines(
            "a1 LOGIN demo demo", "a2 SELECT INBOX",
            "a3 CREATE GoodControl"), jar=jar)
        t.eq(status, 200, "the session logs in, selects INBOX and creates "
             "a mailbox")

        for name, body, cmd, _, source in BAD_BODIES:
            refused(t, port, jar, name, body, 400, cmd, source)
        for name, body, _, source in OVER_LIMITS:
            refused(t, port, jar, name, body, 413, None, source)

        for name, body, oks in WITHIN_LIMITS:
            status, _, answer = post(port, PATH, body, jar=jar)
            tagged_ok = re.findall(rb"(?m)^w[0-9]+ OK ", answer)
            t.ok(status == 200 and len(tagged_ok) == oks,
                 "%s is relayed and answered 200" % name,
                 "%s %r" % (status, answer[-300:]))

        status, _, answer = post(port, PATH, imap_lines('z1 LIST "" "*"'),
                                 jar=jar)
        t.eq(status, 200, "the LIST of every mailbox is answered 200")
        listed = mailbox_names(answer)
        t.ok("GoodControl" in listed, "it shows the mailbox the valid "
             "batch created", repr(listed))
        boxes = [row[3] for row in BAD_BODIES if row[3]] \
            + [row[2] for row in OVER_LIMITS if row[2]]
        made = [box for box in boxes if box in listed]
        t.eq(made, [], "no refused batch created its mailbox: nothing of "
             "them reached the IMAP server")
        t.ok(dc.connections("demo") >= 1,
             "the IMAP session is still open at the end")
        errors = httpd.log_lines()
    t.ok(not errors, "the error log has no error", "\n".join(errors))


with Test("030 bad input") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        run(t, tmp, dc)
