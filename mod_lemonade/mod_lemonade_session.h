/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef MOD_LEMONADE_SESSION_H
#define MOD_LEMONADE_SESSION_H

/*
 * The session table: one slot per session, in anonymous APR shared memory
 * created by the parent before any child or the keeper is forked, so every
 * Apache process sees the same table. A global mutex guards what changes
 * a slot's life (reserve, open, release); a request's own reads and writes
 * of its slot take no lock (lem_session_find() says why that is safe).
 *
 *   offset 0  +-------------------------------------------+
 *             | lem_table_hdr_t: magic, nslots, counters  |
 *             +-------------------------------------------+
 *             | lem_slot_t [0]   state, id, proto, times, |
 *             |                  client address, counts   |
 *             | lem_slot_t [1]                            |
 *             | ...                                       |
 *             | lem_slot_t [nslots - 1]                   |
 *             +-------------------------------------------+
 *
 * A slot holds what a session is, never its connection: a socket cannot
 * live in shared memory, so the backend connection of slot N is held by
 * the keeper process (mod_lemonade_keeper.h) under the same N.
 *
 * Slot life:  FREE --reserve--> OPENING --open--> OPEN --release--> FREE
 * A child reserves a slot and connects to the backend; once the keeper has
 * adopted the connection the slot is OPEN. The keeper frees the slots it
 * closes (idle, backend gone) and any OPENING slot whose child died.
 */

#include <httpd.h>
#include <apr_global_mutex.h>
#include <apr_shm.h>

#include "lem_id.h"
#include "mod_lemonade_config.h"

#define LEM_TABLE_MAGIC  0x4c454d31u  /* "LEM1" */

typedef enum {
    LEM_SLOT_FREE = 0,
    LEM_SLOT_OPENING,      /* reserved; the backend is being reached */
    LEM_SLOT_OPEN          /* the keeper holds the backend connection */
} lem_slot_state_t;

/* What an OPEN session is doing, for the status page. */
typedef enum {
    LEM_ACT_IDLE = 0,      /* waiting for its next request */
    LEM_ACT_BUSY,          /* a request is using it */
    LEM_ACT_LONG_POLL      /* a request holds it in IDLE */
} lem_activity_t;

/* Counters of the whole server, for the status page. Those marked "now"
 * go up and down; the others only up. */
typedef enum {
    LEM_STAT_REQUESTS = 0,   /* in-response requests answered */
    LEM_STAT_INBAND,         /* in-band sessions served */
    LEM_STAT_INBAND_IMAP,    /* in-band IMAP sessions open now */
    LEM_STAT_INBAND_SMTP,    /* in-band SMTP sessions open now */
    LEM_STAT_BYTES_IN,       /* from clients, request bodies */
    LEM_STAT_BYTES_OUT,      /* to clients, answer bodies */
    LEM_STAT_ERR_CLIENT,     /* bad requests: 400, 405, 413, 415 */
    LEM_STAT_ERR_BACKEND,    /* servers down, slow or broken: 502, 504 */
    LEM_STAT_ERR_BUSY,       /* sessions busy too long: 503 */
    LEM_STAT_LIMITS,         /* a limit was hit: 413, table full */
    LEM_STAT_MAX
} lem_stat_t;

typedef struct {
    apr_uint32_t        state;         /* lem_slot_state_t */
    apr_uint32_t        activity;      /* lem_activity_t, when OPEN */
    apr_uint32_t        proto;         /* lem_proto_t */
    unsigned char       id[LEM_ID_BYTES];
    apr_time_t          created;
    apr_time_t          last_used;     /* end of the last request */
    apr_interval_time_t idle_timeout;  /* from the Location that made it */
    apr_time_t          expires;       /* its end, used or not */
    apr_uint32_t        requests;      /* served so far */
    apr_uint32_t        flags;         /* the protocol's, between requests */
    char                client_ip[48]; /* who opened it */
} lem_slot_t;

typedef struct {
    apr_uint32_t magic;
    apr_uint32_t nslots;
    apr_uint32_t in_use;           /* slots not FREE */
    apr_uint32_t pad;
    apr_uint64_t opened;           /* sessions ever opened */
    apr_uint64_t closed;           /* sessions ever closed */
    apr_uint64_t stats[LEM_STAT_MAX]; /* lem_stat_t, atomic, no lock */
} lem_table_hdr_t;

typedef struct lem_table_t lem_table_t;

/* pre_config, every generation: make the "lemonade-table" mutex type
 * known to the Mutex directive. */
apr_status_t lem_table_register(apr_pool_t *pconf);

/* Parent, once per Apache lifetime: create the table in `pool` (the
 * process pool, so it survives restarts). */
apr_status_t lem_table_create(lem_table_t **table, int nslots,
                              server_rec *s, apr_pool_t *pool);

/* Every process forked from the parent, before its first use. */
apr_status_t lem_table_child_init(lem_table_t *table, apr_pool_t *p);

/* Mark every slot FREE (a new keeper holds no connection). */
void lem_table_reset(lem_table_t *table);

int lem_table_slots(const lem_table_t *table);

/* What a new session is given. */
typedef struct {
    lem_proto_t         proto;
    const char         *client_ip;
    apr_interval_time_t idle_timeout;
    apr_interval_time_t lifetime;
    int                 max_per_client;   /* sessions of client_ip */
} lem_session_spec_t;

/*
 * Take a FREE slot for a new session and give it a fresh id.
 * APR_ENOSPC when the table is full, APR_EBUSY when the client address
 * holds max_per_client sessions already, APR_EGENERAL when no random id
 * could be made.
 */
apr_status_t lem_session_reserve(lem_table_t *table,
                                 const lem_session_spec_t *spec,
                                 lem_id_t *id);

/* OPENING -> OPEN, once the keeper has the connection. */
void lem_session_opened(lem_table_t *table, const lem_id_t *id);

/*
 * Look up a session named by a client: APR_SUCCESS when `id` is an OPEN
 * slot of protocol `proto` whose idle time and lifetime have not run out
 * (and, when `client_ip` is given, that was opened from it); APR_NOTFOUND
 * otherwise (unknown, expired, other protocol or forged). Takes no lock:
 * the keeper confirms when it lends the connection.
 */
apr_status_t lem_session_find(lem_table_t *table, const lem_id_t *id,
                              lem_proto_t proto, const char *client_ip);

/* The connection is borrowed: count the request, mark the session busy,
 * and return the flags its protocol left for the next request. */
apr_uint32_t lem_session_borrowed(lem_table_t *table, const lem_id_t *id);

/* Note the end of a request on the session, and the protocol's flags
 * for the next one. */
void lem_session_touch(lem_table_t *table, const lem_id_t *id,
                       apr_uint32_t flags);

/* Free the slot if it still belongs to `id`. */
void lem_session_release(lem_table_t *table, const lem_id_t *id);

/* Say what the session is doing now. */
void lem_session_activity(lem_table_t *table, const lem_id_t *id,
                          lem_activity_t activity);

/* Add `n` to a counter (a negative `n` to a "now" counter). */
void lem_stat_add(lem_table_t *table, lem_stat_t which, apr_int64_t n);

/* A copy of the header, counters included, for the status page. */
void lem_table_header(lem_table_t *table, lem_table_hdr_t *copy);

/*
 * For the keeper's sweep and the status page: copy slot `n` out under
 * the lock. Returns the slot's state.
 */
lem_slot_state_t lem_table_peek(lem_table_t *table, apr_uint32_t n,
                                lem_slot_t *copy);

#endif /* MOD_LEMONADE_SESSION_H */
