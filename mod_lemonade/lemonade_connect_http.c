/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lemonade_connect_http.h"

/* The longest answer head taken; mod_lemonade's are a few hundred bytes. */
#define LC_HEAD_MAX  (16 * 1024)

/* lc_body_t.kind */
enum { BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_EOF };

/* lc_body_t.state: RFC 9112 7.1 chunked-body, one step at a time */
enum {
    CH_SIZE = 0,       /* chunk-size: hex digits */
    CH_EXT,            /* chunk-ext, up to CR */
    CH_SIZE_LF,        /* the LF ending the size line */
    CH_DATA,           /* chunk-data */
    CH_DATA_CR,        /* the CRLF after the data */
    CH_DATA_LF,
    CH_TRAILER,        /* trailer-section: a line that is not empty */
    CH_TRAILER_BOL,    /* at the start of a trailer line */
    CH_TRAILER_LF,     /* CR of an empty line: the end comes */
    CH_DONE
};

/* ------------------------------------------------------------------ */
/* URLs                                                                */
/* ------------------------------------------------------------------ */

static int copy_part(char *to, size_t cap, const char *from, size_t n)
{
    if (n >= cap) {
        return LC_ERROR;
    }
    memcpy(to, from, n);
    to[n] = '\0';
    return LC_OK;
}

/* host [":" port], IPv6 in brackets (RFC 3986 3.2.2) */
static int parse_hostport(lc_url_t *u, const char *s, size_t n,
                          const char **why)
{
    const char *colon;
    size_t hlen;

    if (n && s[0] == '[') {
        const char *end = memchr(s, ']', n);

        if (!end || copy_part(u->host, sizeof(u->host), s + 1,
                              (size_t)(end - s - 1)) != LC_OK) {
            *why = "bad IPv6 address in the URL";
            return LC_ERROR;
        }
        colon = end + 1 < s + n && end[1] == ':' ? end + 1 : NULL;
    }
    else {
        colon = memchr(s, ':', n);
        hlen = colon ? (size_t)(colon - s) : n;
        if (copy_part(u->host, sizeof(u->host), s, hlen) != LC_OK) {
            *why = "host name too long";
            return LC_ERROR;
        }
    }
    if (colon) {
        size_t plen = n - (size_t)(colon + 1 - s);

        if (plen == 0 || plen > 5
            || strspn(colon + 1, "0123456789") < plen
            || copy_part(u->port, sizeof(u->port), colon + 1, plen)
               != LC_OK || atoi(u->port) < 1 || atoi(u->port) > 65535) {
            *why = "bad port in the URL";
            return LC_ERROR;
        }
    }
    if (!u->host[0]) {
        *why = "no host in the URL";
        return LC_ERROR;
    }
    return LC_OK;
}

int lc_url_parse(lc_url_t *u, const char *text, const char **why)
{
    const char *auth, *end, *at;

    memset(u, 0, sizeof(*u));
    if (!strncasecmp(text, "https://", 8)) {
        u->tls = 1;
        strcpy(u->port, "443");
        auth = text + 8;
    }
    else if (!strncasecmp(text, "http://", 7)) {
        strcpy(u->port, "80");
        auth = text + 7;
    }
    else {
        *why = "the URL must start with http:// or https://";
        return LC_ERROR;
    }
    end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(end - auth));
    if (at) {
        if (copy_part(u->userinfo, sizeof(u->userinfo), auth,
                      (size_t)(at - auth)) != LC_OK) {
            *why = "user name and password too long";
            return LC_ERROR;
        }
        auth = at + 1;
    }
    if (parse_hostport(u, auth, (size_t)(end - auth), why) != LC_OK) {
        return LC_ERROR;
    }
    snprintf(u->authority, sizeof(u->authority),
             strchr(u->host, ':') ? "[%s]:%s" : "%s:%s", u->host, u->port);
    if (copy_part(u->path, sizeof(u->path), *end == '/' ? end : "/",
                  *end == '/' ? strcspn(end, "#") : 1) != LC_OK) {
        *why = "path too long";
        return LC_ERROR;
    }
    return LC_OK;
}

/* ------------------------------------------------------------------ */
/* Cookies                                                             */
/* ------------------------------------------------------------------ */

/* RFC 6265 5.2: "name=value; attributes"; Max-Age=0 (or a negative one)
 * removes the cookie, which is how the gateway ends a session. */
static void jar_update(lc_jar_t *j, const char *v)
{
    const char *semi = strchr(v, ';'), *eq = strchr(v, '=');
    const char *attrs = semi ? semi : "";
    size_t nlen, vlen;
    int i, expire = 0;

    if (!eq || (semi && eq > semi)) {
        return;
    }
    nlen = (size_t)(eq - v);
    vlen = (size_t)((semi ? semi : v + strlen(v)) - eq - 1);
    while (nlen && v[nlen - 1] == ' ') {
        nlen--;
    }
    for (; *attrs; attrs++) {
        if (!strncasecmp(attrs, "max-age=", 8)
            && (attrs[8] == '0' || attrs[8] == '-')) {
            expire = 1;
        }
    }
    for (i = 0; i < j->n; i++) {
        if (strlen(j->c[i].name) == nlen && !strncmp(j->c[i].name, v, nlen)) {
            break;
        }
    }
    if (expire) {
        if (i < j->n) {
            j->c[i] = j->c[--j->n];
        }
        return;
    }
    if (i == j->n && (j->n == LC_JAR_MAX || nlen >= sizeof(j->c[i].name))) {
        return;
    }
    if (vlen >= sizeof(j->c[i].value)) {
        return;
    }
    j->replaced |= i < j->n && (strlen(j->c[i].value) != vlen
                                || strncmp(j->c[i].value, eq + 1, vlen));
    memcpy(j->c[i].name, v, nlen);
    j->c[i].name[nlen] = '\0';
    memcpy(j->c[i].value, eq + 1, vlen);
    j->c[i].value[vlen] = '\0';
    j->n += i == j->n;
    j->ever = 1;
}

static void jar_header(const lc_jar_t *j, lc_buf_t *out)
{
    int i;

    if (!j || !j->n) {
        return;
    }
    lc_buf_addstr(out, "Cookie: ");
    for (i = 0; i < j->n; i++) {
        lc_buf_addstr(out, i ? "; " : "");
        lc_buf_addstr(out, j->c[i].name);
        lc_buf_addstr(out, "=");
        lc_buf_addstr(out, j->c[i].value);
    }
    lc_buf_addstr(out, "\r\n");
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

int lc_http_request(lc_conn_t *c, const lc_conf_t *conf, const char *method,
                    long long length, const char *extra,
                    const lc_jar_t *jar)
{
    lc_buf_t head = { 0 };
    char line[128];
    int rc;

    lc_buf_addstr(&head, method);
    lc_buf_addstr(&head, " ");
    lc_buf_addstr(&head, conf->url.path);
    lc_buf_addstr(&head, " HTTP/1.1\r\nHost: ");
    lc_buf_addstr(&head, conf->url.authority);
    lc_buf_addstr(&head, "\r\nUser-Agent: lemonade-connect/" LC_VERSION
                         "\r\n");
    if (length >= 0) {
        snprintf(line, sizeof(line), "Content-Length: %lld\r\n", length);
        lc_buf_addstr(&head, line);
    }
    else if (length == -1) {
        lc_buf_addstr(&head, "Transfer-Encoding: chunked\r\n");
    }
    lc_buf_addstr(&head, extra ? extra : "");
    jar_header(jar, &head);
    lc_buf_addstr(&head, "\r\n");
    rc = lc_conn_write(c, head.data, head.len, conf->timeout * 1000, NULL,
                       NULL);
    lc_buf_free(&head);
    return rc;
}

int lc_http_chunk(lc_conn_t *c, const char *data, size_t len, int ms,
                  lc_pump_fn pump, void *ctx)
{
    char frame[LC_IO_BUF + 32];
    int n;

    /* RFC 9112 7.1: chunk = chunk-size CRLF chunk-data CRLF; one write,
     * so that a chunk is one TLS record and one TCP segment if it fits */
    if (len > LC_IO_BUF) {
        return LC_ERROR;
    }
    n = snprintf(frame, sizeof(frame), "%zx\r\n", len);
    memcpy(frame + n, data, len);
    memcpy(frame + n + len, "\r\n", 2);
    return lc_conn_write(c, frame, (size_t)n + len + 2, ms, pump, ctx);
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

/* Copy a header's value, trimmed, into `to`. */
static void header_value(char *to, size_t cap, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(to, v, n);
    to[n] = '\0';
}

static int has_token(const char *list, const char *token)
{
    size_t n = strlen(token);
    const char *p;

    for (p = list; *p; p++) {
        if (!strncasecmp(p, token, n)
            && (p == list || !isalnum((unsigned char)p[-1]))
            && !isalnum((unsigned char)p[n])) {
            return 1;
        }
    }
    return 0;
}

/* One header line of the head. */
static void head_field(lc_head_t *h, lc_jar_t *jar, const char *s,
                       size_t n)
{
    const char *colon = memchr(s, ':', n);
    char value[1024];
    size_t k;

    if (!colon) {
        return;
    }
    k = (size_t)(colon - s);
    header_value(value, sizeof(value), colon + 1, n - k - 1);
#define IS(name) (k == sizeof(name) - 1 && !strncasecmp(s, name, k))
    if (IS("Transfer-Encoding")) {
        h->chunked = has_token(value, "chunked");
    }
    else if (IS("Content-Length")) {
        h->length = strtoll(value, NULL, 10);
    }
    else if (IS("Connection")) {
        h->close |= has_token(value, "close");
    }
    else if (IS("Set-Cookie") && jar) {
        jar_update(jar, value);
    }
    else if (IS("Lemonade-Protocol")) {
        header_value(h->protocol, sizeof(h->protocol), value, strlen(value));
    }
    else if (IS("Content-Type")) {
        h->text_plain = !strncasecmp(value, "text/plain", 10);
    }
    else if (IS("Lemonade-Modes")) {
        header_value(h->modes, sizeof(h->modes), value, strlen(value));
    }
#undef IS
}

/* RFC 9112 4: status-line = HTTP-version SP status-code SP [reason] */
static int head_status(lc_head_t *h, const char *s, size_t n)
{
    if (n < 12 || strncmp(s, "HTTP/1.", 7) || s[8] != ' '
        || !isdigit((unsigned char)s[9]) || !isdigit((unsigned char)s[10])
        || !isdigit((unsigned char)s[11])) {
        return LC_ERROR;
    }
    h->status = atoi(s + 9);
    h->close = s[7] == '0';
    header_value(h->reason, sizeof(h->reason), s + 12, n - 12);
    return LC_OK;
}

/* The CRLF ending the line at s, or `end`. */
static const char *line_end(const char *s, const char *end)
{
    while (s + 1 < end && !(s[0] == '\r' && s[1] == '\n')) {
        s++;
    }
    return s + 1 < end ? s : end;
}

/* Parse the head in c->buf[off, off+n), CRLF CRLF included. */
static int head_parse(lc_conn_t *c, lc_head_t *h, lc_jar_t *jar, size_t n)
{
    const char *s = c->buf + c->off, *end = s + n - 2;
    const char *eol = line_end(s, end);

    memset(h, 0, sizeof(*h));
    h->length = -1;
    c->off += n;
    if (head_status(h, s, (size_t)(eol - s)) != LC_OK) {
        snprintf(c->err, sizeof(c->err), "the server's answer is not "
                 "HTTP/1.1");
        return LC_ERROR;
    }
    for (s = eol + 2; s < end; s = eol + 2) {
        eol = line_end(s, end);
        head_field(h, jar, s, (size_t)(eol - s));
    }
    return LC_OK;
}

/* Where the head in c->buf ends (after CRLF CRLF), or 0. */
static size_t head_end(lc_conn_t *c)
{
    const char *s = c->buf + c->off;
    size_t n = c->len - c->off, i;

    for (i = 3; i < n; i++) {
        if (s[i] == '\n' && s[i - 1] == '\r' && s[i - 2] == '\n'
            && s[i - 3] == '\r') {
            return i + 1;
        }
    }
    return 0;
}

static int head_once(lc_conn_t *c, lc_head_t *h, lc_jar_t *jar,
                     long long deadline)
{
    size_t n;
    int got = c->off < c->len;

    while (!(n = head_end(c))) {
        int rc;

        if (c->len - c->off >= LC_HEAD_MAX) {
            snprintf(c->err, sizeof(c->err), "the answer's head is too "
                     "long");
            return LC_ERROR;
        }
        rc = lc_conn_fill(c, lc_left_ms(deadline));
        if (rc == LC_EOF && got) {
            snprintf(c->err, sizeof(c->err), "the connection closed in "
                     "the middle of an answer");
            return LC_ERROR;
        }
        if (rc != LC_OK) {
            if (rc == LC_EOF || rc == LC_TIMEOUT) {
                snprintf(c->err, sizeof(c->err), rc == LC_EOF
                         ? "the connection closed without an answer"
                         : "no answer in time");
            }
            return rc;
        }
        got = 1;
    }
    return head_parse(c, h, jar, n);
}

int lc_http_head(lc_conn_t *c, lc_head_t *h, lc_jar_t *jar, int ms)
{
    long long deadline = lc_now_ms() + ms;
    int rc;

    do {
        rc = head_once(c, h, jar, deadline);
    } while (rc == LC_OK && h->status >= 100 && h->status < 200);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */
/* ------------------------------------------------------------------ */

void lc_body_init(lc_body_t *b, const lc_head_t *h, const char *method)
{
    memset(b, 0, sizeof(*b));
    /* RFC 9112 6.3: no body after HEAD, 1xx, 204 and 304 */
    if (!strcmp(method, "HEAD") || h->status == 204 || h->status == 304) {
        b->kind = BODY_LENGTH;
        b->left = 0;
    }
    else if (h->chunked) {
        b->kind = BODY_CHUNKED;
    }
    else if (h->length >= 0) {
        b->kind = BODY_LENGTH;
        b->left = (unsigned long long)h->length;
    }
    else {
        b->kind = BODY_UNTIL_EOF;
    }
}

static int hex_value(char ch)
{
    return isdigit((unsigned char)ch) ? ch - '0'
         : isxdigit((unsigned char)ch) ? tolower((unsigned char)ch) - 'a' + 10
         : -1;
}

/* One octet of chunk framing. LC_OK to go on, LC_ERROR if malformed. */
static int chunk_syntax(lc_body_t *b, char ch)
{
    int v;

    switch (b->state) {
    case CH_SIZE:
        if ((v = hex_value(ch)) >= 0 && b->digits < 15) {
            b->left = b->left * 16 + (unsigned)v;
            b->digits++;
            return LC_OK;
        }
        if (!b->digits || (ch != ';' && ch != '\r' && ch != ' '
                           && ch != '\t')) {
            return LC_ERROR;
        }
        b->state = ch == '\r' ? CH_SIZE_LF : CH_EXT;
        return LC_OK;
    case CH_EXT:
        b->state = ch == '\r' ? CH_SIZE_LF : CH_EXT;
        return LC_OK;
    case CH_SIZE_LF:
        if (ch != '\n') {
            return LC_ERROR;
        }
        b->state = b->left ? CH_DATA : CH_TRAILER_BOL;
        return LC_OK;
    case CH_DATA_CR:
        b->state = CH_DATA_LF;
        return ch == '\r' ? LC_OK : LC_ERROR;
    case CH_DATA_LF:
        b->state = CH_SIZE;
        b->digits = 0;
        b->left = 0;
        return ch == '\n' ? LC_OK : LC_ERROR;
    case CH_TRAILER_BOL:
        b->state = ch == '\r' ? CH_TRAILER_LF : CH_TRAILER;
        return LC_OK;
    case CH_TRAILER:
        b->state = ch == '\n' ? CH_TRAILER_BOL : CH_TRAILER;
        return LC_OK;
    case CH_TRAILER_LF:
        b->state = CH_DONE;
        return ch == '\n' ? LC_OK : LC_ERROR;
    default:
        return LC_ERROR;
    }
}

/* The next piece of chunk-data already in c->buf, or 0 bytes. */
static int chunked_step(lc_conn_t *c, lc_body_t *b, const char **data,
                        size_t *len)
{
    *len = 0;
    while (c->off < c->len && b->state != CH_DONE) {
        if (b->state == CH_DATA) {
            size_t n = c->len - c->off;

            if (n > b->left) {
                n = (size_t)b->left;
            }
            *data = c->buf + c->off;
            *len = n;
            c->off += n;
            b->left -= n;
            if (!b->left) {
                b->state = CH_DATA_CR;
            }
            return LC_OK;
        }
        if (chunk_syntax(b, c->buf[c->off++]) != LC_OK) {
            snprintf(c->err, sizeof(c->err), "the server's chunked answer "
                     "is malformed");
            return LC_ERROR;
        }
    }
    return LC_OK;
}

/* The next piece of a body with a length, or read until EOF. */
static int plain_step(lc_conn_t *c, lc_body_t *b, const char **data,
                      size_t *len)
{
    size_t n = c->len - c->off;

    if (b->kind == BODY_LENGTH && n > b->left) {
        n = (size_t)b->left;
    }
    *data = c->buf + c->off;
    *len = n;
    c->off += n;
    b->left -= b->kind == BODY_LENGTH ? n : 0;
    return LC_OK;
}

static int body_done(const lc_body_t *b)
{
    return b->kind == BODY_CHUNKED ? b->state == CH_DONE
         : b->kind == BODY_LENGTH ? b->left == 0 : 0;
}

int lc_body_next(lc_conn_t *c, lc_body_t *b, int ms, const char **data,
                 size_t *len)
{
    long long deadline = lc_now_ms() + ms;

    for (;;) {
        int rc;

        if (body_done(b)) {
            return LC_END;
        }
        if (c->off < c->len) {
            rc = b->kind == BODY_CHUNKED ? chunked_step(c, b, data, len)
                                         : plain_step(c, b, data, len);
            if (rc != LC_OK || *len) {
                return rc;
            }
            continue;
        }
        rc = lc_conn_fill(c, lc_left_ms(deadline));
        if (rc == LC_EOF && b->kind == BODY_UNTIL_EOF) {
            b->kind = BODY_LENGTH;      /* RFC 9112 6.3, item 8 */
            b->left = 0;
            return LC_END;
        }
        if (rc == LC_EOF) {
            snprintf(c->err, sizeof(c->err), "the connection closed in "
                     "the middle of an answer");
        }
        if (rc != LC_OK) {
            return rc;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Opening: TCP, the proxy's tunnel, TLS                               */
/* ------------------------------------------------------------------ */

/* RFC 9110 9.3.6: CONNECT host:port, and a 2xx before the tunnel. */
static int proxy_tunnel(lc_conn_t *c, const lc_conf_t *conf,
                        long long deadline)
{
    lc_buf_t req = { 0 };
    lc_head_t h;
    int rc;

    lc_buf_addstr(&req, "CONNECT ");
    lc_buf_addstr(&req, conf->url.authority);
    lc_buf_addstr(&req, " HTTP/1.1\r\nHost: ");
    lc_buf_addstr(&req, conf->url.authority);
    lc_buf_addstr(&req, "\r\nUser-Agent: lemonade-connect/" LC_VERSION "\r\n");
    if (conf->proxy.userinfo[0]) {
        /* RFC 7617: Basic, user-id ":" password in base64 */
        char b64[sizeof(conf->proxy.userinfo) * 2];

        lc_b64_encode((const unsigned char *)conf->proxy.userinfo,
                      strlen(conf->proxy.userinfo), b64, sizeof(b64));
        lc_buf_addstr(&req, "Proxy-Authorization: Basic ");
        lc_buf_addstr(&req, b64);
        lc_buf_addstr(&req, "\r\n");
    }
    lc_buf_addstr(&req, "\r\n");
    rc = lc_conn_write(c, req.data, req.len, lc_left_ms(deadline), NULL,
                       NULL);
    lc_buf_free(&req);
    if (rc == LC_OK) {
        rc = lc_http_head(c, &h, NULL, lc_left_ms(deadline));
    }
    if (rc != LC_OK) {
        snprintf(c->err, sizeof(c->err), "the proxy %.100s did not open a "
                 "tunnel", conf->proxy.authority);
        return LC_ERROR;
    }
    if (h.status < 200 || h.status > 299) {
        snprintf(c->err, sizeof(c->err), "the proxy %.80s refused "
                 "CONNECT %.80s: %d %.40s", conf->proxy.authority,
                 conf->url.authority, h.status, h.reason);
        return LC_ERROR;
    }
    return LC_OK;
}

int lc_http_open(lc_conn_t *c, const lc_conf_t *conf)
{
    long long deadline = lc_now_ms() + conf->connect_timeout * 1000LL;
    const lc_url_t *hop = conf->have_proxy ? &conf->proxy : &conf->url;

    lc_conn_init(c);

    /* 1. TCP to the proxy, or to the server */
    if (lc_conn_tcp(c, hop->host, hop->port, lc_left_ms(deadline))
        != LC_OK) {
        return LC_ERROR;
    }

    /* 2. through the proxy, a tunnel to the server */
    if (conf->have_proxy && proxy_tunnel(c, conf, deadline) != LC_OK) {
        lc_conn_close(c);
        return LC_ERROR;
    }

    /* 3. TLS to the server, end to end through any tunnel */
    if (conf->url.tls && lc_conn_tls(c, conf->ssl_ctx, conf->url.host,
                                     lc_left_ms(deadline)) != LC_OK) {
        lc_conn_close(c);
        return LC_ERROR;
    }
    return LC_OK;
}
