/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_H
#define MOD_LEMONADE_H

/*
 * What the httpd glue files share: the log tag and the per-process state.
 *
 * Where a request goes:
 *   mod_lemonade.c          hooks only
 *   mod_lemonade_config.c   directives
 *   mod_lemonade_handler.c  the lemonade handler: method, batch, relay, answer
 *   mod_lemonade_inband.c   in-band mode, and mod_lemonade_filter.c its
 *                           output filter
 *   mod_lemonade_imap.c     IMAP's half of both modes (mod_lemonade_proto.h)
 *   mod_lemonade_smtp.c     SMTP's half of both modes
 *   mod_lemonade_soap.c     the SOAP binding, over the IMAP relay
 *   mod_lemonade_status.c   the lemonade-status handler
 *   mod_lemonade_session.c  the shared-memory session table
 *   mod_lemonade_keeper.c   the process that holds backend connections
 *   mod_lemonade_backend.c  a child's I/O on one backend connection
 *   mod_lemonade_tls.c      TLS to backends, relayed by the keeper
 * and the protocol core it calls, with no httpd in it, is lem_*.c.
 */

#include "mod_lemonade_session.h"

/* Every message at DEBUG and above carries a tag of the module's own:
 * LEM followed by four digits, unique in the source. */
#define LEMLOGNO(n) "LEM" #n ": "

/* Per-process state, set in post_config and inherited across fork. */
typedef struct {
    lem_table_t *table;        /* the session table */
    const char  *socket_path;  /* where the keeper listens */
} lem_state_t;

extern lem_state_t lem_state;

#endif /* MOD_LEMONADE_H */
