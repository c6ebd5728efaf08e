/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_STATUS_H
#define MOD_LEMONADE_STATUS_H

/*
 * Status for operators, in the manner of mod_status:
 *
 *   <Location "/lemonade-status">
 *       SetHandler lemonade-status
 *       Require ip 127.0.0.1
 *   </Location>
 *
 * GET shows an HTML table; "?auto" the same figures as "Key: value"
 * lines for scripts, one of them "Sessions: N". With mod_status loaded,
 * server-status shows them too (prefixed "Lemonade" in its ?auto form).
 *
 *   Sessions               in-response and in-band sessions open
 *   IMAPIdle, IMAPBusy, IMAPLongPoll, IMAPInBand, SMTPIdle, SMTPBusy,
 *   SMTPInBand             sessions by protocol and what they do
 *   BackendConnections     connections to IMAP and SMTP servers open
 *   Requests, BytesIn, BytesOut, ErrorsClient, ErrorsBackend, ErrorsBusy,
 *   LimitsHit              since Apache started
 */

#include <httpd.h>

/* The lemonade-status handler, for ap_hook_handler(). */
int lem_status_handler(request_rec *r);

/* Join mod_status's server-status, when it is loaded. */
void lem_status_register(void);

#endif /* MOD_LEMONADE_STATUS_H */
