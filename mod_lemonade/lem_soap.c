/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The SOAP mapping (lem_soap.h), requests: conf.d/lemonade-soap.txt is
 * the rule book this file follows, sections 1 to 3 and 6:
 *
 *   versions and faults      media types, HTTP statuses
 *   requests                 Envelope, Header, Body, one call per method
 *   arguments                the elements of a call as a lem_arg_t tree
 *
 * The answers (sections 4 and 5) are lem_soap_answer.c.
 */

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_xml.h>

#include "lem_soap.h"

/* ------------------------------------------------------------------ */
/* Versions and faults                                                 */
/* ------------------------------------------------------------------ */

static int media_type_is(const char *ct, const char *type)
{
    apr_size_t n = strlen(type);

    if (!ct) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, type, n)) {
        return 0;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

lem_soap_version_t lem_soap_version_of(const char *content_type,
                                       const char *soap_action)
{
    if (media_type_is(content_type, "application/soap+xml")) {
        return LEM_SOAP_12;
    }
    if (media_type_is(content_type, "text/xml") && soap_action) {
        return LEM_SOAP_11;
    }
    return LEM_SOAP_NONE;
}

const char *lem_soap_media_type(lem_soap_version_t version)
{
    return version == LEM_SOAP_12 ? "application/soap+xml; charset=utf-8"
                                  : "text/xml; charset=utf-8";
}

int lem_soap_http_status(lem_soap_version_t version, lem_soap_fault_t fault)
{
    if (fault == LEM_FAULT_NONE) {
        return 200;
    }
    return (version == LEM_SOAP_12 && fault == LEM_FAULT_CLIENT) ? 400 : 500;
}

const char *lem_soap_envelope_ns(lem_soap_version_t version)
{
    return version == LEM_SOAP_12 ? LEM_SOAP12_ENV_NS : LEM_SOAP11_ENV_NS;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* The methods, sorted: the IMAP commands of RFC 3501 and of the
 * extensions an in-response session can carry. "_" stands for a space. */
static const char *const methods[] = {
    "APPEND", "AUTHENTICATE", "CAPABILITY", "CHECK", "CLOSE", "COPY",
    "CREATE", "DELETE", "ENABLE", "EXAMINE", "EXPUNGE", "FETCH", "ID",
    "IDLE", "LIST", "LOGIN", "LOGOUT", "LSUB", "MOVE", "NAMESPACE", "NOOP",
    "RENAME", "SEARCH", "SELECT", "STATUS", "STORE", "SUBSCRIBE",
    "UID_COPY", "UID_EXPUNGE", "UID_FETCH", "UID_MOVE", "UID_SEARCH",
    "UID_STORE", "UNSELECT", "UNSUBSCRIBE"
};

/* RFC 3501 2.3.2: the system flags, as elements in the commands below. */
static const char *const system_flags[] = {
    "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "RECENT", "SEEN"
};
static const char *const flag_methods[] = { "APPEND", "STORE", "UID_STORE" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int listed(const char *name, const char *const *list, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (!strcmp(name, list[i])) {
            return 1;
        }
    }
    return 0;
}

struct lem_soap_reader_t {
    apr_pool_t         *pool;
    lem_soap_version_t  version;
    apr_xml_parser     *xp;
    apr_size_t          markup;     /* "<" seen so far */
    lem_soap_fault_t    fault;
    const char         *why;
    lem_soap_request_t  req;

    /* while mapping */
    const apr_xml_doc  *doc;
    int                 ns_ours;    /* LEM_SOAP_NS in doc, or -1 */
    int                 ns_env;     /* the envelope's namespace, or -1 */
    int                 flags;      /* system flag names are flags */
};

static apr_status_t refuse(lem_soap_reader_t *rd, lem_soap_fault_t fault,
                           const char *why)
{
    if (rd->fault == LEM_FAULT_NONE) {
        rd->fault = fault;
        rd->why = why;
    }
    return APR_EINVAL;
}

lem_soap_reader_t *lem_soap_reader_create(apr_pool_t *pool,
                                          lem_soap_version_t version)
{
    lem_soap_reader_t *rd = apr_pcalloc(pool, sizeof(*rd));

    rd->pool = pool;
    rd->version = version;
    rd->xp = apr_xml_parser_create(pool);
    rd->req.version = version;
    return rd;
}

lem_soap_fault_t lem_soap_reader_fault(const lem_soap_reader_t *rd,
                                       const char **why)
{
    *why = rd->why;
    return rd->fault;
}

static apr_status_t xml_error(lem_soap_reader_t *rd)
{
    char text[256];

    apr_xml_parser_geterror(rd->xp, text, sizeof(text));
    /* apr_xml stops the parser at the first entity declaration */
    if (strstr(text, "aborted")) {
        return refuse(rd, LEM_FAULT_CLIENT, "malformed XML: entity "
                      "declarations are not accepted");
    }
    return refuse(rd, LEM_FAULT_CLIENT,
                  apr_pstrcat(rd->pool, "malformed XML: ", text, NULL));
}

apr_status_t lem_soap_reader_feed(lem_soap_reader_t *rd, const char *data,
                                  apr_size_t len)
{
    const char *p = data, *end = data + len;

    if (rd->fault != LEM_FAULT_NONE) {
        return APR_EINVAL;
    }
    while ((p = memchr(p, '<', (apr_size_t)(end - p))) != NULL) {
        p++;
        if (++rd->markup > LEM_SOAP_MAX_MARKUP) {
            return refuse(rd, LEM_FAULT_CLIENT, "the document has more "
                          "markup than allowed (10000 \"<\")");
        }
    }
    if (apr_xml_parser_feed(rd->xp, data, len) != APR_SUCCESS) {
        return xml_error(rd);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Requests: the envelope                                              */
/* ------------------------------------------------------------------ */

static int ns_index(const apr_xml_doc *doc, const char *uri)
{
    int i;

    for (i = 0; i < doc->namespaces->nelts; i++) {
        if (!strcmp(APR_XML_GET_URI_ITEM(doc->namespaces, i), uri)) {
            return i;
        }
    }
    return -1;
}

static int is_env(const lem_soap_reader_t *rd, const apr_xml_elem *e,
                  const char *name)
{
    return rd->ns_env >= 0 && e->ns == rd->ns_env && !strcmp(e->name, name);
}

static int is_ours(const lem_soap_reader_t *rd, const apr_xml_elem *e)
{
    return e->ns == APR_XML_NS_NONE || (rd->ns_ours >= 0
                                         && e->ns == rd->ns_ours);
}

/* The text of an apr_text list, joined, NUL-terminated. */
static const char *joined(apr_pool_t *p, const apr_text_header *h,
                          apr_size_t *len)
{
    const apr_text *t;
    apr_size_t n = 0;
    char *s;

    for (t = h->first; t; t = t->next) {
        n += strlen(t->text);
    }
    s = apr_palloc(p, n + 1);
    *len = 0;
    for (t = h->first; t; t = t->next) {
        apr_size_t k = strlen(t->text);

        memcpy(s + *len, t->text, k);
        *len += k;
    }
    s[n] = '\0';
    return s;
}

static int is_blank(const apr_text_header *h)
{
    const apr_text *t;

    for (t = h->first; t; t = t->next) {
        if (t->text[strspn(t->text, " \t\r\n")]) {
            return 0;
        }
    }
    return 1;
}

static int too_deep(const apr_xml_elem *e, int depth)
{
    const apr_xml_elem *c;

    if (depth > LEM_SOAP_MAX_DEPTH) {
        return 1;
    }
    for (c = e->first_child; c; c = c->next) {
        if (too_deep(c, depth + 1)) {
            return 1;
        }
    }
    return 0;
}

/* Only blank text between the children of `e`. */
static int children_only(const apr_xml_elem *e)
{
    const apr_xml_elem *c;

    if (!is_blank(&e->first_cdata)) {
        return 0;
    }
    for (c = e->first_child; c; c = c->next) {
        if (!is_blank(&c->following_cdata)) {
            return 0;
        }
    }
    return 1;
}

static int must_understand(const lem_soap_reader_t *rd,
                           const apr_xml_elem *block)
{
    const apr_xml_attr *a;

    for (a = block->attr; a; a = a->next) {
        if (a->ns == rd->ns_env && !strcmp(a->name, "mustUnderstand")
            && (!strcmp(a->value, "1") || !strcmp(a->value, "true"))) {
            return 1;
        }
    }
    return 0;
}

/* SOAP 1.1 4.2.3, SOAP 1.2 part 1 5.2.3: no header block is understood
 * here, so one that must be is a MustUnderstand fault. */
static apr_status_t check_header(lem_soap_reader_t *rd,
                                 const apr_xml_elem *header)
{
    const apr_xml_elem *b;

    for (b = header->first_child; b; b = b->next) {
        if (must_understand(rd, b)) {
            return refuse(rd, LEM_FAULT_MUST_UNDERSTAND, apr_pstrcat(
                          rd->pool, "header block ", b->name,
                          " is not understood", NULL));
        }
    }
    return APR_SUCCESS;
}

static apr_status_t map_call(lem_soap_reader_t *rd, const apr_xml_elem *e,
                             lem_soap_call_t *call);

static apr_status_t map_body(lem_soap_reader_t *rd, const apr_xml_elem *body)
{
    const apr_xml_elem *e;
    int n = 0;
    apr_status_t rv;

    if (!children_only(body)) {
        return refuse(rd, LEM_FAULT_CLIENT, "the Body holds text");
    }
    for (e = body->first_child; e; e = e->next) {
        n++;
    }
    if (n == 0) {
        return refuse(rd, LEM_FAULT_CLIENT, "the Body holds no method");
    }
    rd->req.calls = apr_pcalloc(rd->pool, sizeof(lem_soap_call_t) * n);
    for (e = body->first_child; e; e = e->next) {
        rv = map_call(rd, e, &rd->req.calls[rd->req.ncalls++]);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* SOAP 1.1 4, SOAP 1.2 part 1 5: Envelope, an optional Header, a Body. */
static apr_status_t map_envelope(lem_soap_reader_t *rd)
{
    const apr_xml_elem *root = rd->doc->root, *e;
    apr_status_t rv;

    rd->ns_env = ns_index(rd->doc, lem_soap_envelope_ns(rd->version));
    rd->ns_ours = ns_index(rd->doc, LEM_SOAP_NS);
    if (strcmp(root->name, "Envelope") || root->ns < 0) {
        return refuse(rd, LEM_FAULT_CLIENT, "the document is not a SOAP "
                      "Envelope");
    }
    if (root->ns != rd->ns_env) {
        return refuse(rd, LEM_FAULT_VERSION, rd->version == LEM_SOAP_12
                      ? "application/soap+xml carries SOAP 1.2 envelopes"
                      : "text/xml carries SOAP 1.1 envelopes");
    }
    e = root->first_child;
    if (!children_only(root)) {
        return refuse(rd, LEM_FAULT_CLIENT, "the Envelope holds text");
    }
    if (e && is_env(rd, e, "Header")) {
        if ((rv = check_header(rd, e)) != APR_SUCCESS) {
            return rv;
        }
        e = e->next;
    }
    if (!e || !is_env(rd, e, "Body") || e->next) {
        return refuse(rd, LEM_FAULT_CLIENT, "the Envelope must hold a "
                      "Body, after an optional Header, and nothing else");
    }
    return map_body(rd, e);
}

apr_status_t lem_soap_reader_done(lem_soap_reader_t *rd,
                                  const lem_soap_request_t **req)
{
    apr_xml_doc *doc = NULL;

    *req = NULL;
    if (rd->fault != LEM_FAULT_NONE) {
        return APR_EINVAL;
    }
    if (apr_xml_parser_done(rd->xp, &doc) != APR_SUCCESS || !doc
        || !doc->root) {
        return xml_error(rd);
    }
    if (too_deep(doc->root, 1)) {
        return refuse(rd, LEM_FAULT_CLIENT, "elements nest deeper than "
                      "allowed (32)");
    }
    rd->doc = doc;
    if (map_envelope(rd) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    *req = &rd->req;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Requests: the arguments of a call                                   */
/* ------------------------------------------------------------------ */

static apr_status_t map_content(lem_soap_reader_t *rd,
                                const apr_xml_elem *e, lem_arg_list_t *l,
                                int bare_ok);

/* The text of an element that may hold no element. */
static apr_status_t leaf_text(lem_soap_reader_t *rd, const apr_xml_elem *e,
                              const char **text, apr_size_t *len)
{
    if (e->first_child) {
        return refuse(rd, LEM_FAULT_CLIENT, apr_pstrcat(rd->pool, "<",
                      e->name, "> may hold text only", NULL));
    }
    *text = joined(rd->pool, &e->first_cdata, len);
    return APR_SUCCESS;
}

/* <T>: IMAP text has CRLF line ends and XML gives every line end as LF,
 * so an LF that follows no CR becomes CRLF. */
static lem_arg_t *text_literal(apr_pool_t *p, const char *s, apr_size_t len)
{
    apr_size_t i, extra = 0, n = 0;
    lem_arg_t *lit;
    char *d;

    for (i = 0; i < len; i++) {
        extra += (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'));
    }
    lit = lem_arg_new(p, LEM_ARG_LITERAL, NULL, 0);
    d = apr_palloc(p, len + extra + 1);
    for (i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) {
            d[n++] = '\r';
        }
        d[n++] = s[i];
    }
    d[n] = '\0';
    lit->data = d;
    lit->len = n;
    lit->literal8 = (memchr(d, '\0', n) != NULL);
    return lit;
}

/* <B>: xs:base64Binary, white space allowed, padding checked. */
static apr_status_t base64_literal(lem_soap_reader_t *rd, const char *s,
                                   apr_size_t len, lem_arg_t **lit)
{
    char *clean = apr_palloc(rd->pool, len + 1), *octets;
    apr_size_t i, n = 0, pad = 0;
    int got;

    for (i = 0; i < len; i++) {
        if (s[i] && strchr(" \t\r\n", s[i])) {
            continue;
        }
        if (!(apr_isalnum(s[i]) || s[i] == '+' || s[i] == '/'
              || s[i] == '=') || pad > (s[i] == '=' ? 1u : 0u)) {
            return refuse(rd, LEM_FAULT_CLIENT, "<B> is not base64");
        }
        pad += (s[i] == '=');
        clean[n++] = s[i];
    }
    clean[n] = '\0';
    if (n % 4) {
        return refuse(rd, LEM_FAULT_CLIENT, "<B> is not base64");
    }
    octets = apr_palloc(rd->pool, (apr_size_t)apr_base64_decode_len(clean));
    got = apr_base64_decode_binary((unsigned char *)octets, clean);
    *lit = lem_arg_new(rd->pool, LEM_ARG_LITERAL, octets, (apr_size_t)got);
    (*lit)->literal8 = (memchr(octets, '\0', (apr_size_t)got) != NULL);
    return APR_SUCCESS;
}

/* RFC 3501 9: sequence-set, and "$" (RFC 5182): its characters only. */
static int is_sequence(const char *s, apr_size_t len)
{
    return len && strspn(s, "0123456789:,*$") == len;
}

/* <SECTION>: the section text, read by the argument parser itself. */
static apr_status_t section(lem_soap_reader_t *rd, const char *s,
                            apr_size_t len, lem_arg_t **node)
{
    const lem_args_msg_t *msg;
    const char *error;

    *node = lem_arg_new(rd->pool, LEM_ARG_SECTION, NULL, 0);
    (*node)->glued = 1;
    if (s[strspn(s, " \t\r\n")] == '\0') {
        return APR_SUCCESS;
    }
    if (strcspn(s, "\r\n") != len) {
        return refuse(rd, LEM_FAULT_CLIENT, "<SECTION> holds a line end");
    }
    if (lem_args_parse(rd->pool, LEM_ARGS_PLAIN, apr_pstrcat(rd->pool, s,
                       "\r\n", NULL), len + 2, &msg, &error)
        != APR_SUCCESS) {
        return refuse(rd, LEM_FAULT_CLIENT, apr_pstrcat(rd->pool,
                      "<SECTION> is no section: ", error, NULL));
    }
    (*node)->kids = msg->args;
    return APR_SUCCESS;
}

/* RFC 3501 9: partial = number ["." nz-number], as <P> writes it. */
static int is_partial_text(const char *s, apr_size_t len)
{
    apr_size_t head = strspn(s, "0123456789");

    if (head == len) {
        return len > 0;
    }
    return head > 0 && s[head] == '.' && head + 1 < len
           && strspn(s + head + 1, "0123456789") == len - head - 1;
}

/* <P>: a value; right after a <SECTION>, the partial "offset.length". */
static apr_status_t value(lem_soap_reader_t *rd, const char *s,
                          apr_size_t len, lem_arg_list_t *l)
{
    lem_arg_t *node;

    if (!l->last || l->last->kind != LEM_ARG_SECTION) {
        lem_arg_list_add(l, lem_arg_value(rd->pool, s, len));
        return APR_SUCCESS;
    }
    if (!is_partial_text(s, len)) {
        return refuse(rd, LEM_FAULT_CLIENT, "a <P> after <SECTION> is a "
                      "partial: offset or offset.length");
    }
    node = lem_arg_new(rd->pool, LEM_ARG_PARTIAL, s, len);
    node->glued = 1;
    lem_arg_list_add(l, node);
    return APR_SUCCESS;
}

/* An element name that is an atom too: A-Z a-z 0-9 . - _ */
static int is_keyword(const char *name)
{
    apr_size_t i;

    for (i = 0; name[i]; i++) {
        if (!apr_isalnum(name[i]) && !strchr(".-_", name[i])) {
            return 0;
        }
    }
    return i > 0;
}

/* "SEEN" -> "\Seen" */
static const char *flag_atom(apr_pool_t *p, const char *name)
{
    char *flag = apr_pstrcat(p, "\\", name, NULL), *c;

    for (c = flag + 2; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    return flag;
}

/* Any other element: an atom, then what the element holds. */
static apr_status_t keyword(lem_soap_reader_t *rd, const apr_xml_elem *e,
                            lem_arg_list_t *l)
{
    const char *atom = e->name;

    if (!is_keyword(e->name)) {
        return refuse(rd, LEM_FAULT_CLIENT, apr_pstrcat(rd->pool, "<",
                      e->name, "> cannot be an IMAP atom", NULL));
    }
    if (rd->flags && !e->first_child && is_blank(&e->first_cdata)
        && listed(e->name, system_flags, COUNT(system_flags))) {
        atom = flag_atom(rd->pool, e->name);
    }
    lem_arg_list_add(l, lem_arg_new(rd->pool, LEM_ARG_ATOM, atom,
                                    strlen(atom)));
    return map_content(rd, e, l, 1);
}

static apr_status_t leaf_node(lem_soap_reader_t *rd, const char *name,
                              const char *s, apr_size_t len,
                              const lem_arg_list_t *l, lem_arg_t **node)
{
    if (!strcmp(name, "T")) {
        *node = text_literal(rd->pool, s, len);
        return APR_SUCCESS;
    }
    if (!strcmp(name, "B")) {
        return base64_literal(rd, s, len, node);
    }
    if (!strcmp(name, "NIL")) {
        *node = lem_arg_new(rd->pool, LEM_ARG_NIL, "NIL", 3);
        return s[strspn(s, " \t\r\n")] ? refuse(rd, LEM_FAULT_CLIENT,
               "<NIL/> must be empty") : APR_SUCCESS;
    }
    if (!strcmp(name, "SEQUENCE")) {
        *node = lem_arg_new(rd->pool, LEM_ARG_ATOM, s, len);
        return is_sequence(s, len) ? APR_SUCCESS : refuse(rd,
               LEM_FAULT_CLIENT, "<SEQUENCE> holds other than a sequence set");
    }
    if (!l->last) {
        return refuse(rd, LEM_FAULT_CLIENT, "<SECTION> must follow the atom "
                      "it belongs to");
    }
    return section(rd, s, len, node);
}

/* P, T, B, NIL, SEQUENCE, SECTION: elements that hold text only. */
static apr_status_t map_leaf(lem_soap_reader_t *rd, const apr_xml_elem *e,
                             lem_arg_list_t *l)
{
    const char *s;
    apr_size_t len;
    lem_arg_t *node = NULL;
    apr_status_t rv = leaf_text(rd, e, &s, &len);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!strcmp(e->name, "P")) {
        return value(rd, s, len, l);
    }
    rv = leaf_node(rd, e->name, s, len, l, &node);
    if (rv == APR_SUCCESS) {
        lem_arg_list_add(l, node);
    }
    return rv;
}

static apr_status_t map_child(lem_soap_reader_t *rd, const apr_xml_elem *e,
                              lem_arg_list_t *l)
{
    static const char *const leaves[] = {
        "B", "NIL", "P", "SECTION", "SEQUENCE", "T"
    };

    if (!is_ours(rd, e)) {
        return refuse(rd, LEM_FAULT_CLIENT, apr_pstrcat(rd->pool, "<",
                      e->name, "> is in a namespace of another binding",
                      NULL));
    }
    if (listed(e->name, leaves, COUNT(leaves))) {
        return map_leaf(rd, e, l);
    }
    if (!strcmp(e->name, "L")) {
        lem_arg_t *list = lem_arg_new(rd->pool, LEM_ARG_LIST, NULL, 0);
        lem_arg_list_t kids;
        apr_status_t rv;

        lem_arg_list_init(&kids);
        rv = map_content(rd, e, &kids, 0);
        list->kids = kids.first;
        lem_arg_list_add(l, list);
        return rv;
    }
    return keyword(rd, e, l);
}

/* What an element holds: elements in order, or (`bare_ok`) one value as
 * bare text; blank text is nothing. */
static apr_status_t map_content(lem_soap_reader_t *rd,
                                const apr_xml_elem *e, lem_arg_list_t *l,
                                int bare_ok)
{
    const apr_xml_elem *c;
    apr_status_t rv;

    if (!e->first_child) {
        apr_size_t len;
        const char *s;

        if (is_blank(&e->first_cdata)) {
            return APR_SUCCESS;
        }
        if (!bare_ok) {
            return refuse(rd, LEM_FAULT_CLIENT, "<L> holds elements only: "
                          "put a value in <P>");
        }
        s = joined(rd->pool, &e->first_cdata, &len);
        lem_arg_list_add(l, lem_arg_value(rd->pool, s, len));
        return APR_SUCCESS;
    }
    if (!children_only(e)) {
        return refuse(rd, LEM_FAULT_CLIENT, apr_pstrcat(rd->pool, "<",
                      e->name, "> mixes text and elements", NULL));
    }
    for (c = e->first_child; c; c = c->next) {
        if ((rv = map_child(rd, c, l)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t map_call(lem_soap_reader_t *rd, const apr_xml_elem *e,
                             lem_soap_call_t *call)
{
    lem_arg_list_t args;
    char *command, *c;
    apr_status_t rv;

    if (!is_ours(rd, e) || !listed(e->name, methods, COUNT(methods))) {
        return refuse(rd, LEM_FAULT_CLIENT, apr_pstrcat(rd->pool,
                      "unknown method ", e->name, NULL));
    }
    call->method = apr_pstrdup(rd->pool, e->name);
    command = apr_pstrdup(rd->pool, e->name);
    for (c = command; *c; c++) {
        *c = (*c == '_') ? ' ' : *c;
    }
    call->command = command;
    rd->flags = listed(e->name, flag_methods, COUNT(flag_methods));
    lem_arg_list_init(&args);
    rv = map_content(rd, e, &args, 1);
    call->args = args.first;
    return rv;
}

apr_status_t lem_soap_write_commands(const lem_soap_request_t *req,
                                     const lem_sink_t *out,
                                     const char **error)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < req->ncalls && rv == APR_SUCCESS; i++) {
        char tag[32];

        apr_snprintf(tag, sizeof(tag), LEM_SOAP_TAG_PREFIX "%d", i + 1);
        rv = lem_args_write_command(tag, req->calls[i].command,
                                    req->calls[i].args, out, error);
    }
    return rv;
}
