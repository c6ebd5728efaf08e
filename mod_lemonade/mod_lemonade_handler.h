/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_HANDLER_H
#define MOD_LEMONADE_HANDLER_H

/*
 * The `lemonade` handler: draft-maes-lemonade-http-binding-04, 2.1.1,
 * in-response mode.
 *
 *   POST, Content-Type: application/vnd.lemonade     OPTIONS: a probe
 *   body: tagged commands, CRLF ended                 other methods: 405
 *
 * A request is served in five steps:
 *   1. the method and media type are checked;
 *   2. the whole batch is read and every command checked (7-bit text,
 *      well-formed tags and literals, the limits) before a byte of it goes
 *      to the backend: bad input is a 400 or 413 and the session is
 *      untouched;
 *   3. the session named by the cookie is borrowed from the keeper, or a
 *      new one is opened (502/504 when the backend cannot be reached);
 *   4. the commands are relayed in order, pipelined, waiting only where
 *      IMAP demands it (a synchronizing literal, AUTHENTICATE), and every
 *      response is gathered;
 *   5. the answer goes out: text/plain, 200 when every tagged response is
 *      OK, 500 when one is NO or BAD.
 */

#include <httpd.h>

#include "mod_lemonade_config.h"

/* The handler, for ap_hook_handler(). */
int lem_handler(request_rec *r);

/* draft 3: Cache-Control no-cache, no-store, must-revalidate and Pragma
 * no-cache, on every answer of every mode. */
void lem_set_no_cache(request_rec *r);

/* A one-line text/plain answer with `status`, sent as our own body rather
 * than an HTML error page. Returns DONE. */
int lem_answer_line(request_rec *r, int status, const char *text);

/* The backend could not be reached: 502, or 504 when it was too slow,
 * with one line naming `server` and saying `what` happened. DONE. */
int lem_answer_unreachable(request_rec *r, const lem_dir_conf_t *conf,
                           const char *server, apr_status_t rv,
                           const char *what);

#endif /* MOD_LEMONADE_HANDLER_H */
