/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_FILTER_H
#define MOD_LEMONADE_FILTER_H

/*
 * LEMONADE_PUSH, the output filter of in-band mode.
 *
 * draft-maes-lemonade-http-binding-04, 2.1.2: "The server responds to
 * each command with as many untagged responses as needed, and one tagged
 * response, where each response is [a chunk]". The in-band loop hands
 * down one response per brigade; this filter ends each brigade with a
 * FLUSH, so that httpd's chunk filter closes one chunk per response and
 * the core writes it to the client at once, whatever buffering the
 * filters below would otherwise do.
 */

#include <httpd.h>
#include <util_filter.h>

#define LEM_PUSH_FILTER "LEMONADE_PUSH"

apr_status_t lem_push_filter(ap_filter_t *f, apr_bucket_brigade *bb);

#endif /* MOD_LEMONADE_FILTER_H */
