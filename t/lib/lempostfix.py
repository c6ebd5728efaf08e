# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""A real Postfix for the SMTP tests, next to lemtest.py's fixtures.

smtp-sink (lemtest.SmtpSink) accepts any AUTH at once, so it cannot show
a SASL exchange with its 334 challenges, nor a refused password. Postfix
can:

    with SaslDovecot(tmp, users={"demo": "secret"}) as dc, \\
         Postfix(tmp, dc) as mx:
        ...  # smtp://127.0.0.1:mx.port asks Dovecot about AUTH
        mx.messages("demo")   # what was delivered to demo's Maildir

The instance lives entirely under tmp/postfix: its own main.cf and
master.cf, queue and data directories, and its log (maillog_file, so no
syslog is needed). Its master runs as our child, is stopped by that PID,
and every wait is bounded. Mail to USER@example.org, for each Dovecot
user, is delivered by Postfix's virtual agent into the same Maildir that
Dovecot serves; mail to any other domain is relayed only for a client
that authenticated.
"""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys

from lemtest import (
    MAIL_GROUP, MAIL_USER, START_TIMEOUT, STOP_TIMEOUT, Dovecot, PortTaken,
    free_port, make_dir, port_is_free, read_text, start_on_free_port,
    stop_tree, wait_for, write_text)

POSTFIX_DAEMONS = "/usr/lib/postfix/sbin"
POSTFIX_MASTER = os.path.join(POSTFIX_DAEMONS, "master")
POSTFIX_COMMANDS = os.path.dirname(shutil.which(
    "postconf", path="/usr/sbin:" + os.environ.get("PATH", ""))
    or "/usr/sbin/postconf")
POSTFIX_USER, POSTFIX_SETGID_GROUP = "postfix", "postdrop"

# The domain whose mail Postfix delivers itself.
MAIL_DOMAIN = "example.org"


# --- Dovecot with SASL for Postfix ------------------------------------------

AUTH_LISTENER = """
# Postfix asks this listener about SMTP AUTH (smtpd_sasl_type = dovecot).
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


class SaslDovecot(Dovecot):
    """lemtest's Dovecot, its auth service also on 127.0.0.1:auth_port.

    That is Dovecot's authentication protocol, which Postfix's smtpd
    speaks to check SMTP AUTH against the same users as IMAP.
    """

    def __init__(self, tmp, users=None, port=None, name="dovecot",
                 auth_port=None):
        super().__init__(tmp, users=users, port=port, name=name)
        self.own_auth_port = auth_port is None
        self.auth_port = auth_port or free_port()
        self._attempts = 0

    def write_config(self):
        super().write_config()
        with open(self.conf, "a", encoding="utf-8") as f:
            f.write(AUTH_LISTENER.format(port=self.auth_port))

    def _start_once(self):
        # A retry after PortTaken: the auth port may be the one taken.
        if self._attempts and self.own_auth_port:
            self.auth_port = free_port()
        self._attempts += 1
        super()._start_once()
        if not wait_for(self._auth_answers, START_TIMEOUT, 0.1):
            self.stop()
            raise RuntimeError("dovecot's auth on port %d did not answer "
                               "within %.0f s:\n%s" % (
                                   self.auth_port, START_TIMEOUT, self.log()))
        return self

    def _auth_answers(self):
        # The auth server speaks first: "VERSION\t1\t2\n", then MECH lines.
        try:
            with socket.create_connection(("127.0.0.1", self.auth_port),
                                          1) as s:
                s.settimeout(2)
                return s.recv(64).startswith(b"VERSION\t")
        except OSError:
            return False


# --- Postfix ----------------------------------------------------------------

MAIN_CF = """\
# One test's Postfix, written by t/lib/lempostfix.py; nothing else reads it.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
daemon_directory = {daemons}
command_directory = {commands}
mail_owner = {postfix_user}
setgid_group = {setgid_group}

# Logging to a file of its own, through the postlog service.
maillog_file = {maillog}
maillog_file_prefixes = {dir}

myhostname = mx.example.test
mydomain = example.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_peername_lookup = no
biff = no

# Nothing is delivered by the local agent; {domain} goes to Maildirs.
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {mail}
virtual_mailbox_maps = inline:{{ {mailboxes} }}
virtual_minimum_uid = 1
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}

# Mail for anywhere else would go out: there is no such thing here.
default_transport = error:this test's Postfix delivers to {domain} only
relay_transport = $default_transport

# Headers stay as the client wrote them: nothing added, nothing rewritten.
local_header_rewrite_clients =

# SMTP AUTH, checked by Dovecot; plaintext is allowed (loopback, no TLS).
smtpd_tls_security_level = none
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth_port}
smtpd_sasl_security_options = noanonymous
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =
"""

# service type private unpriv chroot wakeup maxproc command
MASTER_CF = """\
# One test's Postfix, written by t/lib/lempostfix.py; nothing chrooted.
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix       n - n - 0 cleanup
qmgr      unix       n - n 300 1 qmgr
rewrite   unix       - - n - - trivial-rewrite
bounce    unix       - - n - 0 bounce
defer     unix       - - n - 0 bounce
trace     unix       - - n - 0 bounce
verify    unix       - - n - 1 verify
flush     unix       n - n 1000? 0 flush
proxymap  unix       - - n - - proxymap
showq     unix       n - n - - showq
error     unix       - - n - - error
retry     unix       - - n - - error
discard   unix       - - n - - discard
virtual   unix       - n n - - virtual
anvil     unix       - - n - 1 anvil
postlog   unix-dgram n - n - 1 postlogd
"""

# The queue's directories: (name, owner, group, mode), as postfix-files
# has them; "pid" holds master.pid.
QUEUE_DIRS = [(name, POSTFIX_USER, None, 0o700) for name in (
    "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
    "incoming", "private", "saved", "trace")] + [
    ("maildrop", POSTFIX_USER, POSTFIX_SETGID_GROUP, 0o730),
    ("public", POSTFIX_USER, POSTFIX_SETGID_GROUP, 0o710),
    ("pid", "root", None, 0o755)]


def _own(path, user, group, mode):
    os.makedirs(path, exist_ok=True)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, grp.getgrnam(group).gr_gid if group
             else pw.pw_gid)
    os.chmod(path, mode)


class Postfix:
    """A private Postfix on 127.0.0.1:port, its state under tmp/name.

    dovecot is a SaslDovecot: it answers SMTP AUTH, and its users' Maildirs
    (USER@example.org) are where Postfix delivers.
    """

    def __init__(self, tmp, dovecot, port=None, name="postfix"):
        self.dovecot = dovecot
        self.dir = os.path.join(tmp, name)
        self.confdir = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        self._out = os.path.join(self.dir, "master.out")
        self.own_port = port is None
        self.port = port or free_port()
        self.proc = None
        self.pid = None
        self._log_start = 0

    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    # starting and stopping

    def write_config(self):
        make_dir(self.dir)
        make_dir(self.confdir)
        make_dir(self.queue)
        for name, user, group, mode in QUEUE_DIRS:
            _own(os.path.join(self.queue, name), user, group, mode)
        _own(self.data, POSTFIX_USER, None, 0o700)
        mailboxes = ", ".join("%s@%s=%s/" % (user, MAIL_DOMAIN, user)
                              for user in sorted(self.dovecot.users))
        write_text(os.path.join(self.confdir, "main.cf"), MAIN_CF.format(
            queue=self.queue, data=self.data, daemons=POSTFIX_DAEMONS,
            commands=POSTFIX_COMMANDS, postfix_user=POSTFIX_USER,
            setgid_group=POSTFIX_SETGID_GROUP, maillog=self.maillog,
            dir=self.dir, domain=MAIL_DOMAIN, mail=self.dovecot.mail,
            mailboxes=mailboxes, uid=pwd.getpwnam(MAIL_USER).pw_uid,
            gid=grp.getgrnam(MAIL_GROUP).gr_gid,
            auth_port=self.dovecot.auth_port))
        write_text(os.path.join(self.confdir, "master.cf"),
                   MASTER_CF.format(port=self.port))

    def start(self):
        return start_on_free_port(self, self._start_once)

    def _start_once(self):
        self.write_config()
        self._log_start = len(self.log())
        out = open(self._out, "ab")
        try:
            # Without -w the master stays in the foreground, our child,
            # so its PID is ours; -s keeps its stdout.
            self.proc = subprocess.Popen(
                [POSTFIX_MASTER, "-c", self.confdir, "-s"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        finally:
            out.close()
        self.pid = self.proc.pid
        if not wait_for(self._greets, START_TIMEOUT, 0.1):
            self.stop()
            raise RuntimeError("postfix on port %d did not greet within "
                               "%.0f s:\n%s" % (self.port, START_TIMEOUT,
                                                self.log()))
        return self

    def _greets(self):
        if self.proc is not None and self.proc.poll() is not None:
            status = self.proc.returncode
            self.stop()
            # A master that fails before postlogd runs logs nowhere: a
            # port someone else holds is found by trying it, and `postfix
            # check` says what it can about the rest.
            if not port_is_free(self.port):
                raise PortTaken("postfix: port %d is taken" % self.port)
            check = self._check()      # it logs to the maillog too
            raise RuntimeError("postfix's master exited with %s:\n%s%s"
                               % (status, self.log()[self._log_start:],
                                  check))
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.settimeout(2)
                return s.recv(64).startswith(b"220")
        except OSError:
            return False

    def _check(self):
        """What `postfix check` says of this configuration."""
        try:
            res = subprocess.run(
                [os.path.join(POSTFIX_COMMANDS, "postfix"), "-c",
                 self.confdir, "check"], stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "postfix check: %s\n" % e
        return "postfix check (%d): %s%s" % (res.returncode, res.stdout,
                                             res.stderr)

    def stop(self):
        """Stop the master by its PID; True if all was gone in time.

        The master passes SIGTERM on to its children; any left once it
        has gone get their own, by PID.
        """
        if self.pid is None:
            return True
        reap = self.proc.poll if self.proc else None
        left = stop_tree(self.pid, reap=reap, orphans_too=True)
        if self.proc:
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.pid = None
        self.proc = None
        if left:
            sys.stderr.write("postfix: killed after %.0f s: %s\n"
                             % (STOP_TIMEOUT, ", ".join(left)))
        return not left

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # what it holds

    def log(self):
        """Its maillog, then anything the master wrote to stdout."""
        return read_text(self.maillog) + read_text(self._out)

    def messages(self, user):
        """The messages delivered to user's INBOX, oldest first, as the
        files hold them (LF line ends, Postfix's trace headers on top)."""
        root = self.dovecot.maildir(user)
        paths = []
        for sub in ("new", "cur"):
            folder = os.path.join(root, sub)
            if os.path.isdir(folder):
                paths += [os.path.join(folder, n) for n in os.listdir(folder)]
        paths.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))
        out = []
        for path in paths:
            with open(path, "rb") as f:
                out.append(f.read())
        return out

    def wait_messages(self, user, count, timeout=10.0):
        """messages(user) once there are at least count (bounded)."""
        wait_for(lambda: len(self.messages(user)) >= count, timeout, 0.05)
        return self.messages(user)
