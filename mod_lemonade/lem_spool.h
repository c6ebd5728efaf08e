/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEM_SPOOL_H
#define LEM_SPOOL_H

/*
 * A spool: bytes written once, read back once or handed to a brigade
 * (protocol core, APR only).
 *
 * In-response mode must read a whole batch before its first byte goes to
 * the backend, and must know every tagged result before the HTTP status
 * line goes out, so both the request and the answer pass through a spool.
 * The first `mem_max` bytes stay in memory; the rest goes to an unlinked
 * temporary file, so a 50 MB APPEND costs disk, not memory.
 *
 *     +------------------------+-----------------------------+
 *     | memory: [0, mem_len)   | file: [mem_len, size)       |
 *     +------------------------+-----------------------------+
 */

#include <apr_buckets.h>
#include <apr_file_io.h>
#include <apr_pools.h>

typedef struct lem_spool_t lem_spool_t;

/* Create an empty spool in `pool`; it goes away with the pool. */
apr_status_t lem_spool_create(lem_spool_t **spool, apr_pool_t *pool,
                              apr_size_t mem_max);

/* Append `len` bytes. An error comes from the temporary file. */
apr_status_t lem_spool_write(lem_spool_t *spool, const char *data,
                             apr_size_t len);

/* Bytes written so far. */
apr_off_t lem_spool_size(const lem_spool_t *spool);

/* Non-zero when part of the spool went to a file. */
int lem_spool_on_disk(const lem_spool_t *spool);

/*
 * Read the spool from the start, a piece per call: `*data` points at the
 * next `*len` bytes (valid until the next call). Returns APR_SUCCESS,
 * APR_EOF after the last piece, or the file's error.
 */
apr_status_t lem_spool_rewind(lem_spool_t *spool);
apr_status_t lem_spool_read(lem_spool_t *spool, const char **data,
                            apr_size_t *len);

/* Append the whole spool to `bb` without copying the file part. */
apr_status_t lem_spool_to_brigade(lem_spool_t *spool,
                                  apr_bucket_brigade *bb);

#endif /* LEM_SPOOL_H */
