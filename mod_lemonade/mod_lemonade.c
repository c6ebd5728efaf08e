/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * mod_lemonade: IMAP and SMTP over HTTP, after
 * draft-maes-lemonade-http-binding-04. This file only registers hooks;
 * mod_lemonade.h says where each part lives.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <ap_mpm.h>

#include "mod_lemonade.h"
#include "mod_lemonade_config.h"
#include "mod_lemonade_filter.h"
#include "mod_lemonade_handler.h"
#include "mod_lemonade_keeper.h"
#include "mod_lemonade_status.h"

static int lem_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return lem_table_register(pconf) == APR_SUCCESS ? OK : !OK;
}

static int lem_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;

    /* the first pass only checks the configuration; so does -t */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        || ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_NORMAL) {
        return OK;
    }
    return lem_keeper_start(s, pconf, ptemp) == APR_SUCCESS ? OK
                                                            : !OK;
}

static void lem_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv = lem_table_child_init(lem_state.table, pchild);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, LEMLOGNO(0001)
                     "cannot attach to the session table's mutex");
    }
}

/*
 * A lemonade Location maps to no file. Claimed here, its requests skip
 * httpd's walk of the file system (a stat and an .htaccess lookup for
 * each directory level of the URL), as proxied requests do. The early
 * Location walk has merged our configuration by translate_name time;
 * map_to_storage runs on the server's defaults, so a note carries it.
 */
static int lem_translate_name(request_rec *r)
{
    const lem_dir_conf_t *conf = ap_get_module_config(r->per_dir_config,
                                                      &lemonade_module);

    if (conf && conf->proto != LEM_PROTO_NONE) {
        apr_table_setn(r->notes, "lemonade-location", "1");
    }
    return DECLINED;
}

static int lem_map_to_storage(request_rec *r)
{
    if (!apr_table_get(r->notes, "lemonade-location")) {
        return DECLINED;
    }
    r->filename = apr_pstrcat(r->pool, "lemonade:", r->uri, NULL);
    return OK;
}

static void lem_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(lem_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(lem_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(lem_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(lem_translate_name, NULL, NULL,
                           APR_HOOK_REALLY_FIRST);
    ap_hook_map_to_storage(lem_map_to_storage, NULL, NULL,
                           APR_HOOK_FIRST);
    ap_hook_handler(lem_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(lem_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    lem_status_register();
    ap_register_output_filter(LEM_PUSH_FILTER, lem_push_filter, NULL,
                              AP_FTYPE_RESOURCE);
}

AP_DECLARE_MODULE(lemonade) = {
    STANDARD20_MODULE_STUFF,
    lem_dir_conf_create,
    lem_dir_conf_merge,
    lem_srv_conf_create,
    NULL,
    lem_cmds,
    lem_register_hooks,
    AP_MODULE_FLAG_NONE
};
