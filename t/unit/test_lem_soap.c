/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The SOAP mapping, both ways: requests (XML in, IMAP commands out) and
 * answers (IMAP responses in, XML out), each row citing the draft section
 * or RFC it comes from; conf.d/lemonade-soap.txt is the rule book. The
 * draft's own examples (2.2: the FETCH encoding, the LOGIN/SELECT
 * session) come first in each table.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "lem_soap.h"

#define N_ROWS(t) ((int)(sizeof(t) / sizeof((t)[0])))
#define OUT_MAX   (64 * 1024)

#define ENV11 "<soap:Envelope xmlns:soap=\"" LEM_SOAP11_ENV_NS "\">"
#define ENV12 "<soap:Envelope xmlns:soap=\"" LEM_SOAP12_ENV_NS "\">"
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define NS " xmlns=\"" LEM_SOAP_NS "\""

static apr_pool_t *pool;

static void setup(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
    apr_terminate();
}

typedef struct {
    char   data[OUT_MAX];
    size_t len;
} text_t;

static apr_status_t to_text(void *ctx, const char *data, apr_size_t len)
{
    text_t *t = ctx;

    ck_assert_uint_le(t->len + len, sizeof(t->data) - 1);
    memcpy(t->data + t->len, data, len);
    t->len += len;
    t->data[t->len] = '\0';
    return APR_SUCCESS;
}

/* A SOAP 1.1 or 1.2 document whose Body holds `body`. */
static const char *envelope(lem_soap_version_t v, const char *body)
{
    return apr_pstrcat(pool, v == LEM_SOAP_12 ? ENV12 : ENV11,
                       "<soap:Body>", body, "</soap:Body></soap:Envelope>",
                       NULL);
}

/* Read a document in pieces of `step` bytes (0: whole). */
static lem_soap_reader_t *read_doc(lem_soap_version_t v, const char *doc,
                                   size_t step,
                                   const lem_soap_request_t **req)
{
    lem_soap_reader_t *rd = lem_soap_reader_create(pool, v);
    size_t len = strlen(doc), off = 0;

    *req = NULL;
    while (off < len) {
        size_t n = (step && step < len - off) ? step : len - off;

        if (lem_soap_reader_feed(rd, doc + off, n) != APR_SUCCESS) {
            return rd;
        }
        off += n;
    }
    lem_soap_reader_done(rd, req);
    return rd;
}

static const char *commands_of(const lem_soap_request_t *req)
{
    text_t *out = apr_pcalloc(pool, sizeof(*out));
    lem_sink_t sink = { to_text, out };
    const char *error = NULL;

    ck_assert_int_eq(lem_soap_write_commands(req, &sink, &error),
                     APR_SUCCESS);
    return out->data;
}

/* ------------------------------------------------------------------ */
/* Versions                                                            */
/* ------------------------------------------------------------------ */

static const struct {
    const char        *content_type;
    const char        *soap_action;
    lem_soap_version_t version;
} version_rows[] = {
    { "text/xml", "\"urn:mod-lemonade:soap#LOGIN\"", LEM_SOAP_11 },
    { "text/xml; charset=utf-8", "", LEM_SOAP_11 },
    { "TEXT/XML ;charset=utf-8", "x", LEM_SOAP_11 },
    { "text/xml", NULL, LEM_SOAP_NONE },
    { "application/soap+xml", NULL, LEM_SOAP_12 },
    { "application/soap+xml; charset=utf-8; action=\"x\"", NULL,
      LEM_SOAP_12 },
    { "application/vnd.lemonade", "x", LEM_SOAP_NONE },
    { "text/xmlx", "x", LEM_SOAP_NONE },
    { NULL, "x", LEM_SOAP_NONE },
};

START_TEST(the_media_type_chooses_the_soap_version)
{
    ck_assert_int_eq(lem_soap_version_of(version_rows[_i].content_type,
                                         version_rows[_i].soap_action),
                     version_rows[_i].version);
}
END_TEST

START_TEST(faults_get_the_http_status_each_soap_version_wants)
{
    ck_assert_int_eq(lem_soap_http_status(LEM_SOAP_11, LEM_FAULT_NONE), 200);
    ck_assert_int_eq(lem_soap_http_status(LEM_SOAP_11, LEM_FAULT_CLIENT),
                     500);
    ck_assert_int_eq(lem_soap_http_status(LEM_SOAP_11, LEM_FAULT_NO), 500);
    ck_assert_int_eq(lem_soap_http_status(LEM_SOAP_12, LEM_FAULT_CLIENT),
                     400);
    ck_assert_int_eq(lem_soap_http_status(LEM_SOAP_12, LEM_FAULT_BAD), 500);
    ck_assert_int_eq(lem_soap_http_status(LEM_SOAP_12, LEM_FAULT_VERSION),
                     500);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Requests: XML to IMAP                                               */
/* ------------------------------------------------------------------ */

typedef struct {
    const char        *cite;
    lem_soap_version_t version;
    const char        *body;      /* the Body's content */
    const char        *imap;      /* the commands it makes */
} request_row_t;

static const request_row_t request_rows[] = {
    { "draft 2.2, the session: C-SOAP: <LOGIN><P>username</P>...",
      LEM_SOAP_11, "<LOGIN><P>username</P><P>password</P></LOGIN>",
      "s1 LOGIN username password\r\n" },
    { "draft 2.2, the session: SELECT; bare text for a single value",
      LEM_SOAP_11, "<SELECT>INBOX</SELECT>", "s1 SELECT INBOX\r\n" },
    { "draft 2.2, the example encoding: SEQUENCE, SECTION, partial P",
      LEM_SOAP_11,
      "<FETCH><SEQUENCE>1:5,9</SEQUENCE><BODY>"
      "<SECTION>1.1.CONVERT(\"TEXT/PLAIN\")</SECTION><P>1024.2048</P>"
      "</BODY></FETCH>",
      "s1 FETCH 1:5,9 BODY[1.1.CONVERT(\"TEXT/PLAIN\")]<1024.2048>\r\n" },
    { "draft 2.2: UID FETCH is UID_FETCH; atoms are empty elements",
      LEM_SOAP_11,
      "<UID_FETCH><SEQUENCE>1:*</SEQUENCE><L><FLAGS/><UID/><ENVELOPE/>"
      "<BODY.PEEK><SECTION>HEADER.FIELDS (From To)</SECTION></BODY.PEEK>"
      "</L></UID_FETCH>",
      "s1 UID FETCH 1:* (FLAGS UID ENVELOPE BODY.PEEK[HEADER.FIELDS "
      "(From To)])\r\n" },
    { "draft 2.2: a batch of methods, tagged in order; the namespace",
      LEM_SOAP_11,
      "<l:LOGIN xmlns:l=\"" LEM_SOAP_NS "\"><P>demo</P><P>demo</P></l:LOGIN>"
      "<SELECT" NS ">INBOX</SELECT><NOOP/>",
      "s1 LOGIN demo demo\r\ns2 SELECT INBOX\r\ns3 NOOP\r\n" },
    { "draft 2.2: flags lose their backslash, and get it back in STORE",
      LEM_SOAP_11,
      "<STORE><SEQUENCE>1</SEQUENCE><P>+FLAGS.SILENT</P>"
      "<L><SEEN/><FLAGGED/><P>$Forwarded</P></L></STORE>",
      "s1 STORE 1 +FLAGS.SILENT (\\Seen \\Flagged $Forwarded)\r\n" },
    { "draft 2.2: <CHARSET>foo</CHARSET>; SEARCH keys stay atoms",
      LEM_SOAP_11,
      "<UID_SEARCH><CHARSET>UTF-8</CHARSET><SEEN/><NOT><DELETED/></NOT>"
      "<SENTBEFORE>1-Feb-1994</SENTBEFORE><SUBJECT>lunch time</SUBJECT>"
      "</UID_SEARCH>",
      "s1 UID SEARCH CHARSET UTF-8 SEEN NOT DELETED SENTBEFORE 1-Feb-1994 "
      "SUBJECT \"lunch time\"\r\n" },
    { "draft 2.2: APPEND mailbox flaglist literal, <T> a text literal",
      LEM_SOAP_11,
      "<APPEND><P>INBOX</P><L><SEEN/></L><P>17-Jul-1996 02:44:25 -0700</P>"
      "<T>Subject: hi\n\nbody &amp; soul&#13;\n</T></APPEND>",
      "s1 APPEND INBOX (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {28}\r\n"
      "Subject: hi\r\n\r\nbody & soul\r\n\r\n" },
    { "draft 2.2: <B> a base64 literal", LEM_SOAP_11,
      "<APPEND><P>INBOX</P><B>\n SGVs\n bG8=\n</B></APPEND>",
      "s1 APPEND INBOX {5}\r\nHello\r\n" },
    { "RFC 3501 4.3: a value with CRLF becomes a literal, not a command",
      LEM_SOAP_11,
      "<LOGIN><P>x&#13;\na2 LOGOUT</P><P>p\"w</P></LOGIN>",
      "s1 LOGIN {12}\r\nx\r\na2 LOGOUT \"p\\\"w\"\r\n" },
    { "RFC 3501 6.3.1: an empty value is \"\"; NIL as a string is quoted",
      LEM_SOAP_11, "<LIST><P/><P>NIL</P></LIST>",
      "s1 LIST \"\" \"NIL\"\r\n" },
    { "RFC 3501 6.3.10: STATUS items are atoms in a list", LEM_SOAP_11,
      "<STATUS><P>INBOX</P><L><MESSAGES/><RECENT/><UIDNEXT/></L></STATUS>",
      "s1 STATUS INBOX (MESSAGES RECENT UIDNEXT)\r\n" },
    { "RFC 2971: ID with NIL", LEM_SOAP_11, "<ID><NIL/></ID>",
      "s1 ID NIL\r\n" },
    { "SOAP 1.2 part 1 5: the same Body in a 1.2 envelope", LEM_SOAP_12,
      "\n  <CAPABILITY/>\n  ", "s1 CAPABILITY\r\n" },
};

START_TEST(requests_become_the_imap_commands_the_rules_say)
{
    const request_row_t *row = &request_rows[_i];
    const char *doc = envelope(row->version, row->body), *why = NULL;
    const lem_soap_request_t *req;
    lem_soap_reader_t *rd = read_doc(row->version, doc, 0, &req);

    ck_assert_msg(req != NULL, "%s: refused: %s", row->cite,
                  (lem_soap_reader_fault(rd, &why), why));
    ck_assert_msg(!strcmp(commands_of(req), row->imap), "%s:\n got  %s"
                  "\n want %s", row->cite, commands_of(req), row->imap);
}
END_TEST

START_TEST(requests_read_byte_at_a_time_make_the_same_commands)
{
    const request_row_t *row = &request_rows[_i];
    const lem_soap_request_t *req;

    read_doc(row->version, envelope(row->version, row->body), 1, &req);
    ck_assert_msg(req != NULL, "%s: refused", row->cite);
    ck_assert_str_eq(commands_of(req), row->imap);
}
END_TEST

START_TEST(a_call_names_its_method_and_command)
{
    const lem_soap_request_t *req;

    read_doc(LEM_SOAP_11, envelope(LEM_SOAP_11, "<UID_FETCH><SEQUENCE>1"
                                   "</SEQUENCE><FLAGS/></UID_FETCH>"), 0,
             &req);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(req->ncalls, 1);
    ck_assert_str_eq(req->calls[0].method, "UID_FETCH");
    ck_assert_str_eq(req->calls[0].command, "UID FETCH");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Requests refused                                                    */
/* ------------------------------------------------------------------ */

typedef struct {
    const char      *what;
    const char      *doc;       /* whole document; NULL: envelope(body) */
    const char      *body;
    lem_soap_fault_t fault;
    const char      *why;       /* the start of the faultstring */
} refused_row_t;

static const refused_row_t refused_rows[] = {
    { "malformed XML", "<soap:Envelope", NULL, LEM_FAULT_CLIENT,
      "malformed XML" },
    { "an entity bomb (billion laughs)",
      "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aa\">"
      "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
      ENV11 "<soap:Body><LOGIN><P>&b;</P></LOGIN></soap:Body>"
      "</soap:Envelope>", NULL, LEM_FAULT_CLIENT,
      "malformed XML: entity declarations are not accepted" },
    { "an external entity", "<?xml version=\"1.0\"?><!DOCTYPE l ["
      "<!ENTITY x SYSTEM \"file:///etc/passwd\">]>" ENV11 "<soap:Body>"
      "<LOGIN><P>&x;</P></LOGIN></soap:Body></soap:Envelope>", NULL,
      LEM_FAULT_CLIENT, "malformed XML: entity declarations" },
    { "an undeclared entity", NULL, "<LOGIN><P>&x;</P></LOGIN>",
      LEM_FAULT_CLIENT, "malformed XML" },
    { "no envelope", "<LOGIN/>", NULL, LEM_FAULT_CLIENT,
      "the document is not a SOAP Envelope" },
    { "SOAP 1.1 4.4: a SOAP 1.2 envelope as text/xml",
      ENV12 "<soap:Body><NOOP/></soap:Body></soap:Envelope>", NULL,
      LEM_FAULT_VERSION, "text/xml carries SOAP 1.1 envelopes" },
    { "SOAP 1.1 4.2.3: a header block that must be understood",
      ENV11 "<soap:Header><x:T xmlns:x=\"urn:x\" soap:mustUnderstand=\"1\"/>"
      "</soap:Header><soap:Body><NOOP/></soap:Body></soap:Envelope>", NULL,
      LEM_FAULT_MUST_UNDERSTAND, "header block T is not understood" },
    { "an unknown method", NULL, "<FROB/>", LEM_FAULT_CLIENT,
      "unknown method FROB" },
    { "STARTTLS is no method of this binding", NULL, "<STARTTLS/>",
      LEM_FAULT_CLIENT, "unknown method STARTTLS" },
    { "a method of another namespace", NULL, "<x:NOOP xmlns:x=\"urn:x\"/>",
      LEM_FAULT_CLIENT, "unknown method NOOP" },
    { "an empty Body", NULL, "", LEM_FAULT_CLIENT,
      "the Body holds no method" },
    { "text in the Body", NULL, "x<NOOP/>", LEM_FAULT_CLIENT,
      "the Body holds text" },
    { "text mixed with elements", NULL, "<LOGIN>a<P>b</P></LOGIN>",
      LEM_FAULT_CLIENT, "<LOGIN> mixes text and elements" },
    { "text in a list", NULL, "<FETCH><SEQUENCE>1</SEQUENCE><L>FLAGS</L>"
      "</FETCH>", LEM_FAULT_CLIENT, "<L> holds elements only" },
    { "elements in a value", NULL, "<LOGIN><P><P>x</P></P></LOGIN>",
      LEM_FAULT_CLIENT, "<P> may hold text only" },
    { "a sequence set with a space", NULL, "<FETCH><SEQUENCE>1 2</SEQUENCE>"
      "<FLAGS/></FETCH>", LEM_FAULT_CLIENT, "<SEQUENCE> holds other" },
    { "a sequence set with a CRLF", NULL, "<FETCH><SEQUENCE>1&#13;\n"
      "</SEQUENCE></FETCH>", LEM_FAULT_CLIENT, "<SEQUENCE> holds other" },
    { "a section with a CRLF", NULL, "<FETCH><SEQUENCE>1</SEQUENCE><BODY>"
      "<SECTION>1&#13;\na2 LOGOUT</SECTION></BODY></FETCH>",
      LEM_FAULT_CLIENT, "<SECTION> holds a line end" },
    { "a section with a literal", NULL, "<FETCH><SEQUENCE>1</SEQUENCE>"
      "<BODY><SECTION>{5}</SECTION></BODY></FETCH>", LEM_FAULT_CLIENT,
      "<SECTION> is no section" },
    { "a section that starts a list", NULL, "<FETCH><SECTION>1</SECTION>"
      "</FETCH>", LEM_FAULT_CLIENT, "<SECTION> must follow" },
    { "a partial that is no number", NULL, "<FETCH><SEQUENCE>1</SEQUENCE>"
      "<BODY><SECTION/><P>x</P></BODY></FETCH>", LEM_FAULT_CLIENT,
      "a <P> after <SECTION> is a partial" },
    { "bad base64", NULL, "<APPEND><P>INBOX</P><B>SGVs!</B></APPEND>",
      LEM_FAULT_CLIENT, "<B> is not base64" },
    { "base64 padding in the middle", NULL,
      "<APPEND><P>INBOX</P><B>SG==bG8=</B></APPEND>", LEM_FAULT_CLIENT,
      "<B> is not base64" },
    { "NIL with content", NULL, "<ID><NIL>x</NIL></ID>", LEM_FAULT_CLIENT,
      "<NIL/> must be empty" },
    { "an element name that is no atom", NULL,
      "<SEARCH><\xc3\xa9t\xc3\xa9/></SEARCH>", LEM_FAULT_CLIENT,
      "<\xc3\xa9t\xc3\xa9> cannot be an IMAP atom" },
    { "an argument of another namespace", NULL,
      "<SEARCH><x:ALL xmlns:x=\"urn:x\"/></SEARCH>", LEM_FAULT_CLIENT,
      "<ALL> is in a namespace of another binding" },
};

START_TEST(bad_requests_are_refused_with_the_right_fault)
{
    const refused_row_t *row = &refused_rows[_i];
    const char *doc = row->doc ? row->doc : envelope(LEM_SOAP_11, row->body);
    const lem_soap_request_t *req;
    lem_soap_reader_t *rd = read_doc(LEM_SOAP_11, doc, 0, &req);
    const char *why = NULL;

    ck_assert_msg(req == NULL, "%s: accepted", row->what);
    ck_assert_int_eq(lem_soap_reader_fault(rd, &why), row->fault);
    ck_assert_msg(why && !strncmp(why, row->why, strlen(row->why)),
                  "%s: said %s", row->what, why);
}
END_TEST

static const char *nested(int depth)
{
    char *body = apr_pcalloc(pool, (apr_size_t)depth * 8 + 64);
    int i;

    strcpy(body, "<SEARCH>");
    for (i = 0; i < depth; i++) {
        strcat(body, "<L>");
    }
    for (i = 0; i < depth; i++) {
        strcat(body, "</L>");
    }
    strcat(body, "</SEARCH>");
    return envelope(LEM_SOAP_11, body);
}

START_TEST(nesting_is_bounded)
{
    const lem_soap_request_t *req;
    const char *why;
    lem_soap_reader_t *rd;

    /* Envelope, Body and SEARCH are three levels */
    read_doc(LEM_SOAP_11, nested(LEM_SOAP_MAX_DEPTH - 3), 0, &req);
    ck_assert_ptr_nonnull(req);
    rd = read_doc(LEM_SOAP_11, nested(LEM_SOAP_MAX_DEPTH - 2), 0, &req);
    ck_assert_ptr_null(req);
    ck_assert_int_eq(lem_soap_reader_fault(rd, &why), LEM_FAULT_CLIENT);
    ck_assert_str_eq(why, "elements nest deeper than allowed (32)");
}
END_TEST

START_TEST(markup_is_bounded_before_the_parser_sees_it)
{
    const lem_soap_request_t *req;
    const char *why;
    char *body = apr_pcalloc(pool, LEM_SOAP_MAX_MARKUP * 4 + 64);
    lem_soap_reader_t *rd;
    int i;

    strcpy(body, "<SEARCH>");
    for (i = 0; i < LEM_SOAP_MAX_MARKUP; i++) {
        memcpy(body + 8 + i * 4, "<A/>", 4);
    }
    strcat(body, "</SEARCH>");
    rd = read_doc(LEM_SOAP_11, envelope(LEM_SOAP_11, body), 4096, &req);
    ck_assert_ptr_null(req);
    ck_assert_int_eq(lem_soap_reader_fault(rd, &why), LEM_FAULT_CLIENT);
    ck_assert_str_eq(why, "the document has more markup than allowed "
                          "(10000 \"<\")");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Answers: IMAP to XML                                                */
/* ------------------------------------------------------------------ */

typedef struct {
    const char        *cite;
    lem_soap_version_t version;
    const char        *calls;     /* the request's Body */
    const char        *imap;      /* the responses its commands got */
    size_t             imap_len;  /* 0: strlen(imap) */
    const char        *answer;    /* the answer's Body */
} answer_row_t;

#define SELECT_DATA \
    "* FLAGS (\\Answered \\Draft \\Flagged \\Seen)\r\n" \
    "* OK [PERMANENTFLAGS (\\Answered \\Draft \\Flagged \\Seen)]\r\n" \
    "* 1234 EXISTS\r\n" \
    "* Ok [UIDVALIDITY 12345678]\r\n"

#define SELECT_XML \
    "<U><FLAGS><L><ANSWERED/><DRAFT/><FLAGGED/><SEEN/></L></FLAGS></U>" \
    "<U><OK><CODE><PERMANENTFLAGS><L><ANSWERED/><DRAFT/><FLAGGED/><SEEN/>" \
    "</L></PERMANENTFLAGS></CODE></OK></U>" \
    "<U><EXISTS>1234</EXISTS></U>" \
    "<U><OK><CODE><UIDVALIDITY>12345678</UIDVALIDITY></CODE></OK></U>"

#define BINARY_IMAP \
    "* 1 FETCH (BINARY[] ~{3}\r\n\0\1\2 BODY[1] {2}\r\n\xff\xfe)\r\n" \
    "s1 OK done\r\n"

static const answer_row_t answer_rows[] = {
    { "draft 2.2, the session: LOGIN, then SELECT's data", LEM_SOAP_11,
      "<LOGIN><P>username</P><P>password</P></LOGIN><SELECT>INBOX</SELECT>",
      "s1 OK LOGIN completed\r\n" SELECT_DATA
      "s2 OK [READ-WRITE] SELECT completed\r\n", 0,
      "<LOGINResponse" NS "><RESP><OK><TEXT>LOGIN completed</TEXT></OK>"
      "</RESP></LOGINResponse><SELECTResponse" NS ">" SELECT_XML
      "<RESP><OK><CODE><READ-WRITE/></CODE><TEXT>SELECT completed</TEXT>"
      "</OK></RESP></SELECTResponse>" },
    { "draft 2.2, the example encoding: zero or more <U> of <FETCH>",
      LEM_SOAP_11,
      "<FETCH><SEQUENCE>1:5,9</SEQUENCE><BODY><SECTION>1.1.CONVERT("
      "\"TEXT/PLAIN\")</SECTION><P>1024.2048</P></BODY></FETCH>",
      "* 1 FETCH (BODY[1.1.CONVERT(\"TEXT/PLAIN\")]<1024> {5}\r\nhello)\r\n"
      "* 9 FETCH (BODY[1.1.CONVERT(\"TEXT/PLAIN\")]<1024> NIL)\r\n"
      "s1 OK FETCH completed\r\n", 0,
      "<FETCHResponse" NS "><U><FETCH><P>1</P><BODY>"
      "<SECTION>1.1.CONVERT(\"TEXT/PLAIN\")</SECTION><P>1024</P>"
      "<T>hello</T></BODY></FETCH></U><U><FETCH><P>9</P><BODY>"
      "<SECTION>1.1.CONVERT(\"TEXT/PLAIN\")</SECTION><P>1024</P><NIL/>"
      "</BODY></FETCH></U><RESP><OK><TEXT>FETCH completed</TEXT></OK>"
      "</RESP></FETCHResponse>" },
    { "RFC 3501 7.4.2: FLAGS, UID, ENVELOPE, INTERNALDATE, RFC822.SIZE",
      LEM_SOAP_11, "<UID_FETCH><SEQUENCE>7</SEQUENCE><ALL/></UID_FETCH>",
      "* 3 FETCH (UID 7 FLAGS (\\Seen $Forwarded) INTERNALDATE "
      "\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 44 ENVELOPE ("
      "\"Wed, 17 Jul 1996\" \"a & <b>\" ((\"Terry\" NIL \"gray\" "
      "\"example.org\")) NIL NIL NIL NIL NIL NIL \"<id@x>\"))\r\n"
      "s1 OK done\r\n", 0,
      "<UID_FETCHResponse" NS "><U><FETCH><P>3</P><UID>7</UID><FLAGS><L>"
      "<SEEN/><P>$Forwarded</P></L></FLAGS><INTERNALDATE>17-Jul-1996 "
      "02:44:25 -0700</INTERNALDATE><RFC822.SIZE>44</RFC822.SIZE>"
      "<ENVELOPE><L><P>Wed, 17 Jul 1996</P><P>a &amp; &lt;b&gt;</P><L><L>"
      "<P>Terry</P><NIL/><P>gray</P><P>example.org</P></L></L><NIL/><NIL/>"
      "<NIL/><NIL/><NIL/><NIL/><P>&lt;id@x&gt;</P></L></ENVELOPE></FETCH>"
      "</U><RESP><OK><TEXT>done</TEXT></OK></RESP></UID_FETCHResponse>" },
    { "a literal with CR LF keeps them: CR as &#13;", LEM_SOAP_11,
      "<FETCH><SEQUENCE>1</SEQUENCE><BODY><SECTION/></BODY></FETCH>",
      "* 1 FETCH (BODY[] {6}\r\na\r\nb\tc)\r\ns1 OK done\r\n", 0,
      "<FETCHResponse" NS "><U><FETCH><P>1</P><BODY><SECTION/>"
      "<T>a&#13;\nb\tc</T></BODY></FETCH></U><RESP><OK><TEXT>done</TEXT>"
      "</OK></RESP></FETCHResponse>" },
    { "a literal that is not UTF-8, or holds NUL, is <B>", LEM_SOAP_11,
      "<FETCH><SEQUENCE>1</SEQUENCE><BINARY><SECTION/></BINARY></FETCH>",
      BINARY_IMAP, sizeof(BINARY_IMAP) - 1,
      "<FETCHResponse" NS "><U><FETCH><P>1</P><BINARY><SECTION/><B>AAEC</B>"
      "</BINARY><BODY><SECTION>1</SECTION><B>//4=</B></BODY></FETCH></U>"
      "<RESP><OK><TEXT>done</TEXT></OK></RESP></FETCHResponse>" },
    { "RFC 3501 7.2.5: SEARCH, one value bare, more as <P>", LEM_SOAP_11,
      "<SEARCH><ALL/></SEARCH><SEARCH><SEEN/></SEARCH>"
      "<SEARCH><DRAFT/></SEARCH>",
      "* SEARCH 2 3 5\r\ns1 OK done\r\n* SEARCH 4\r\ns2 OK done\r\n"
      "* SEARCH\r\ns3 OK done\r\n", 0,
      "<SEARCHResponse" NS "><U><SEARCH><P>2</P><P>3</P><P>5</P></SEARCH>"
      "</U><RESP><OK><TEXT>done</TEXT></OK></RESP></SEARCHResponse>"
      "<SEARCHResponse" NS "><U><SEARCH>4</SEARCH></U><RESP><OK><TEXT>done"
      "</TEXT></OK></RESP></SEARCHResponse><SEARCHResponse" NS "><U>"
      "<SEARCH/></U><RESP><OK><TEXT>done</TEXT></OK></RESP>"
      "</SEARCHResponse>" },
    { "RFC 3501 7.2.4, 7.2.2: STATUS items as elements; LIST", LEM_SOAP_11,
      "<STATUS><P>INBOX</P><L><MESSAGES/><UIDNEXT/></L></STATUS>"
      "<LIST><P/><P>*</P></LIST>",
      "* STATUS INBOX (MESSAGES 3 UIDNEXT 4)\r\ns1 OK done\r\n"
      "* LIST (\\HasNoChildren) \".\" \"Sent Items\"\r\ns2 OK done\r\n", 0,
      "<STATUSResponse" NS "><U><STATUS><P>INBOX</P><MESSAGES>3</MESSAGES>"
      "<UIDNEXT>4</UIDNEXT></STATUS></U><RESP><OK><TEXT>done</TEXT></OK>"
      "</RESP></STATUSResponse><LISTResponse" NS "><U><LIST><L>"
      "<HASNOCHILDREN/></L><P>.</P><P>Sent Items</P></LIST></U><RESP><OK>"
      "<TEXT>done</TEXT></OK></RESP></LISTResponse>" },
    { "RFC 4315 3: a code with two values: APPENDUID", LEM_SOAP_11,
      "<APPEND><P>INBOX</P><T>x</T></APPEND>",
      "s1 OK [APPENDUID 38505 3955] APPEND completed\r\n", 0,
      "<APPENDResponse" NS "><RESP><OK><CODE><APPENDUID><P>38505</P>"
      "<P>3955</P></APPENDUID></CODE><TEXT>APPEND completed</TEXT></OK>"
      "</RESP></APPENDResponse>" },
    { "a response with no tree goes whole as <T>", LEM_SOAP_11, "<NOOP/>",
      "* 1 FETCH (X \"unterminated)\r\ns1 OK done\r\n", 0,
      "<NOOPResponse" NS "><U><T>* 1 FETCH (X \"unterminated)</T></U>"
      "<RESP><OK><TEXT>done</TEXT></OK></RESP></NOOPResponse>" },
    { "text XML cannot carry becomes U+FFFD", LEM_SOAP_11, "<NOOP/>",
      "s1 OK a\x01" "b\xff" "c\r\n", 0,
      "<NOOPResponse" NS "><RESP><OK><TEXT>a\xef\xbf\xbd" "b\xef\xbf\xbd"
      "c</TEXT></OK></RESP></NOOPResponse>" },
    { "SOAP 1.2: the same answer in a 1.2 envelope", LEM_SOAP_12,
      "<NOOP/>", "s1 OK NOOP completed\r\n", 0,
      "<NOOPResponse" NS "><RESP><OK><TEXT>NOOP completed</TEXT></OK>"
      "</RESP></NOOPResponse>" },
};

static const lem_soap_request_t *request_of(lem_soap_version_t v,
                                            const char *calls)
{
    const lem_soap_request_t *req;

    read_doc(v, envelope(v, calls), 0, &req);
    ck_assert_ptr_nonnull(req);
    return req;
}

/* The whole answer, feeding the responses `step` bytes at a time. */
static const char *answer_of(const lem_soap_request_t *req,
                             const char *imap, size_t len, size_t step)
{
    lem_soap_answer_t *a = lem_soap_answer_create(pool, req);
    text_t *out = apr_pcalloc(pool, sizeof(*out));
    lem_sink_t sink = { to_text, out };
    lem_soap_fault_t fault;
    const char *why;
    size_t off;

    for (off = 0; off < len; off += step) {
        size_t n = (step < len - off) ? step : len - off;

        ck_assert_int_eq(lem_soap_answer_scan(a, imap + off, n),
                         APR_SUCCESS);
    }
    fault = lem_soap_answer_outcome(a, &why);
    ck_assert_int_eq(lem_soap_answer_begin(a, fault, why, &sink),
                     APR_SUCCESS);
    for (off = 0; off < len; off += step) {
        size_t n = (step < len - off) ? step : len - off;

        ck_assert_int_eq(lem_soap_answer_feed(a, imap + off, n),
                         APR_SUCCESS);
    }
    ck_assert_int_eq(lem_soap_answer_end(a), APR_SUCCESS);
    return out->data;
}

static const char *whole_answer(lem_soap_version_t v, const char *body)
{
    return apr_pstrcat(pool, XML_DECL, v == LEM_SOAP_12 ? ENV12 : ENV11,
                       "<soap:Body>", body, "</soap:Body></soap:Envelope>\n",
                       NULL);
}

START_TEST(responses_become_the_xml_the_rules_say)
{
    const answer_row_t *row = &answer_rows[_i];
    const lem_soap_request_t *req = request_of(row->version, row->calls);
    size_t len = row->imap_len ? row->imap_len : strlen(row->imap);
    const char *got = answer_of(req, row->imap, len, len);
    const char *want = whole_answer(row->version, row->answer);

    ck_assert_msg(!strcmp(got, want), "%s:\n got  %s\n want %s", row->cite,
                  got, want);
}
END_TEST

START_TEST(responses_fed_byte_at_a_time_give_the_same_xml)
{
    const answer_row_t *row = &answer_rows[_i];
    const lem_soap_request_t *req = request_of(row->version, row->calls);
    size_t len = row->imap_len ? row->imap_len : strlen(row->imap);

    ck_assert_str_eq(answer_of(req, row->imap, len, 1),
                     whole_answer(row->version, row->answer));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Faults                                                              */
/* ------------------------------------------------------------------ */

START_TEST(a_no_is_a_server_fault_with_every_response_in_its_detail)
{
    const lem_soap_request_t *req = request_of(LEM_SOAP_11,
        "<LOGIN><P>demo</P><P>bad</P></LOGIN><SELECT>INBOX</SELECT>");
    const char *imap = "s1 NO [AUTHENTICATIONFAILED] Authentication failed."
                       "\r\ns2 BAD Command not allowed\r\n";

    ck_assert_str_eq(answer_of(req, imap, strlen(imap), strlen(imap)),
        whole_answer(LEM_SOAP_11,
        "<soap:Fault><faultcode>soap:Server.NO</faultcode><faultstring>"
        "LOGIN: NO [AUTHENTICATIONFAILED] Authentication failed."
        "</faultstring><detail><LOGINResponse" NS "><RESP><NO><CODE>"
        "<AUTHENTICATIONFAILED/></CODE><TEXT>Authentication failed.</TEXT>"
        "</NO></RESP></LOGINResponse><SELECTResponse" NS "><RESP><BAD>"
        "<TEXT>Command not allowed</TEXT></BAD></RESP></SELECTResponse>"
        "</detail></soap:Fault>"));
}
END_TEST

START_TEST(a_soap12_fault_has_a_code_a_subcode_and_a_reason)
{
    const lem_soap_request_t *req = request_of(LEM_SOAP_12,
                                               "<SELECT>Nosuch</SELECT>");
    const char *imap = "s1 BAD no\r\n";

    ck_assert_str_eq(answer_of(req, imap, strlen(imap), strlen(imap)),
        whole_answer(LEM_SOAP_12,
        "<soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value>"
        "<soap:Subcode><soap:Value xmlns:lem=\"" LEM_SOAP_NS "\">lem:BAD"
        "</soap:Value></soap:Subcode></soap:Code><soap:Reason><soap:Text "
        "xml:lang=\"en\">SELECT: BAD no</soap:Text></soap:Reason>"
        "<soap:Detail><SELECTResponse" NS "><RESP><BAD><TEXT>no</TEXT></BAD>"
        "</RESP></SELECTResponse></soap:Detail></soap:Fault>"));
}
END_TEST

START_TEST(a_refused_request_is_a_fault_without_detail)
{
    text_t out = { "", 0 };
    lem_sink_t sink = { to_text, &out };

    ck_assert_int_eq(lem_soap_write_fault(pool, LEM_SOAP_11,
                                          LEM_FAULT_CLIENT, "a <b> & c",
                                          &sink), APR_SUCCESS);
    ck_assert_str_eq(out.data, whole_answer(LEM_SOAP_11,
        "<soap:Fault><faultcode>soap:Client</faultcode><faultstring>"
        "a &lt;b&gt; &amp; c</faultstring></soap:Fault>"));
}
END_TEST

START_TEST(every_call_gets_its_answer_element_even_without_responses)
{
    const lem_soap_request_t *req = request_of(LEM_SOAP_11,
                                               "<NOOP/><NOOP/>");
    const char *imap = "s1 OK done\r\n";

    ck_assert_str_eq(answer_of(req, imap, strlen(imap), strlen(imap)),
        whole_answer(LEM_SOAP_11,
        "<NOOPResponse" NS "><RESP><OK><TEXT>done</TEXT></OK></RESP>"
        "</NOOPResponse><NOOPResponse" NS "></NOOPResponse>"));
}
END_TEST

Suite *lem_soap_suite(void)
{
    Suite *s = suite_create("lem_soap");
    TCase *req = tcase_create("request");
    TCase *ans = tcase_create("answer");

    tcase_add_checked_fixture(req, setup, teardown);
    tcase_add_loop_test(req, the_media_type_chooses_the_soap_version, 0,
                        N_ROWS(version_rows));
    tcase_add_test(req, faults_get_the_http_status_each_soap_version_wants);
    tcase_add_loop_test(req, requests_become_the_imap_commands_the_rules_say,
                        0, N_ROWS(request_rows));
    tcase_add_loop_test(req,
                        requests_read_byte_at_a_time_make_the_same_commands,
                        0, N_ROWS(request_rows));
    tcase_add_test(req, a_call_names_its_method_and_command);
    tcase_add_loop_test(req, bad_requests_are_refused_with_the_right_fault,
                        0, N_ROWS(refused_rows));
    tcase_add_test(req, nesting_is_bounded);
    tcase_add_test(req, markup_is_bounded_before_the_parser_sees_it);
    suite_add_tcase(s, req);

    tcase_add_checked_fixture(ans, setup, teardown);
    tcase_add_loop_test(ans, responses_become_the_xml_the_rules_say, 0,
                        N_ROWS(answer_rows));
    tcase_add_loop_test(ans, responses_fed_byte_at_a_time_give_the_same_xml,
                        0, N_ROWS(answer_rows));
    tcase_add_test(ans,
                   a_no_is_a_server_fault_with_every_response_in_its_detail);
    tcase_add_test(ans, a_soap12_fault_has_a_code_a_subcode_and_a_reason);
    tcase_add_test(ans, a_refused_request_is_a_fault_without_detail);
    tcase_add_test(ans,
                   every_call_gets_its_answer_element_even_without_responses);
    suite_add_tcase(s, ans);
    return s;
}
