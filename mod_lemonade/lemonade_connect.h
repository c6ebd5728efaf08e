/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#ifndef LEMONADE_CONNECT_H
#define LEMONADE_CONNECT_H

/*
 * lemonade-connect: a local IMAP or SMTP port whose every connection is one
 * session over the HTTP binding of draft-maes-lemonade-http-binding-04.
 *
 *   lemonade_connect.c          options, the start-up probe, the listener,
 *                               one thread per client, the choice of mode
 *   lemonade_connect_util.c     buffers, the log, the client's socket,
 *                               base64
 *   lemonade_connect_net.c      TCP and TLS to the HTTP server, bounded waits
 *   lemonade_connect_http.c     HTTP/1.1: URLs, requests, answers, chunks,
 *                               cookies, the proxy's CONNECT
 *   lemonade_connect_post.c     in-response exchanges: one batch, one answer
 *   lemonade_connect_inband.c   in-band mode (draft 2.1.2)
 *   lemonade_connect_imap.c     IMAP in in-response mode (draft 2.1.1)
 *   lemonade_connect_smtp.c     SMTP in in-response mode (draft 2.1.4)
 *
 * The client always sees a plain IMAP or SMTP connection. In-band mode
 * carries its bytes unchanged; in-response mode, the fallback for paths
 * that hold chunked answers back, frames them with the protocol core
 * (lem_imap.h, lem_smtp.h) and answers continuations itself.
 *
 * Only this program's side is here: the server is mod_lemonade, or anything
 * else that speaks the binding.
 */

#include <stddef.h>
#include <openssl/ssl.h>

#include "lem_imap.h"
#include "lem_smtp.h"

#define LC_VERSION   "0.1.0"

/* What a bounded wait or a read found. */
enum {
    LC_OK = 0,         /* done, or bytes are there */
    LC_END = 1,        /* a body ended where HTTP says it ends */
    LC_EOF = -1,       /* the peer closed */
    LC_TIMEOUT = -2,   /* nothing within the time allowed */
    LC_ERROR = -3      /* anything else; an `err` text says what */
};

/* Sizes of the fixed buffers. */
#define LC_IO_BUF        (64 * 1024)    /* one read from either side */
#define LC_MAX_LINE      (64 * 1024)    /* as mod_lemonade's default */
#define LC_MAX_LITERAL   ((apr_uint64_t)64 * 1024 * 1024)
#define LC_ERR_MAX       256

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/* An http:// or https:// URL, cut into what the connection needs. */
typedef struct {
    int  tls;                  /* https */
    char host[256];            /* without brackets for IPv6 */
    char port[8];
    char path[1024];           /* with the query, "/" when empty */
    char authority[300];       /* for Host and CONNECT: "host:port" */
    char userinfo[256];        /* a proxy's "user:password", or "" */
} lc_url_t;

typedef enum {
    LC_MODE_AUTO = 0,          /* in-band, falling back to in-response */
    LC_MODE_INBAND,            /* in-band only */
    LC_MODE_INRESPONSE         /* in-response only */
} lc_mode_t;

typedef struct lc_proto_t lc_proto_t;

/* The options, then what the start-up probe learnt; read-only once the
 * listener runs, shared by every session. */
typedef struct {
    /* the command line */
    char        listen_host[256];
    char        listen_port[8];
    lc_url_t    url;
    lc_url_t    proxy;
    int         have_proxy;
    const char *ca_file;            /* NULL: the system's store */
    int         insecure;           /* no certificate verification */
    int         verbose;
    lc_mode_t   mode;
    int         inband_wait;        /* s for the in-band greeting */
    int         connect_timeout;    /* s for TCP, CONNECT and TLS */
    int         timeout;            /* s of silence within an answer */
    int         idle_timeout;       /* s of silence from the client */
    int         heartbeat;          /* s asked for by an IDLE long poll */
    int         max_clients;

    /* set up by main() */
    SSL_CTX          *ssl_ctx;      /* NULL unless a TLS hop is needed */
    const lc_proto_t *proto;        /* what OPTIONS says the URL carries */
    int               server_inband;/* its Lemonade-Modes has in-band */
} lc_conf_t;

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

/* Bytes read from the client, waiting to be framed. */
typedef struct {
    char   data[LC_IO_BUF];
    size_t off;                 /* first byte not used yet */
    size_t len;
} lc_inbuf_t;

/* One client connection, served by one thread. */
typedef struct {
    const lc_conf_t *conf;
    unsigned         id;            /* counts from 1, for the log */
    int              cfd;           /* the client's socket */
    char             peer[64];      /* its address, for the log */
    const char      *mode;          /* "in-band", "in-response" */
    long long        up;            /* bytes from the client */
    long long        down;          /* bytes to the client */
    int              client_gone;   /* it closed, or cannot be written */
    const char      *end;           /* why the session ended, static */
    char             err[LC_ERR_MAX];/* details of a failure */
    lc_inbuf_t       in;
} lc_session_t;

/* ------------------------------------------------------------------ */
/* Protocols                                                           */
/* ------------------------------------------------------------------ */

/*
 * In-band mode only watches the server's stream: where its responses
 * end, and whether it said goodbye, so that a connection lost between
 * two responses gets a clean goodbye of ours and one lost inside a
 * response is only closed.
 */
typedef struct {
    union {
        lem_resp_parser_t imap;
        lem_smtp_reply_t  smtp;
    } p;
    int broken;                 /* the stream stopped parsing */
    int said_bye;               /* "* BYE", 221 or 421 went by */
} lc_track_t;

/* What one protocol brings (draft 2.1.4: only the URL tells them apart). */
struct lc_proto_t {
    const char *name;            /* as Lemonade-Protocol says it */
    const char *bye_fmt;         /* our goodbye, with one "%s" */

    void (*track_init)(lc_track_t *t);
    void (*track)(lc_track_t *t, const char *data, size_t len);
    int  (*at_boundary)(const lc_track_t *t);

    /* In-response mode: the whole session, greeting included. */
    void (*in_response)(lc_session_t *s);
};

extern const lc_proto_t lc_imap_proto;
extern const lc_proto_t lc_smtp_proto;

/* In-band mode (lemonade_connect_inband.c): serves the session and
 * returns LC_OK, or returns LC_TIMEOUT, having sent the client nothing,
 * when the path does not stream the answer: in-response mode it is. */
int lc_inband(lc_session_t *s);

/* ------------------------------------------------------------------ */
/* Utilities (lemonade_connect_util.c)                                 */
/* ------------------------------------------------------------------ */

/* A growing byte buffer. Allocation failure ends the program: a session
 * cannot go on without its batch, and memory is not the usual limit. */
typedef struct {
    char   *data;
    size_t  len;
    size_t  cap;
} lc_buf_t;

void lc_buf_add(lc_buf_t *b, const void *data, size_t len);
void lc_buf_addstr(lc_buf_t *b, const char *s);
void lc_buf_reset(lc_buf_t *b);
void lc_buf_free(lc_buf_t *b);

/* Milliseconds of a monotonic clock; what is left until `deadline`. */
long long lc_now_ms(void);
int lc_left_ms(long long deadline);

/* Log a line to stderr, prefixed with the time and the session (may be
 * NULL). lc_debug() writes only with -v. Never pass a payload. */
void lc_log(const lc_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void lc_debug(const lc_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The client's socket. lc_client_write() writes all of it within
 * --timeout or marks the client gone: LC_OK or LC_ERROR. lc_client_fill()
 * moves what is unused in s->in to its front and reads what comes within
 * `ms` (0: only what is there): LC_OK, LC_TIMEOUT, LC_EOF or LC_ERROR. */
int lc_client_write(lc_session_t *s, const char *data, size_t len);
int lc_client_say(lc_session_t *s, const char *text);
int lc_client_fill(lc_session_t *s, int ms);

/* Our goodbye to the client, in the protocol's words, with `why`. */
void lc_client_bye(lc_session_t *s, const char *why);

/* In-response mode: set s->end, unless set already, to why the session
 * ended: the HTTP side failed, the server said goodbye, the gateway
 * ended it, or the client closed. */
void lc_note_end(lc_session_t *s, int lost, int bye, int over,
                 int client_eof);

/* RFC 4648 base64. lc_b64_decode() returns the length decoded, or -1 if
 * `in` is not base64 or does not fit `cap`. */
size_t lc_b64_encode(const unsigned char *in, size_t n, char *out,
                     size_t cap);
int lc_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* The in-band retry policy, shared by all sessions: once a path has held
 * an in-band greeting back, sessions go straight to in-response mode
 * for a while. lc_fallback_note() returns non-zero for the session that
 * noticed first, which says so in the log. */
int lc_fallback_active(void);
int lc_fallback_note(void);

#endif /* LEMONADE_CONNECT_H */
