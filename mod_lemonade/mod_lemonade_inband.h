/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_INBAND_H
#define MOD_LEMONADE_INBAND_H

/*
 * In-band mode: draft-maes-lemonade-http-binding-04, 2.1.2.
 *
 * One POST with "Transfer-Encoding: chunked" is one IMAP or SMTP
 * connection (the Location's protocol, mod_lemonade_proto.h) for
 * as long as it lasts. The answer starts at once (200, chunked,
 * text/plain, Cache-Control: private and no-cache, no cookie: the HTTP
 * connection is the session) with the server's greeting; then the
 * client's commands go to the server as they arrive, framed by IMAP lines
 * and literals whatever the chunks, and every response, pushed or asked
 * for, comes back as a chunk of its own the moment the server sends it.
 * Continuations pass through both ways, so synchronizing literals, IDLE
 * and multi-step AUTHENTICATE work as on a plain connection.
 *
 *   client                      gateway                     server
 *   POST, chunked  ------------>  connect  --------------->
 *                  <------------  200, chunk "* OK ..."  <-- greeting
 *   chunk "a IDLE" ------------>  -------------------------> 
 *                  <------------  chunk "+ idling"  <-------
 *                  <------------  chunk "* 4 EXISTS" <------ (any time)
 *   chunk "DONE"   ------------>  ------------------------->
 *                  <------------  chunk "a OK"  <-----------
 *   last chunk     ------------>  close (after the answers)
 *
 * The session ends when the client sends its last chunk (once every
 * command it sent is answered), when the server closes (the answer ends
 * with "* BYE" and the last chunk), when the client goes away (the server
 * connection is closed at once), or after LemonadeSessionIdleTimeout of
 * silence both ways. A session holds one httpd worker thread throughout.
 */

#include <httpd.h>

#include "mod_lemonade_config.h"
#include "mod_lemonade_proto.h"

/* Serve `r` as an in-band session of `proto`. Returns DONE when the
 * answer is made (and the session over), or an HTTP status. */
int lem_inband_serve(request_rec *r, const lem_dir_conf_t *conf,
                     const lem_protocol_t *proto);

#endif /* MOD_LEMONADE_INBAND_H */
