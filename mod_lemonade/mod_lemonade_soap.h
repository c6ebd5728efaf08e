/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_SOAP_H
#define MOD_LEMONADE_SOAP_H

/*
 * The SOAP binding (draft-maes-lemonade-http-binding-04, 2.2) in the
 * in-response handler: httpd glue around the mapping of lem_soap.h.
 *
 * The same IMAP Location serves it, chosen by the request's media type;
 * the handler's steps stay as they are and call in here:
 *
 *   1. lem_soap_accept: text/xml with a SOAPAction header (SOAP 1.1) or
 *      application/soap+xml (SOAP 1.2) marks the request as SOAP;
 *   2. lem_soap_read_batch: the XML body (at most LemonadeMaxRequestBody)
 *      is read and mapped, and the IMAP commands it makes go into b->body,
 *      checked as a tunnel batch is;
 *   3. the session and its cookie, and 4. the relay, are the tunnel's;
 *   5. lem_soap_send_answer: b->answer, the IMAP responses, becomes the
 *      SOAP answer, or a Fault when a command got NO or BAD or the
 *      backend failed.
 *
 * Whatever the handler refuses with lem_answer_line() on a SOAP request
 * goes out as a Fault (lem_soap_answer_line).
 */

#include <httpd.h>

#include "mod_lemonade_config.h"
#include "mod_lemonade_proto.h"

/* Step 1: non-zero, with the request marked, when `r` asks for the SOAP
 * binding on an IMAP Location. */
int lem_soap_accept(request_rec *r, const lem_dir_conf_t *conf);

/* Non-zero when lem_soap_accept() marked `r`. */
int lem_soap_is_soap(request_rec *r);

/* Step 2 for SOAP: OK, or DONE when the Fault is sent. */
int lem_soap_read_batch(lem_batch_t *b);

/* Step 5 for SOAP: OK, or AP_FILTER_ERROR when sending failed. */
int lem_soap_send_answer(lem_batch_t *b);

/* lem_answer_line() of a SOAP request: `text` as the faultstring of a
 * Client fault (status < 500) or a Server fault. Returns DONE. */
int lem_soap_answer_line(request_rec *r, int status, const char *text);

#endif /* MOD_LEMONADE_SOAP_H */
