/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <apr_strings.h>

#include "lem_spool.h"

#define LEM_SPOOL_READ_SIZE  (64 * 1024)

struct lem_spool_t {
    apr_pool_t *pool;
    apr_size_t  mem_max;   /* bytes kept in memory at most */
    char       *mem;       /* the memory part */
    apr_size_t  mem_len;
    apr_size_t  mem_cap;
    apr_file_t *file;      /* the rest, or NULL */
    apr_off_t   file_len;
    /* reading back */
    apr_off_t   rpos;      /* next byte to read */
    char       *rbuf;      /* file pieces are read into this */
};

apr_status_t lem_spool_create(lem_spool_t **spool, apr_pool_t *pool,
                              apr_size_t mem_max)
{
    lem_spool_t *sp = apr_pcalloc(pool, sizeof(*sp));

    sp->pool = pool;
    sp->mem_max = mem_max;
    *spool = sp;
    return APR_SUCCESS;
}

static apr_status_t open_file(lem_spool_t *sp)
{
    const char *dir;
    char *path;
    apr_status_t rv;

    rv = apr_temp_dir_get(&dir, sp->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    path = apr_pstrcat(sp->pool, dir, "/lemonade.XXXXXX", NULL);
    return apr_file_mktemp(&sp->file, path,
                           APR_FOPEN_CREATE | APR_FOPEN_READ
                           | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                           | APR_FOPEN_DELONCLOSE | APR_FOPEN_BUFFERED,
                           sp->pool);
}

static void grow_memory(lem_spool_t *sp, apr_size_t need)
{
    apr_size_t cap = sp->mem_cap ? sp->mem_cap : 4096;
    char *mem;

    while (cap < need) {
        cap *= 2;
    }
    if (cap > sp->mem_max) {
        cap = sp->mem_max;
    }
    mem = apr_palloc(sp->pool, cap);
    if (sp->mem_len) {
        memcpy(mem, sp->mem, sp->mem_len);
    }
    sp->mem = mem;
    sp->mem_cap = cap;
}

apr_status_t lem_spool_write(lem_spool_t *sp, const char *data,
                             apr_size_t len)
{
    apr_size_t n;
    apr_status_t rv;

    /* 1. into memory while there is room */
    if (!sp->file && sp->mem_len < sp->mem_max) {
        n = sp->mem_max - sp->mem_len;
        if (n > len) {
            n = len;
        }
        if (sp->mem_len + n > sp->mem_cap) {
            grow_memory(sp, sp->mem_len + n);
        }
        memcpy(sp->mem + sp->mem_len, data, n);
        sp->mem_len += n;
        data += n;
        len -= n;
    }
    if (!len) {
        return APR_SUCCESS;
    }

    /* 2. the rest into the file */
    if (!sp->file && (rv = open_file(sp)) != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_write_full(sp->file, data, len, NULL);
    if (rv == APR_SUCCESS) {
        sp->file_len += (apr_off_t)len;
    }
    return rv;
}

apr_off_t lem_spool_size(const lem_spool_t *sp)
{
    return (apr_off_t)sp->mem_len + sp->file_len;
}

int lem_spool_on_disk(const lem_spool_t *sp)
{
    return sp->file != NULL;
}

apr_status_t lem_spool_rewind(lem_spool_t *sp)
{
    apr_off_t off = 0;

    sp->rpos = 0;
    if (!sp->file) {
        return APR_SUCCESS;
    }
    if (!sp->rbuf) {
        sp->rbuf = apr_palloc(sp->pool, LEM_SPOOL_READ_SIZE);
    }
    /* flushes what the buffered file still holds */
    return apr_file_seek(sp->file, APR_SET, &off);
}

apr_status_t lem_spool_read(lem_spool_t *sp, const char **data,
                            apr_size_t *len)
{
    apr_size_t n = LEM_SPOOL_READ_SIZE;
    apr_status_t rv;

    if (sp->rpos < (apr_off_t)sp->mem_len) {
        *data = sp->mem + sp->rpos;
        *len = sp->mem_len - (apr_size_t)sp->rpos;
        sp->rpos = (apr_off_t)sp->mem_len;
        return APR_SUCCESS;
    }
    if (!sp->file || sp->rpos >= lem_spool_size(sp)) {
        *len = 0;
        return APR_EOF;
    }
    rv = apr_file_read(sp->file, sp->rbuf, &n);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    sp->rpos += (apr_off_t)n;
    *data = sp->rbuf;
    *len = n;
    return APR_SUCCESS;
}

apr_status_t lem_spool_to_brigade(lem_spool_t *sp, apr_bucket_brigade *bb)
{
    apr_status_t rv;

    if (sp->mem_len) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(
            sp->mem, sp->mem_len, sp->pool, bb->bucket_alloc));
    }
    if (!sp->file) {
        return APR_SUCCESS;
    }
    rv = apr_file_flush(sp->file);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_brigade_insert_file(bb, sp->file, 0, sp->file_len, sp->pool);
    return APR_SUCCESS;
}
