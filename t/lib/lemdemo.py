#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""A demo of mod_lemonade on this machine, from the test harness's parts.

    lemdemo.py start [--dir DIR] [--http-port N] [--imap-port N] [--mpm M]
    lemdemo.py stop  [--dir DIR]

start runs a Dovecot with the account demo/demo (a few messages in INBOX,
Work and Archive), Postfix's smtp-sink, and an httpd that serves them at
/lemonade/imap and /lemonade/smtp, leaves them running, and prints curl
lines to try. Their PIDs are kept in
DIR/pids, which stop reads: processes are stopped by PID, never by name.
build/run-demo builds the module and calls this.
"""

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lemtest  # noqa: E402

DEFAULT_DIR = "/tmp/lemonade-demo"
MARKER = ".lemonade-demo"
PATH = "/lemonade/imap"
SMTP_PATH = "/lemonade/smtp"

MESSAGES = [
    ("INBOX", False, "Welcome to the mod_lemonade demo",
     "This mailbox is served by Dovecot and reached through HTTP.\n"),
    ("INBOX", False, "Try a FETCH",
     "a3 SELECT INBOX\na4 FETCH 1:* (FLAGS ENVELOPE)\n"),
    ("INBOX", True, "An old, read message",
     "Already seen: it carries the \\Seen flag.\n"),
    ("Work", False, "Quarterly report",
     "Numbers are up.\n"),
    ("Work", True, "Meeting notes",
     "Nothing was decided.\n"),
    ("Archive", True, "Last year",
     "Kept for the record.\n"),
]


def message(n, subject, text):
    return ("From: Demo Sender <sender@example.org>\n"
            "To: demo <demo@example.org>\n"
            "Subject: %s\n"
            "Date: Mon, 05 Jan 2026 10:%02d:00 +0000\n"
            "Message-ID: <demo-%d@example.org>\n"
            "\n%s" % (subject, n, n, text))


def pick_port(wanted):
    return wanted if lemtest.port_is_free(wanted) else lemtest.free_port()


def read_pids(directory):
    """{name: (pid, starttime)} from DIR/pids."""
    pids = {}
    text = lemtest.read_text(os.path.join(directory, "pids"))
    for line in text.splitlines():
        name, pid, start = line.split()
        pids[name] = (int(pid), int(start))
    return pids


def stop(directory):
    """Stop what a start in directory left running. True if all went."""
    clean = True
    for name, ident in read_pids(directory).items():
        if not lemtest.proc_alive(ident):
            continue
        left = lemtest.stop_tree(ident[0], orphans_too=(name == "dovecot"))
        print("stopped %s (pid %d)%s" % (name, ident[0],
              "; had to kill " + ", ".join(left) if left else ""))
        clean = clean and not left
    try:
        os.unlink(os.path.join(directory, "pids"))
    except FileNotFoundError:
        pass
    return clean


def fresh_dir(directory):
    """Empty directory for a new demo, refusing one the demo did not make."""
    if os.path.isdir(directory):
        if os.listdir(directory) and \
                not os.path.exists(os.path.join(directory, MARKER)):
            sys.exit("%s exists and is not a demo directory: not touching it"
                     % directory)
        stop(directory)
        shutil.rmtree(directory)
    lemtest.make_dir(directory, 0o755)
    lemtest.write_text(os.path.join(directory, MARKER), "mod_lemonade demo\n")


def start(args):
    directory = os.path.abspath(args.dir)
    if not os.path.exists(lemtest.MODULE):
        sys.exit("the module is not built: %s is missing" % lemtest.MODULE)
    fresh_dir(directory)

    dovecot = lemtest.Dovecot(directory, users={"demo": "demo"},
                              port=pick_port(args.imap_port))
    dovecot.write_config()
    for n, (mailbox, seen, subject, text) in enumerate(MESSAGES, 1):
        dovecot.deliver("demo", message(n, subject, text), mailbox, seen)
    dovecot.start()

    sink = lemtest.SmtpSink(directory, port=pick_port(args.smtp_port))
    sink.start()

    httpd = lemtest.Httpd(directory, mpm=args.mpm, name="httpd",
                          port=pick_port(args.http_port),
                          body=lemtest.lemonade_location(dovecot, PATH)
                          + lemtest.lemonade_location(sink.url(), SMTP_PATH))
    try:
        httpd.start()
    except RuntimeError as e:
        dovecot.stop()
        sink.stop()
        sys.exit(str(e))

    lemtest.write_text(os.path.join(directory, "pids"), "".join(
        "%s %d %d\n" % ((name,) + lemtest.proc_id(pid))
        for name, pid in (("httpd", httpd.pid), ("dovecot", dovecot.pid),
                          ("smtp-sink", sink.proc.pid))))

    jar = os.path.join(directory, "cookies")
    url = "http://127.0.0.1:%d%s" % (httpd.port, PATH)
    smtp_url = "http://127.0.0.1:%d%s" % (httpd.port, SMTP_PATH)
    print("""
mod_lemonade demo is running, its state under %(dir)s:
  Dovecot  127.0.0.1:%(imap)d  user demo, password demo  (%(dir)s/dovecot/dovecot.log)
  SMTP     127.0.0.1:%(smtp)d  Postfix's smtp-sink, messages in %(dir)s/smtp-sink/dumps
  httpd    %(url)s and %(smtp_url)s
           %(mpm)s MPM  (%(dir)s/httpd/error.log)

Log in and list the mailboxes through the HTTP binding:

  curl -si -c %(jar)s -b %(jar)s -H 'Content-Type: application/vnd.lemonade' --data-binary $'a1 LOGIN demo demo\\r\\na2 LIST "" "*"\\r\\n' %(url)s

The cookie file carries the session: later requests go on where this one
stopped, for example:

  curl -si -c %(jar)s -b %(jar)s -H 'Content-Type: application/vnd.lemonade' --data-binary $'a3 SELECT INBOX\\r\\na4 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\\r\\n' %(url)s

Send a message through the SMTP binding (it lands in smtp-sink's dumps):

  curl -si -H 'Content-Type: application/vnd.lemonade' --data-binary $'EHLO me\\r\\nMAIL FROM:<me@example.org>\\r\\nRCPT TO:<demo@example.org>\\r\\nDATA\\r\\nSubject: hello\\r\\n\\r\\nSent over HTTP.\\r\\n.\\r\\nQUIT\\r\\n' %(smtp_url)s

An in-band session (draft 2.1.2) is one chunked POST: each response comes
back as a chunk of its own, and news is pushed while it IDLEs for 20 s:

  (printf 'a1 LOGIN demo demo\\r\\na2 SELECT INBOX\\r\\na3 IDLE\\r\\n'; sleep 20; printf 'DONE\\r\\na4 LOGOUT\\r\\n') | curl -sN -X POST -H 'Content-Type: application/vnd.lemonade' -H 'Transfer-Encoding: chunked' -T - %(url)s

and while it waits, new mail from a second terminal shows up in it at once:

  curl -s -H 'Content-Type: application/vnd.lemonade' --data-binary $'b1 LOGIN demo demo\\r\\nb2 APPEND INBOX {21+}\\r\\nSubject: new mail\\r\\n\\r\\n\\r\\n' %(url)s

In an ordinary POST, IDLE is a long poll: the answer comes when there is
news, or after LemonadeHeartbeat (55 s).

Stop the demo with:

  build/run-demo stop
""" % {"dir": directory, "imap": dovecot.port, "url": url, "jar": jar,
       "mpm": args.mpm, "smtp": sink.port, "smtp_url": smtp_url})


def main():
    parser = argparse.ArgumentParser(description="mod_lemonade demo")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--dir", default=DEFAULT_DIR)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--imap-port", type=int, default=10143)
    parser.add_argument("--smtp-port", type=int, default=10025)
    parser.add_argument("--mpm", default="event",
                        choices=sorted(lemtest.MPM_CONF))
    args = parser.parse_args()
    if args.action == "start":
        start(args)
    elif not os.path.exists(os.path.join(args.dir, "pids")):
        print("no demo is running from %s" % args.dir)
    else:
        sys.exit(0 if stop(os.path.abspath(args.dir)) else 1)


if __name__ == "__main__":
    main()
