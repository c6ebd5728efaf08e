#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""001: httpd loads mod_lemonade under prefork and event, starts and stops
cleanly with a lemonade Location, and refuses a backend URL that is not
imap:// at configuration time."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    MODULE, Dovecot, Httpd, Test, lemonade_location)


def start_and_stop(t, tmp, dc, mpm):
    httpd = Httpd(tmp, mpm=mpm, body=lemonade_location(dc))

    rc, out = httpd.configtest("-D", "DUMP_MODULES")
    t.ok(rc == 0 and "lemonade_module" in out,
         "%s: httpd -t accepts the Location and lists lemonade_module" % mpm,
         out)

    try:
        httpd.start()
        started, why = True, ""
    except RuntimeError as e:
        started, why = False, str(e)
    t.ok(started, "%s: httpd starts with a lemonade Location" % mpm, why)

    clean = httpd.stop()
    t.ok(clean, "%s: httpd and all its children are gone within 10 s" % mpm)

    log = httpd.error_log()
    t.ok(started and "resuming normal operations" in log,
         "%s: the error log shows httpd serving" % mpm, log)
    errors = httpd.log_lines()
    t.ok(not errors, "%s: the error log has no error" % mpm,
         "\n".join(errors))


with Test("001 module loads") as t:
    t.ok(os.path.exists(MODULE), "the module is built: %s" % MODULE)
    tmp = t.tmpdir()

    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        for mpm in ("prefork", "event"):
            start_and_stop(t, tmp, dc, mpm)

    bad = Httpd(tmp, name="httpd-bad-url",
                body=lemonade_location("ftp://x"))
    rc, out = bad.configtest()
    t.ok(rc != 0, "httpd -t refuses LemonadeBackend ftp://x", out)
    t.ok("LemonadeBackend" in out, "and the message names the directive", out)
