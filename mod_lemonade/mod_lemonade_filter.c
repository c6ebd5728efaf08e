/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include "mod_lemonade_filter.h"

apr_status_t lem_push_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    apr_bucket *last;

    if (APR_BRIGADE_EMPTY(bb)) {
        return APR_SUCCESS;
    }
    last = APR_BRIGADE_LAST(bb);
    if (!APR_BUCKET_IS_EOS(last) && !APR_BUCKET_IS_FLUSH(last)) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(
                                        f->c->bucket_alloc));
    }
    return ap_pass_brigade(f->next, bb);
}
