/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <apr_atomic.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_log.h>
#include <util_mutex.h>

#include "mod_lemonade.h"

APLOG_USE_MODULE(lemonade);

#define LEM_MUTEX_TYPE "lemonade-table"

struct lem_table_t {
    apr_shm_t          *shm;
    apr_global_mutex_t *mutex;
    const char         *mutex_file;
    lem_table_hdr_t    *hdr;
    lem_slot_t         *slots;
};

apr_status_t lem_table_register(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, LEM_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT,
                             0);
}

apr_status_t lem_table_create(lem_table_t **table, int nslots,
                              server_rec *s, apr_pool_t *pool)
{
    lem_table_t *t = apr_pcalloc(pool, sizeof(*t));
    apr_size_t size = sizeof(lem_table_hdr_t)
                    + (apr_size_t)nslots * sizeof(lem_slot_t);
    apr_status_t rv;

    /* 1. the lock, of the mechanism the Mutex directive chose */
    rv = ap_global_mutex_create(&t->mutex, &t->mutex_file, LEM_MUTEX_TYPE,
                                NULL, s, pool, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, LEMLOGNO(0101)
                     "session table: cannot create its mutex");
        return rv;
    }

    /* 2. the memory, anonymous so it goes with the last process */
    rv = apr_shm_create(&t->shm, size, NULL, pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, LEMLOGNO(0102)
                     "session table: cannot create %" APR_SIZE_T_FMT
                     " bytes of shared memory for %d sessions", size,
                     nslots);
        return rv;
    }
    t->hdr = apr_shm_baseaddr_get(t->shm);
    memset(t->hdr, 0, size);
    t->hdr->magic = LEM_TABLE_MAGIC;
    t->hdr->nslots = (apr_uint32_t)nslots;
    t->slots = (lem_slot_t *)(t->hdr + 1);
    *table = t;
    return APR_SUCCESS;
}

apr_status_t lem_table_child_init(lem_table_t *t, apr_pool_t *p)
{
    return apr_global_mutex_child_init(&t->mutex, t->mutex_file, p);
}

int lem_table_slots(const lem_table_t *t)
{
    return (int)t->hdr->nslots;
}

/* The lock is held for a few dozen instructions; failing to take it means
 * the mutex itself is broken, and then no session can be trusted. */
static int lock(lem_table_t *t)
{
    return apr_global_mutex_lock(t->mutex) == APR_SUCCESS;
}

static void unlock(lem_table_t *t)
{
    apr_global_mutex_unlock(t->mutex);
}

void lem_table_reset(lem_table_t *t)
{
    if (!lock(t)) {
        return;
    }
    memset(t->slots, 0, t->hdr->nslots * sizeof(lem_slot_t));
    t->hdr->in_use = 0;
    unlock(t);
}

/* The slot `id` names, if it is in the table and holds that id. */
static lem_slot_t *slot_of(lem_table_t *t, const lem_id_t *id)
{
    lem_slot_t *slot;

    if (id->slot >= t->hdr->nslots) {
        return NULL;
    }
    slot = &t->slots[id->slot];
    if (slot->state == LEM_SLOT_FREE || !lem_id_equal(slot->id, id->bytes)) {
        return NULL;
    }
    return slot;
}

/* A FREE slot, or -1; and how many slots `ip` holds. Under the lock. */
static int free_slot(lem_table_t *t, const char *ip, int *held)
{
    apr_uint32_t n;
    int found = -1;

    *held = 0;
    for (n = 0; n < t->hdr->nslots; n++) {
        lem_slot_t *slot = &t->slots[n];

        if (slot->state == LEM_SLOT_FREE) {
            found = found < 0 ? (int)n : found;
        }
        else if (!strcmp(slot->client_ip, ip)) {
            (*held)++;
        }
    }
    return found;
}

apr_status_t lem_session_reserve(lem_table_t *t,
                                 const lem_session_spec_t *spec,
                                 lem_id_t *id)
{
    apr_status_t rv;
    lem_slot_t *slot;
    int n, held;

    if (!lock(t)) {
        return APR_EGENERAL;
    }
    n = free_slot(t, spec->client_ip, &held);
    if (n < 0 || held >= spec->max_per_client) {
        unlock(t);
        return n < 0 ? APR_ENOSPC : APR_EBUSY;
    }
    rv = lem_id_generate(id, (apr_uint32_t)n);
    if (rv == APR_SUCCESS) {
        slot = &t->slots[n];
        memset(slot, 0, sizeof(*slot));
        slot->state = LEM_SLOT_OPENING;
        slot->proto = spec->proto;
        memcpy(slot->id, id->bytes, LEM_ID_BYTES);
        slot->created = slot->last_used = apr_time_now();
        slot->idle_timeout = spec->idle_timeout;
        slot->expires = slot->created + spec->lifetime;
        apr_cpystrn(slot->client_ip, spec->client_ip,
                    sizeof(slot->client_ip));
        t->hdr->in_use++;
        t->hdr->opened++;
    }
    unlock(t);
    return rv;
}

void lem_session_opened(lem_table_t *t, const lem_id_t *id)
{
    lem_slot_t *slot;

    if (!lock(t)) {
        return;
    }
    if ((slot = slot_of(t, id)) != NULL) {
        slot->state = LEM_SLOT_OPEN;
    }
    unlock(t);
}

/*
 * The request path takes no lock. A lookup only reads, and may race with
 * the keeper closing the session: it can then say "found" for a session
 * a moment from gone, but the keeper has the last word (it checks the id
 * again when asked to lend the connection, and answers GONE). The fields
 * a request writes are written by the borrower alone, whom the keeper
 * lets in one at a time; they are stored atomically for the readers.
 */
apr_status_t lem_session_find(lem_table_t *t, const lem_id_t *id,
                              lem_proto_t proto, const char *client_ip)
{
    apr_time_t now = apr_time_now();
    lem_slot_t *slot = slot_of(t, id);

    if (slot && apr_atomic_read32(&slot->state) == LEM_SLOT_OPEN
        && slot->proto == proto
        && now - (apr_time_t)apr_atomic_read64(
                     (volatile apr_uint64_t *)&slot->last_used)
           < slot->idle_timeout
        && now < slot->expires
        && (!client_ip || !strcmp(client_ip, slot->client_ip))) {
        return APR_SUCCESS;
    }
    return APR_NOTFOUND;
}

apr_uint32_t lem_session_borrowed(lem_table_t *t, const lem_id_t *id)
{
    lem_slot_t *slot = slot_of(t, id);

    if (!slot) {
        return 0;
    }
    apr_atomic_inc32(&slot->requests);
    apr_atomic_set32(&slot->activity, LEM_ACT_BUSY);
    return apr_atomic_read32(&slot->flags);
}

void lem_session_touch(lem_table_t *t, const lem_id_t *id,
                       apr_uint32_t flags)
{
    lem_slot_t *slot = slot_of(t, id);

    if (slot) {
        apr_atomic_set64((volatile apr_uint64_t *)&slot->last_used,
                         (apr_uint64_t)apr_time_now());
        apr_atomic_set32(&slot->flags, flags);
        apr_atomic_set32(&slot->activity, LEM_ACT_IDLE);
    }
}

void lem_session_release(lem_table_t *t, const lem_id_t *id)
{
    lem_slot_t *slot;

    if (!lock(t)) {
        return;
    }
    if ((slot = slot_of(t, id)) != NULL) {
        memset(slot, 0, sizeof(*slot));
        t->hdr->in_use--;
        t->hdr->closed++;
    }
    unlock(t);
}

void lem_session_activity(lem_table_t *t, const lem_id_t *id,
                          lem_activity_t activity)
{
    lem_slot_t *slot = slot_of(t, id);

    if (slot) {
        apr_atomic_set32(&slot->activity, activity);
    }
}

void lem_stat_add(lem_table_t *t, lem_stat_t which, apr_int64_t n)
{
    apr_atomic_add64(&t->hdr->stats[which], (apr_uint64_t)n);
}

void lem_table_header(lem_table_t *t, lem_table_hdr_t *copy)
{
    int i;

    if (!lock(t)) {
        memset(copy, 0, sizeof(*copy));
        return;
    }
    *copy = *t->hdr;
    unlock(t);
    for (i = 0; i < LEM_STAT_MAX; i++) {
        copy->stats[i] = apr_atomic_read64(&t->hdr->stats[i]);
    }
}

lem_slot_state_t lem_table_peek(lem_table_t *t, apr_uint32_t n,
                                lem_slot_t *copy)
{
    if (n >= t->hdr->nslots || !lock(t)) {
        return LEM_SLOT_FREE;
    }
    *copy = t->slots[n];
    unlock(t);
    return (lem_slot_state_t)copy->state;
}
