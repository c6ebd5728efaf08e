/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The SOAP mapping (lem_soap.h), answers: conf.d/lemonade-soap.txt is the
 * rule book this file follows, sections 4 and 5:
 *
 *   XML output               escaping, UTF-8, base64
 *   faults and envelopes     SOAP 1.1 and 1.2, fault codes
 *   answers                  each response as a lem_arg_t tree, as XML,
 *                            grouped by the command it answers
 *
 * The requests are lem_soap.c.
 */

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "lem_soap.h"

#define OUT_BUF        8192
#define WHY_MAX        200      /* bytes of a response in a faultstring */
#define B64_CHUNK      3072     /* octets per base64 piece: a multiple of 3 */

/* Bytes gathered in a pool, NUL-terminated; a lem_sink_t's context. */
typedef struct {
    apr_pool_t *pool;
    char       *data;
    apr_size_t  len;
    apr_size_t  cap;
} membuf_t;

static apr_status_t membuf_write(void *ctx, const char *data, apr_size_t len)
{
    membuf_t *b = ctx;

    if (b->len + len + 1 > b->cap) {
        apr_size_t cap = b->cap ? b->cap : 256;
        char *d;

        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        d = apr_palloc(b->pool, cap);
        if (b->len) {
            memcpy(d, b->data, b->len);
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* XML output                                                          */
/* ------------------------------------------------------------------ */

/* Buffered output to a sink; the first error sticks. */
typedef struct {
    const lem_sink_t *sink;
    char              buf[OUT_BUF];
    apr_size_t        len;
    apr_status_t      rv;
} xml_out_t;

static void out_flush(xml_out_t *o)
{
    if (o->rv == APR_SUCCESS && o->len) {
        o->rv = o->sink->write(o->sink->ctx, o->buf, o->len);
    }
    o->len = 0;
}

static void out_raw(xml_out_t *o, const char *s, apr_size_t n)
{
    while (n && o->rv == APR_SUCCESS) {
        apr_size_t k = OUT_BUF - o->len;

        if (k > n) {
            k = n;
        }
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
        if (o->len == OUT_BUF) {
            out_flush(o);
        }
    }
}

static void out_str(xml_out_t *o, const char *s)
{
    out_raw(o, s, strlen(s));
}

/* The length of the UTF-8 character at `s` when it is one XML 1.0 allows
 * (Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
 * [#x10000-#x10FFFF]), else 0. */
static apr_size_t xml_char(const unsigned char *s, apr_size_t n)
{
    apr_uint32_t c;
    apr_size_t k, i;

    if (s[0] < 0x80) {
        return (s[0] >= 0x20 || s[0] == 0x9 || s[0] == 0xA || s[0] == 0xD);
    }
    k = (s[0] >= 0xC2 && s[0] <= 0xDF) ? 2 : (s[0] >= 0xE0 && s[0] <= 0xEF)
        ? 3 : (s[0] >= 0xF0 && s[0] <= 0xF4) ? 4 : 0;
    if (!k || k > n) {
        return 0;
    }
    c = s[0] & (0x7F >> k);
    for (i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && c < 0x800) || (k == 4 && (c < 0x10000 || c > 0x10FFFF))
        || (c >= 0xD800 && c <= 0xDFFF) || c == 0xFFFE || c == 0xFFFF) {
        return 0;
    }
    return k;
}

/* Non-zero when XML can carry the octets as character data. */
static int xml_safe(const char *s, apr_size_t n)
{
    apr_size_t i = 0;

    while (i < n) {
        apr_size_t k = xml_char((const unsigned char *)s + i, n - i);

        if (!k) {
            return 0;
        }
        i += k;
    }
    return 1;
}

/* Character data, escaped; CR as "&#13;", which XML does not turn into
 * LF. What XML cannot carry becomes U+FFFD (for human text only: values
 * that must survive go through out_string, as <B> when need be). */
static void out_text(xml_out_t *o, const char *s, apr_size_t n)
{
    apr_size_t i = 0, from = 0;

    while (i < n) {
        apr_size_t k = xml_char((const unsigned char *)s + i, n - i);
        const char *esc = !k ? "\xEF\xBF\xBD" : s[i] == '&' ? "&amp;"
                          : s[i] == '<' ? "&lt;" : s[i] == '>' ? "&gt;"
                          : s[i] == '\r' ? "&#13;" : NULL;

        if (!esc) {
            i += k;
            continue;
        }
        out_raw(o, s + from, i - from);
        out_str(o, esc);
        i += k ? k : 1;
        from = i;
    }
    out_raw(o, s + from, n - from);
}

static void out_open(xml_out_t *o, const char *name)
{
    out_raw(o, "<", 1);
    out_str(o, name);
    out_raw(o, ">", 1);
}

static void out_close(xml_out_t *o, const char *name)
{
    out_raw(o, "</", 2);
    out_str(o, name);
    out_raw(o, ">", 1);
}

static void out_empty(xml_out_t *o, const char *name)
{
    out_raw(o, "<", 1);
    out_str(o, name);
    out_raw(o, "/>", 2);
}

static void out_elem(xml_out_t *o, const char *name, const char *s,
                     apr_size_t n)
{
    if (!n) {
        out_empty(o, name);
        return;
    }
    out_open(o, name);
    out_text(o, s, n);
    out_close(o, name);
}

static void out_base64(xml_out_t *o, const char *s, apr_size_t n)
{
    char piece[B64_CHUNK / 3 * 4 + 1];

    out_open(o, "B");
    while (n) {
        apr_size_t k = n < B64_CHUNK ? n : B64_CHUNK;

        apr_base64_encode_binary(piece, (const unsigned char *)s, (int)k);
        out_raw(o, piece, strlen(piece));
        s += k;
        n -= k;
    }
    out_close(o, "B");
}

/* A string as `name` (P or T), or as B when XML cannot carry it. */
static void out_string(xml_out_t *o, const char *name, const char *s,
                       apr_size_t n)
{
    if (xml_safe(s, n)) {
        out_elem(o, name, s, n);
    }
    else {
        out_base64(o, s, n);
    }
}

/* ------------------------------------------------------------------ */
/* Faults and envelopes                                                */
/* ------------------------------------------------------------------ */

static void begin_envelope(xml_out_t *o, lem_soap_version_t version)
{
    out_str(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<soap:Envelope xmlns:soap=\"");
    out_str(o, lem_soap_envelope_ns(version));
    out_str(o, "\"><soap:Body>");
}

static void end_envelope(xml_out_t *o)
{
    out_str(o, "</soap:Body></soap:Envelope>\n");
}

/* SOAP 1.1 4.4.1 fault codes; SOAP 1.2 part 1 5.4.6 and a subcode. */
static const char *fault_code(lem_soap_version_t version,
                              lem_soap_fault_t fault)
{
    int v12 = (version == LEM_SOAP_12);

    switch (fault) {
    case LEM_FAULT_VERSION:
        return "soap:VersionMismatch";
    case LEM_FAULT_MUST_UNDERSTAND:
        return "soap:MustUnderstand";
    case LEM_FAULT_CLIENT:
        return v12 ? "soap:Sender" : "soap:Client";
    case LEM_FAULT_NO:
        return v12 ? "soap:Receiver" : "soap:Server.NO";
    case LEM_FAULT_BAD:
        return v12 ? "soap:Receiver" : "soap:Server.BAD";
    default:
        return v12 ? "soap:Receiver" : "soap:Server";
    }
}

static void begin_fault(xml_out_t *o, lem_soap_version_t version,
                        lem_soap_fault_t fault, const char *why)
{
    if (version != LEM_SOAP_12) {
        out_str(o, "<soap:Fault><faultcode>");
        out_str(o, fault_code(version, fault));
        out_str(o, "</faultcode><faultstring>");
        out_text(o, why, strlen(why));
        out_str(o, "</faultstring>");
        return;
    }
    out_str(o, "<soap:Fault><soap:Code><soap:Value>");
    out_str(o, fault_code(version, fault));
    out_str(o, "</soap:Value>");
    if (fault == LEM_FAULT_NO || fault == LEM_FAULT_BAD) {
        out_str(o, "<soap:Subcode><soap:Value xmlns:lem=\"" LEM_SOAP_NS
                   "\">");
        out_str(o, fault == LEM_FAULT_NO ? "lem:NO" : "lem:BAD");
        out_str(o, "</soap:Value></soap:Subcode>");
    }
    out_str(o, "</soap:Code><soap:Reason><soap:Text xml:lang=\"en\">");
    out_text(o, why, strlen(why));
    out_str(o, "</soap:Text></soap:Reason>");
}

apr_status_t lem_soap_write_fault(apr_pool_t *pool,
                                  lem_soap_version_t version,
                                  lem_soap_fault_t fault, const char *why,
                                  const lem_sink_t *out)
{
    xml_out_t *o = apr_pcalloc(pool, sizeof(*o));

    o->sink = out;
    begin_envelope(o, version);
    begin_fault(o, version, fault, why);
    out_str(o, "</soap:Fault>");
    end_envelope(o);
    out_flush(o);
    return o->rv;
}

/* ------------------------------------------------------------------ */
/* Answers: one response as XML                                        */
/* ------------------------------------------------------------------ */

/* An atom that makes an element name: [A-Za-z_][A-Za-z0-9._-]* */
static int is_name(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (!n || !(apr_isalpha(s[0]) || s[0] == '_')) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if (!apr_isalnum(s[i]) && !strchr("._-", s[i])) {
            return 0;
        }
    }
    return 1;
}

static int is_name_atom(const lem_arg_t *a)
{
    return a && a->kind == LEM_ARG_ATOM && is_name(a->data, a->len);
}

static int is_flag(const lem_arg_t *a)
{
    return a->kind == LEM_ARG_ATOM && a->len > 1 && a->data[0] == '\\'
           && is_name(a->data + 1, a->len - 1);
}

/* Rule 1: a value that may be carried as bare text. */
static int is_plain(const lem_arg_t *a)
{
    return a && a->len && (a->kind == LEM_ARG_NUMBER
           || a->kind == LEM_ARG_QUOTED
           || (a->kind == LEM_ARG_ATOM && !is_flag(a)))
           && !apr_isspace(a->data[0]) && !apr_isspace(a->data[a->len - 1])
           && xml_safe(a->data, a->len);
}

static const char *upper(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *u = apr_pstrmemdup(p, s, n), *c;

    for (c = u; *c; c++) {
        *c = (char)apr_toupper(*c);
    }
    return u;
}

typedef struct {
    xml_out_t  *o;
    apr_pool_t *p;      /* cleared after each response */
} wr_t;

static void write_values(wr_t *w, const lem_arg_t *a);

/* A section's IMAP text, as <SECTION>. */
static void write_section(wr_t *w, const lem_arg_t *a)
{
    membuf_t text = { w->p, NULL, 0, 0 };
    lem_sink_t sink = { membuf_write, &text };
    const char *error;

    if (!a->kids || lem_args_write(a->kids, &sink, &error) != APR_SUCCESS) {
        out_empty(w->o, "SECTION");
        return;
    }
    out_elem(w->o, "SECTION", text.data, text.len);
}

/* Rule 2: each argument as an element. */
static void write_value(wr_t *w, const lem_arg_t *a)
{
    switch (a->kind) {
    case LEM_ARG_ATOM:
        if (is_flag(a)) {
            out_empty(w->o, upper(w->p, a->data + 1, a->len - 1));
            return;
        }
        /* fall through */
    case LEM_ARG_NUMBER:
    case LEM_ARG_QUOTED:
    case LEM_ARG_PARTIAL:
        out_string(w->o, "P", a->data, a->len);
        return;
    case LEM_ARG_LITERAL:
        out_string(w->o, "T", a->data, a->len);
        return;
    case LEM_ARG_NIL:
        out_empty(w->o, "NIL");
        return;
    case LEM_ARG_LIST:
        out_open(w->o, "L");
        write_values(w, a->kids);
        out_close(w->o, "L");
        return;
    case LEM_ARG_SECTION:
        write_section(w, a);
        return;
    case LEM_ARG_TEXT:
        out_elem(w->o, "P", a->data, a->len);
        return;
    }
}

static void write_values(wr_t *w, const lem_arg_t *a)
{
    for (; a; a = a->next) {
        write_value(w, a);
    }
}

/* <NAME> holding `content`: empty, bare text, or elements. */
static void write_keyword(wr_t *w, const char *name, const lem_arg_t *content)
{
    if (!content) {
        out_empty(w->o, name);
    }
    else if (!content->next && is_plain(content)) {
        out_elem(w->o, name, content->data, content->len);
    }
    else {
        out_open(w->o, name);
        write_values(w, content);
        out_close(w->o, name);
    }
}

/* One attribute of a FETCH or STATUS list: name, [section, [partial,]]
 * value. Returns the node after it. */
static const lem_arg_t *write_pair(wr_t *w, const lem_arg_t *a)
{
    const char *name = upper(w->p, a->data, a->len);
    const lem_arg_t *sect = NULL, *part = NULL, *val;

    a = a->next;
    if (a && a->glued && a->kind == LEM_ARG_SECTION) {
        sect = a;
        a = a->next;
    }
    if (sect && a && a->glued && a->kind == LEM_ARG_PARTIAL) {
        part = a;
        a = a->next;
    }
    val = a;
    if (!sect && is_plain(val)) {
        out_elem(w->o, name, val->data, val->len);
    }
    else if (!sect && !val) {
        out_empty(w->o, name);
    }
    else {
        out_open(w->o, name);
        if (sect) {
            write_section(w, sect);
        }
        if (part) {
            write_value(w, part);
        }
        if (val) {
            write_value(w, val);
        }
        out_close(w->o, name);
    }
    return val ? val->next : NULL;
}


static int pairs_ok(const lem_arg_t *a)
{
    while (a) {
        if (!is_name_atom(a)) {
            return 0;
        }
        a = a->next;
        if (a && a->glued && a->kind == LEM_ARG_SECTION) {
            a = a->next;
            if (a && a->glued && a->kind == LEM_ARG_PARTIAL) {
                a = a->next;
            }
        }
        a = a ? a->next : NULL;
    }
    return 1;
}

static void write_pairs(wr_t *w, const lem_arg_t *a)
{
    while (a) {
        a = write_pair(w, a);
    }
}

/* The code of a status response, "[UIDVALIDITY 3857529045]". */
static void write_code(wr_t *w, const lem_arg_t *code)
{
    const lem_arg_t *head = code->kids;

    out_open(w->o, "CODE");
    if (is_name_atom(head)) {
        write_keyword(w, upper(w->p, head->data, head->len), head->next);
    }
    else {
        write_values(w, head);
    }
    out_close(w->o, "CODE");
}

/* RFC 3501 7.1: OK, NO, BAD, PREAUTH, BYE, each [CODE] and [TEXT]. */
static void write_status(wr_t *w, const lem_args_msg_t *msg)
{
    const char *name = lem_status_name(msg->status);
    const lem_arg_t *a;

    out_open(w->o, name);
    for (a = msg->args->next; a; a = a->next) {
        if (a->kind == LEM_ARG_SECTION) {
            write_code(w, a);
        }
        else if (a->kind == LEM_ARG_TEXT) {
            out_open(w->o, "TEXT");
            out_text(w->o, a->data, a->len);
            out_close(w->o, "TEXT");
        }
    }
    out_close(w->o, name);
}

/* "* 12 FETCH (...)" and "* STATUS box (...)": their attribute lists. */
static int is_fetch(const lem_arg_t *num)
{
    const lem_arg_t *name = num->next;

    return num->kind == LEM_ARG_NUMBER && name && name->len == 5
           && !strncasecmp(name->data, "FETCH", 5) && name->next
           && name->next->kind == LEM_ARG_LIST && !name->next->next;
}

static int is_status(const lem_arg_t *name)
{
    const lem_arg_t *box = name->next;

    return name->len == 6 && !strncasecmp(name->data, "STATUS", 6) && box
           && box->next && box->next->kind == LEM_ARG_LIST
           && !box->next->next;
}

/* Can the data of an untagged response be written as elements? */
static int structurable(const lem_args_msg_t *msg)
{
    const lem_arg_t *a = msg->args;

    if (msg->status != LEM_STATUS_NONE) {
        return 1;
    }
    if (!a) {
        return 0;
    }
    if (a->kind == LEM_ARG_NUMBER) {
        return is_name_atom(a->next)
               && (!is_fetch(a) || pairs_ok(a->next->next->kids));
    }
    return is_name_atom(a) && (!is_status(a)
                               || pairs_ok(a->next->next->kids));
}

/* "* 1234 EXISTS" is <EXISTS>1234</EXISTS>, "* 1 FETCH (UID 7)" is
 * <FETCH><P>1</P><UID>7</UID></FETCH>. */
static void write_numbered(wr_t *w, const lem_arg_t *num)
{
    const lem_arg_t *a = num->next;
    const char *name = upper(w->p, a->data, a->len);

    if (!a->next) {
        out_elem(w->o, name, num->data, num->len);
        return;
    }
    out_open(w->o, name);
    write_value(w, num);
    if (is_fetch(num)) {
        write_pairs(w, a->next->kids);
    }
    else {
        write_values(w, a->next);
    }
    out_close(w->o, name);
}

/* "* FLAGS (\Seen)" is <FLAGS><L><SEEN/></L></FLAGS>, "* STATUS box
 * (MESSAGES 2)" is <STATUS><P>box</P><MESSAGES>2</MESSAGES></STATUS>. */
static void write_data(wr_t *w, const lem_args_msg_t *msg)
{
    const lem_arg_t *a = msg->args;
    const char *name;

    if (msg->status != LEM_STATUS_NONE) {
        write_status(w, msg);
        return;
    }
    if (a->kind == LEM_ARG_NUMBER) {
        write_numbered(w, a);
        return;
    }
    name = upper(w->p, a->data, a->len);
    if (!is_status(a)) {
        write_keyword(w, name, a->next);
        return;
    }
    out_open(w->o, name);
    write_value(w, a->next);
    write_pairs(w, a->next->next->kids);
    out_close(w->o, name);
}

/* ------------------------------------------------------------------ */
/* Answers: responses in order, grouped by command                     */
/* ------------------------------------------------------------------ */

struct lem_soap_answer_t {
    apr_pool_t               *pool;
    apr_pool_t               *scratch;   /* one response's */
    const lem_soap_request_t *req;
    lem_resp_parser_t         framing;
    membuf_t                  resp;      /* the response being gathered */
    int                       answered;  /* tagged responses seen */

    lem_soap_fault_t          outcome;   /* pass 1 */
    const char               *why;

    int                       writing;   /* pass 2 */
    lem_soap_fault_t          fault;
    int                       opened;    /* calls whose element opened */
    int                       open;      /* one is open now */
    xml_out_t                 o;
};

static void reset_response(lem_soap_answer_t *a)
{
    apr_pool_clear(a->scratch);
    a->resp.pool = a->scratch;
    a->resp.data = NULL;
    a->resp.len = a->resp.cap = 0;
}

lem_soap_answer_t *lem_soap_answer_create(apr_pool_t *pool,
                                          const lem_soap_request_t *req)
{
    lem_soap_answer_t *a = apr_pcalloc(pool, sizeof(*a));

    a->pool = pool;
    a->req = req;
    apr_pool_create(&a->scratch, pool);
    lem_resp_init(&a->framing);
    reset_response(a);
    return a;
}

/* The call a tag names, or -1. */
static int call_of(const lem_soap_answer_t *a, const char *tag)
{
    apr_size_t n = sizeof(LEM_SOAP_TAG_PREFIX) - 1;
    int i;

    if (strncmp(tag, LEM_SOAP_TAG_PREFIX, n) || !tag[n]
        || strspn(tag + n, "0123456789") != strlen(tag + n)
        || strlen(tag + n) > 6) {
        return -1;
    }
    i = (int)apr_atoi64(tag + n) - 1;
    return (i >= 0 && i < a->req->ncalls) ? i : -1;
}

/* The call an untagged response belongs to: the first not answered. */
static int current_call(const lem_soap_answer_t *a)
{
    return a->answered < a->req->ncalls ? a->answered : a->req->ncalls - 1;
}

static void close_call(lem_soap_answer_t *a)
{
    if (a->open) {
        out_raw(&a->o, "</", 2);
        out_str(&a->o, a->req->calls[a->opened - 1].method);
        out_str(&a->o, "Response>");
        a->open = 0;
    }
}

/* Open the answer element of call `k`, and of any before it. */
static void open_call(lem_soap_answer_t *a, int k)
{
    while (a->opened <= k) {
        close_call(a);
        out_raw(&a->o, "<", 1);
        out_str(&a->o, a->req->calls[a->opened].method);
        out_str(&a->o, "Response xmlns=\"" LEM_SOAP_NS "\">");
        a->opened++;
        a->open = 1;
    }
}

/* The response as it came, for one that has no tree or no mapping. */
static void write_raw(lem_soap_answer_t *a)
{
    apr_size_t n = a->resp.len;

    if (n >= 2 && a->resp.data[n - 1] == '\n') {
        n -= 2;
    }
    out_string(&a->o, "T", a->resp.data, n);
}

static void write_response(lem_soap_answer_t *a, lem_resp_kind_t kind)
{
    static const char *const wrapper[] = { "U", "C", "RESP" };
    const lem_args_msg_t *msg = NULL;
    const char *error;
    wr_t w = { &a->o, a->scratch };
    int tree;

    tree = lem_args_parse(a->scratch, LEM_ARGS_RESPONSE, a->resp.data,
                          a->resp.len, &msg, &error) == APR_SUCCESS;
    out_open(&a->o, wrapper[kind]);
    if (!tree || (kind == LEM_RESP_TAGGED && msg->status != LEM_STATUS_OK
                  && msg->status != LEM_STATUS_NO
                  && msg->status != LEM_STATUS_BAD)
        || (kind == LEM_RESP_UNTAGGED && !structurable(msg))) {
        write_raw(a);
    }
    else if (kind == LEM_RESP_CONTINUATION) {
        if (msg->args) {
            out_text(&a->o, msg->args->data, msg->args->len);
        }
    }
    else {
        write_data(&w, msg);
    }
    out_close(&a->o, wrapper[kind]);
}

/* Pass 1: note the first command the server refused. */
static void note_outcome(lem_soap_answer_t *a, int k)
{
    const lem_resp_parser_t *f = &a->framing;
    apr_size_t n = strcspn(a->resp.data, "\r\n");
    apr_size_t skip = strlen(f->tag) + 1;

    if (a->outcome != LEM_FAULT_NONE || (f->status != LEM_STATUS_NO
                                         && f->status != LEM_STATUS_BAD)) {
        return;
    }
    a->outcome = (f->status == LEM_STATUS_NO) ? LEM_FAULT_NO
                                              : LEM_FAULT_BAD;
    n = (n > skip) ? n - skip : 0;
    a->why = apr_psprintf(a->pool, "%s: %.*s", k >= 0
                          ? a->req->calls[k].method : "IMAP",
                          (int)(n > WHY_MAX ? WHY_MAX : n),
                          a->resp.data + skip);
}

static void on_response(lem_soap_answer_t *a)
{
    lem_resp_kind_t kind = a->framing.kind;
    int k = current_call(a);

    if (kind == LEM_RESP_TAGGED) {
        int tagged = call_of(a, a->framing.tag);

        k = tagged >= 0 ? tagged : k;
        a->answered++;
    }
    if (a->writing) {
        open_call(a, k);
        write_response(a, kind);
    }
    else if (kind == LEM_RESP_TAGGED) {
        note_outcome(a, k);
    }
    reset_response(a);
}

static apr_status_t frame(lem_soap_answer_t *a, const char *data,
                          apr_size_t len)
{
    lem_imap_piece_t piece;
    apr_size_t used;

    while (len) {
        lem_imap_ev_t ev = lem_resp_next(&a->framing, data, len, &used,
                                         &piece);

        data += used;
        len -= used;
        if (ev == LEM_IMAP_ERROR) {
            return APR_EINVAL;
        }
        if (ev == LEM_IMAP_NEED_MORE) {
            break;
        }
        membuf_write(&a->resp, piece.data, piece.len);
        if (piece.last) {
            on_response(a);
        }
    }
    return a->o.rv;
}

apr_status_t lem_soap_answer_scan(lem_soap_answer_t *a, const char *data,
                                  apr_size_t len)
{
    return frame(a, data, len);
}

lem_soap_fault_t lem_soap_answer_outcome(const lem_soap_answer_t *a,
                                         const char **why)
{
    *why = a->why;
    return a->outcome;
}

apr_status_t lem_soap_answer_begin(lem_soap_answer_t *a,
                                   lem_soap_fault_t fault, const char *why,
                                   const lem_sink_t *out)
{
    lem_resp_init(&a->framing);
    reset_response(a);
    a->answered = a->opened = a->open = 0;
    a->writing = 1;
    a->fault = fault;
    a->o.sink = out;
    a->o.len = 0;
    a->o.rv = APR_SUCCESS;
    begin_envelope(&a->o, a->req->version);
    if (fault != LEM_FAULT_NONE) {
        begin_fault(&a->o, a->req->version, fault, why ? why : "");
        out_str(&a->o, a->req->version == LEM_SOAP_12 ? "<soap:Detail>"
                                                      : "<detail>");
    }
    return a->o.rv;
}

apr_status_t lem_soap_answer_feed(lem_soap_answer_t *a, const char *data,
                                  apr_size_t len)
{
    apr_status_t rv = frame(a, data, len);

    /* the relay checked the framing: a failure here is the sink's */
    return rv == APR_EINVAL ? APR_SUCCESS : rv;
}

apr_status_t lem_soap_answer_end(lem_soap_answer_t *a)
{
    open_call(a, a->req->ncalls - 1);
    close_call(a);
    if (a->fault != LEM_FAULT_NONE) {
        out_str(&a->o, a->req->version == LEM_SOAP_12 ? "</soap:Detail>"
                                                      : "</detail>");
        out_str(&a->o, "</soap:Fault>");
    }
    end_envelope(&a->o);
    out_flush(&a->o);
    return a->o.rv;
}
