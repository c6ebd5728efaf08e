/* Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE. */

/*
 * The keeper process and the child's side of its protocol. The keeper is
 * an epoll loop over three kinds of descriptor: its listening socket, the
 * links of the children, and the backend sockets it is not lending.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* accept4() */
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <apr_strings.h>
#include <apr_signal.h>
#include <apr_thread_proc.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <ap_listen.h>
#include <mpm_common.h>
#include <unixd.h>

#include "mod_lemonade.h"
#include "mod_lemonade_keeper.h"
#include "mod_lemonade_tls.h"

APLOG_USE_MODULE(lemonade);

#define KEEPER_MAGIC        0x4c4b5031u   /* "LKP1" */
#define KEEPER_USERDATA     "mod_lemonade-keeper"
#define KEEPER_SWEEP        apr_time_from_sec(1)
#define KEEPER_OPENING_MAX  apr_time_from_sec(600)

typedef enum {
    OP_ADOPT = 1,
    OP_ATTACH,
    OP_CLOSE,
    OP_TLS,
    OP_RELEASE                     /* given back clean; no answer */
} keeper_op_t;

typedef enum {
    ST_OK = 0,
    ST_GONE,
    ST_BAD,
    ST_TLS                         /* TLS failed; `why` says how */
} keeper_status_t;

/* One request from a child; ADOPT and TLS carry a socket with it. */
typedef struct {
    apr_uint32_t  magic;
    apr_uint32_t  op;
    apr_uint32_t  slot;
    apr_uint32_t  idle_ms;
    apr_uint32_t  life_s;          /* ADOPT: longest the session lives */
    unsigned char id[LEM_ID_BYTES];
    char          host[256];       /* TLS: the name to verify */
    char          ca[512];         /* TLS: the CA file, "" for the system's */
} keeper_msg_t;

typedef struct {
    apr_uint32_t magic;
    apr_uint32_t status;
    char         why[192];         /* ST_TLS */
} keeper_reply_t;

/* What survives Apache's restarts: kept in the process pool. */
typedef struct {
    pid_t        pid;          /* the keeper, or 0 */
    int          listen_fd;
    const char  *path;
    lem_table_t *table;
    server_rec  *s;            /* of the generation that started it */
    apr_pool_t  *pool;         /* the process pool */
    apr_pool_t  *pconf;        /* of the current generation */
} keeper_proc_t;

lem_state_t lem_state;

/* ------------------------------------------------------------------ */
/* Passing a socket over a Unix socket                                 */
/* ------------------------------------------------------------------ */

static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
    struct msghdr mh;
    struct iovec iov;
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } u;
    ssize_t n;

    memset(&mh, 0, sizeof(mh));
    iov.iov_base = (void *)buf;
    iov.iov_len = len;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        struct cmsghdr *cm;

        memset(&u, 0, sizeof(u));
        mh.msg_control = u.space;
        mh.msg_controllen = sizeof(u.space);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

/* Read up to `len` bytes; a socket passed along lands in `*fd` (a second
 * one is closed: nobody sends two). Returns bytes read, 0 at EOF, -1. */
static ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd)
{
    struct msghdr mh;
    struct iovec iov;
    struct cmsghdr *cm;
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } u;
    ssize_t n;

    memset(&mh, 0, sizeof(mh));
    iov.iov_base = buf;
    iov.iov_len = len;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.space;
    mh.msg_controllen = sizeof(u.space);
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    for (cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
        int got;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        memcpy(&got, CMSG_DATA(cm), sizeof(int));
        if (*fd >= 0) {
            close(got);
        }
        else {
            *fd = got;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The keeper process                                                  */
/* ------------------------------------------------------------------ */

typedef enum { K_LISTEN, K_LINK, K_BACKEND, K_TLS } kind_t;

typedef struct link_s link_t;
typedef struct sess_s sess_t;
typedef struct tls_s tls_t;

/* A TLS relay (mod_lemonade_tls.h), and the link that asked for it. */
struct tls_s {
    kind_t     kind;           /* K_TLS */
    lem_tls_t *t;
    link_t    *asker;          /* until the handshake is over */
    int        dead;           /* freed at the end of the epoll turn */
    tls_t     *next_dead;
};

struct link_s {
    kind_t        kind;        /* K_LINK; first, as in every epoll tag */
    int           fd;
    keeper_msg_t  msg;         /* being read */
    size_t        got;
    int           passed_fd;   /* arrived with the message, or -1 */
    sess_t       *lent;        /* the session lent to this link */
    sess_t       *waits_for;   /* the session this link queues for */
    link_t       *next;        /* in that session's queue */
    tls_t        *tls;         /* the handshake it waits for */
    int           clean;       /* gave its session back between commands */
};

struct sess_s {
    kind_t              kind;  /* K_BACKEND */
    int                 fd;    /* -1: slot not held */
    lem_id_t            id;
    link_t             *borrower;
    link_t             *queue;  /* links waiting, oldest first */
    int                 watched; /* in the epoll set */
    apr_time_t          idle_since;
    apr_interval_time_t idle_timeout;
    apr_time_t          expires;   /* end of its lifetime */
};

typedef struct {
    kind_t         kind;       /* K_LISTEN */
    int            ep;
    int            listen_fd;
    lem_table_t   *table;
    sess_t        *sess;       /* one per slot */
    apr_uint32_t   nslots;
    apr_time_t     last_sweep;
    apr_time_t     last_opening_sweep;
    tls_t         *dead;       /* relays ended this epoll turn */
    server_rec    *s;
} keeper_t;

static void reply_why(link_t *l, keeper_status_t status, int fd,
                      const char *why)
{
    keeper_reply_t r;

    memset(&r, 0, sizeof(r));
    r.magic = KEEPER_MAGIC;
    r.status = status;
    if (why) {
        apr_cpystrn(r.why, why, sizeof(r.why));
    }
    /* a failed send shows as the link's hang-up on the next turn */
    send_with_fd(l->fd, &r, sizeof(r), fd);
}

static void reply(link_t *l, keeper_status_t status, int fd)
{
    reply_why(l, status, fd, NULL);
}

static void watch(keeper_t *k, sess_t *ss, int on)
{
    struct epoll_event ev;

    if (on == ss->watched) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLRDHUP;
    ev.data.ptr = ss;
    epoll_ctl(k->ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, ss->fd, &ev);
    ss->watched = on;
}

static void lend(keeper_t *k, sess_t *ss, link_t *l)
{
    watch(k, ss, 0);
    ss->borrower = l;
    l->lent = ss;
    reply(l, ST_OK, ss->fd);
}

static void close_session(keeper_t *k, sess_t *ss, const char *why)
{
    link_t *l;

    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, k->s, LEMLOGNO(0201)
                 "keeper: session %u closed (%s)", ss->id.slot, why);
    watch(k, ss, 0);
    close(ss->fd);
    ss->fd = -1;
    lem_session_release(k->table, &ss->id);
    if (ss->borrower) {
        ss->borrower->lent = NULL;
        ss->borrower = NULL;
    }
    while ((l = ss->queue) != NULL) {
        ss->queue = l->next;
        l->next = NULL;
        l->waits_for = NULL;
        reply(l, ST_GONE, -1);
    }
}

/* The borrower is done: lend to the next in line, or start the clock. */
static void give_back(keeper_t *k, sess_t *ss)
{
    link_t *next = ss->queue;

    ss->borrower = NULL;
    ss->idle_since = apr_time_now();
    if (next) {
        ss->queue = next->next;
        next->next = NULL;
        next->waits_for = NULL;
        lend(k, ss, next);
        return;
    }
    watch(k, ss, 1);
}

static void unqueue(link_t *l)
{
    link_t **pp;

    for (pp = &l->waits_for->queue; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    l->waits_for = NULL;
    l->next = NULL;
}

static void drop_link(keeper_t *k, link_t *l)
{
    if (l->waits_for) {
        unqueue(l);
    }
    if (l->tls) {
        l->tls->asker = NULL;   /* the handshake goes on for nobody */
    }
    if (l->lent) {
        sess_t *ss = l->lent;

        l->lent = NULL;
        if (l->clean) {
            give_back(k, ss);
        }
        else {
            /* it died, or gave up, in the middle of an exchange: nobody
             * knows where the session's stream stands */
            close_session(k, ss, "given back in the middle of a request");
        }
    }
    if (l->passed_fd >= 0) {
        close(l->passed_fd);
    }
    epoll_ctl(k->ep, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    free(l);
}

/* The session `m` names, if the keeper holds it. */
static sess_t *find(keeper_t *k, const keeper_msg_t *m)
{
    sess_t *ss;

    if (m->slot >= k->nslots) {
        return NULL;
    }
    ss = &k->sess[m->slot];
    if (ss->fd < 0 || !lem_id_equal(ss->id.bytes, m->id)) {
        return NULL;
    }
    return ss;
}

static void on_adopt(keeper_t *k, link_t *l)
{
    const keeper_msg_t *m = &l->msg;
    sess_t *ss;

    if (m->slot >= k->nslots || l->passed_fd < 0 || l->lent) {
        reply(l, ST_BAD, -1);
        return;
    }
    ss = &k->sess[m->slot];
    if (ss->fd >= 0) {
        close_session(k, ss, "slot taken over");
    }
    ss->kind = K_BACKEND;
    ss->fd = l->passed_fd;
    l->passed_fd = -1;
    memcpy(ss->id.bytes, m->id, LEM_ID_BYTES);
    ss->id.slot = m->slot;
    ss->idle_timeout = apr_time_from_msec(m->idle_ms);
    ss->expires = apr_time_now() + apr_time_from_sec(m->life_s);
    ss->borrower = l;
    l->lent = ss;
    reply(l, ST_OK, -1);
}

static void on_attach(keeper_t *k, link_t *l)
{
    sess_t *ss = find(k, &l->msg);

    if (!ss || l->lent || l->waits_for) {
        reply(l, ss ? ST_BAD : ST_GONE, -1);
        return;
    }
    if (!ss->borrower) {
        lend(k, ss, l);
        return;
    }
    /* 2.1.1 sessions are used by one request at a time: queue it */
    link_t **pp = &ss->queue;
    while (*pp) {
        pp = &(*pp)->next;
    }
    *pp = l;
    l->waits_for = ss;
}

static void on_close(keeper_t *k, link_t *l)
{
    sess_t *ss = find(k, &l->msg);

    if (ss) {
        close_session(k, ss, "ended by a request");
    }
    reply(l, ST_OK, -1);
}

/* ------------------------------------------------------------------ */
/* TLS relays                                                          */
/* ------------------------------------------------------------------ */

static void tls_end(keeper_t *k, tls_t *tls)
{
    if (tls->dead) {
        return;
    }
    tls->dead = 1;
    tls->next_dead = k->dead;
    k->dead = tls;
    if (tls->asker) {
        tls->asker->tls = NULL;
        tls->asker = NULL;
    }
}

static void tls_reap(keeper_t *k)
{
    while (k->dead) {
        tls_t *tls = k->dead;

        k->dead = tls->next_dead;
        lem_tls_close(tls->t);
        free(tls);
    }
}

/* TLS to a server for a child: the socket it passed becomes the relay's,
 * the child gets the plaintext end once the server is verified. */
static void on_tls(keeper_t *k, link_t *l)
{
    keeper_msg_t *m = &l->msg;
    char why[192] = "";
    tls_t *tls;

    m->host[sizeof(m->host) - 1] = m->ca[sizeof(m->ca) - 1] = '\0';
    if (l->passed_fd < 0 || l->tls || !(tls = calloc(1, sizeof(*tls)))) {
        reply(l, ST_BAD, -1);
        return;
    }
    tls->kind = K_TLS;
    tls->t = lem_tls_start(k->ep, l->passed_fd, m->host,
                           m->ca[0] ? m->ca : NULL, tls, why, sizeof(why));
    l->passed_fd = -1;
    if (!tls->t) {
        reply_why(l, ST_TLS, -1, why);
        free(tls);
        return;
    }
    tls->asker = l;
    l->tls = tls;
}

static void on_tls_event(keeper_t *k, tls_t *tls)
{
    char why[192] = "";
    int fd;

    if (tls->dead) {
        return;
    }
    switch (lem_tls_on_event(tls->t, why, sizeof(why))) {
    case LEM_TLS_READY:
        if (!tls->asker) {
            tls_end(k, tls);
            break;
        }
        fd = lem_tls_take_plain_end(tls->t);
        reply(tls->asker, ST_OK, fd);
        close(fd);
        tls->asker->tls = NULL;
        tls->asker = NULL;
        break;
    case LEM_TLS_DONE:
        if (tls->asker) {
            reply_why(tls->asker, ST_TLS, -1, why);
        }
        tls_end(k, tls);
        break;
    default:
        break;
    }
}

static void on_message(keeper_t *k, link_t *l)
{
    if (l->msg.magic != KEEPER_MAGIC) {
        reply(l, ST_BAD, -1);
        return;
    }
    switch (l->msg.op) {
    case OP_ADOPT:  on_adopt(k, l);  break;
    case OP_ATTACH: on_attach(k, l); break;
    case OP_CLOSE:  on_close(k, l);  break;
    case OP_TLS:    on_tls(k, l);    break;
    case OP_RELEASE: l->clean = 1;   break;
    default:        reply(l, ST_BAD, -1); break;
    }
    if (l->passed_fd >= 0) {       /* a socket nobody asked for */
        close(l->passed_fd);
        l->passed_fd = -1;
    }
}

/* Read what the link has; returns 0 when the link is to be dropped. */
static int on_link(keeper_t *k, link_t *l)
{
    for (;;) {
        char *at = (char *)&l->msg + l->got;
        ssize_t n = recv_with_fd(l->fd, at, sizeof(l->msg) - l->got,
                                 &l->passed_fd);

        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        l->got += (size_t)n;
        if (l->got == sizeof(l->msg)) {
            l->got = 0;
            on_message(k, l);
        }
    }
}

static void on_accept(keeper_t *k)
{
    struct epoll_event ev;
    link_t *l;
    int fd;

    while ((fd = accept4(k->listen_fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        l = calloc(1, sizeof(*l));
        if (!l) {
            close(fd);
            continue;
        }
        l->kind = K_LINK;
        l->fd = fd;
        l->passed_fd = -1;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = l;
        if (epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(l);
        }
    }
}

/* Close what nobody used for too long; free slots of dead children. */
static void sweep(keeper_t *k, apr_time_t now)
{
    apr_uint32_t n;
    lem_slot_t slot;

    for (n = 0; n < k->nslots; n++) {
        sess_t *ss = &k->sess[n];

        if (ss->fd < 0 || ss->borrower) {
            continue;
        }
        if (now - ss->idle_since >= ss->idle_timeout) {
            close_session(k, ss, "idle timeout");
        }
        else if (now >= ss->expires) {
            close_session(k, ss, "lifetime over");
        }
    }
    if (now - k->last_opening_sweep < KEEPER_OPENING_MAX) {
        return;
    }
    k->last_opening_sweep = now;
    for (n = 0; n < k->nslots; n++) {
        if (k->sess[n].fd < 0
            && lem_table_peek(k->table, n, &slot) == LEM_SLOT_OPENING
            && now - slot.created > KEEPER_OPENING_MAX) {
            lem_id_t id;

            memcpy(id.bytes, slot.id, LEM_ID_BYTES);
            id.slot = n;
            lem_session_release(k->table, &id);
        }
    }
}

static void keeper_loop(keeper_t *k)
{
    struct epoll_event evs[64];

    for (;;) {
        int i, n = epoll_wait(k->ep, evs, 64, 1000);
        apr_time_t now;

        for (i = 0; i < n; i++) {
            kind_t *kind = evs[i].data.ptr;

            switch (*kind) {
            case K_LISTEN:
                on_accept(k);
                break;
            case K_LINK:
                if (!on_link(k, (link_t *)kind)) {
                    drop_link(k, (link_t *)kind);
                }
                break;
            case K_BACKEND:
                if (((sess_t *)kind)->watched) {
                    close_session(k, (sess_t *)kind, "backend hung up");
                }
                break;
            case K_TLS:
                on_tls_event(k, (tls_t *)kind);
                break;
            }
        }
        tls_reap(k);
        now = apr_time_now();
        if (now - k->last_sweep >= KEEPER_SWEEP) {
            k->last_sweep = now;
            sweep(k, now);
        }
    }
}

/* Every idle session costs the keeper one descriptor. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_max < 1048576) {
        struct rlimit want = { 1048576, 1048576 };
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            return;
        }
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void keeper_main(keeper_proc_t *kp, pid_t parent, apr_pool_t *pool)
{
    keeper_t k;
    struct epoll_event ev;
    apr_uint32_t n;

    /* 1. a process of its own: Apache's signals to its group, meant for
     *    the children, must not end the sessions */
    setsid();
    apr_signal(SIGHUP, SIG_IGN);
    apr_signal(SIGUSR1, SIG_IGN);
    apr_signal(SIGWINCH, SIG_IGN);
    apr_signal(SIGPIPE, SIG_IGN);
    apr_signal(SIGTERM, SIG_DFL);
    ap_close_listeners();
    raise_fd_limit();

    /* 2. the unprivileged user, then die with the parent (a change of
     *    user clears the death signal, so it is set after) */
    if (ap_run_drop_privileges(pool, kp->s) != 0) {
        _exit(APEXIT_CHILDFATAL);
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
        _exit(0);
    }

    /* 3. the table, emptied by the parent before the fork */
    memset(&k, 0, sizeof(k));
    k.kind = K_LISTEN;
    k.s = kp->s;
    k.table = kp->table;
    k.listen_fd = kp->listen_fd;
    if (lem_table_child_init(k.table, pool) != APR_SUCCESS) {
        _exit(APEXIT_CHILDFATAL);
    }
    k.nslots = (apr_uint32_t)lem_table_slots(k.table);
    k.sess = calloc(k.nslots, sizeof(sess_t));
    k.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!k.sess || k.ep < 0) {
        _exit(APEXIT_CHILDFATAL);
    }
    for (n = 0; n < k.nslots; n++) {
        k.sess[n].fd = -1;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &k;
    fcntl(k.listen_fd, F_SETFL, fcntl(k.listen_fd, F_GETFL) | O_NONBLOCK);
    if (epoll_ctl(k.ep, EPOLL_CTL_ADD, k.listen_fd, &ev) != 0) {
        _exit(APEXIT_CHILDFATAL);
    }
    k.last_sweep = k.last_opening_sweep = apr_time_now();

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, kp->s, LEMLOGNO(0202)
                 "keeper: started, pid %" APR_PID_T_FMT ", %u slots, "
                 "listening on %s", getpid(), k.nslots, kp->path);
    keeper_loop(&k);
    _exit(0);
}

/* ------------------------------------------------------------------ */
/* Starting and watching the keeper (the Apache parent)                */
/* ------------------------------------------------------------------ */

static apr_status_t spawn(keeper_proc_t *kp);

static void keeper_maint(int reason, void *data, apr_wait_t status)
{
    keeper_proc_t *kp = data;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, kp->s, LEMLOGNO(0203)
                     "keeper: pid %" APR_PID_T_FMT " ended (status %d); "
                     "its sessions are lost, starting a new keeper",
                     kp->pid, (int)status);
        kp->pid = 0;
        spawn(kp);
        break;
    default:
        break;
    }
}

static apr_status_t spawn(keeper_proc_t *kp)
{
    apr_proc_t *proc = apr_pcalloc(kp->pconf, sizeof(*proc));
    pid_t parent = getpid();
    apr_status_t rv;

    /* Sessions of an earlier keeper died with it. Emptied here, before
     * the fork: emptied by the new keeper, the table could lose a slot a
     * child reserved while the keeper was still starting. */
    lem_table_reset(kp->table);

    rv = apr_proc_fork(proc, kp->pool);
    if (rv == APR_INCHILD) {
        keeper_main(kp, parent, kp->pool);
        _exit(0);
    }
    if (rv != APR_INPARENT) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, kp->s, LEMLOGNO(0204)
                     "keeper: cannot fork");
        return rv;
    }
    kp->pid = proc->pid;
    /* with pconf: the callback lives in this module, which a restart
     * unloads */
    apr_proc_other_child_register(proc, keeper_maint, kp, NULL, kp->pconf);
    return APR_SUCCESS;
}

/* Bound by the parent as root, then given to the user children run as. */
static apr_status_t make_listener(keeper_proc_t *kp)
{
    struct sockaddr_un sa;
    int fd;

    if (strlen(kp->path) >= sizeof(sa.sun_path)) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, kp->s, LEMLOGNO(0205)
                     "keeper: socket path %s is too long", kp->path);
        return APR_ENAMETOOLONG;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, kp->path);
    unlink(kp->path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || listen(fd, 1024) != 0) {
        apr_status_t rv = errno;

        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, kp->s, LEMLOGNO(0206)
                     "keeper: cannot listen on %s", kp->path);
        if (fd >= 0) {
            close(fd);
        }
        return rv;
    }
    if (geteuid() == 0) {
        /* only the children's user may talk to the keeper */
        if (chown(kp->path, ap_unixd_config.user_id,
                  ap_unixd_config.group_id) != 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, errno, kp->s,
                         LEMLOGNO(0207) "keeper: cannot chown %s",
                         kp->path);
        }
    }
    chmod(kp->path, S_IRUSR | S_IWUSR);
    kp->listen_fd = fd;
    return APR_SUCCESS;
}

static apr_status_t keeper_create(keeper_proc_t **pkp, server_rec *s,
                                  apr_pool_t *pconf)
{
    apr_pool_t *pproc = s->process->pool;
    const lem_srv_conf_t *sc = lem_srv_conf(s);
    keeper_proc_t *kp = apr_pcalloc(pproc, sizeof(*kp));
    apr_status_t rv;

    kp->pool = pproc;
    kp->s = s;
    kp->path = apr_psprintf(pproc, "%s.%" APR_PID_T_FMT ".sock",
                            ap_runtime_dir_relative(pconf, sc->socket_path),
                            getpid());
    rv = lem_table_create(&kp->table, sc->max_sessions, s, pproc);
    if (rv == APR_SUCCESS) {
        rv = make_listener(kp);
    }
    if (rv == APR_SUCCESS) {
        apr_pool_userdata_set(kp, KEEPER_USERDATA, NULL, pproc);
        *pkp = kp;
    }
    return rv;
}

apr_status_t lem_keeper_start(server_rec *s, apr_pool_t *pconf,
                              apr_pool_t *ptemp)
{
    keeper_proc_t *kp = NULL;
    apr_proc_t *proc;
    apr_status_t rv;

    (void)ptemp;
    apr_pool_userdata_get((void **)&kp, KEEPER_USERDATA, s->process->pool);
    if (!kp) {
        rv = keeper_create(&kp, s, pconf);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    kp->s = s;
    kp->pconf = pconf;
    lem_state.table = kp->table;
    lem_state.socket_path = kp->path;
    if (!kp->pid) {
        return spawn(kp);
    }

    /* a restart unregistered it with the old pool: watch it again */
    proc = apr_pcalloc(pconf, sizeof(*proc));
    proc->pid = kp->pid;
    apr_proc_other_child_register(proc, keeper_maint, kp, NULL, pconf);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* The child's side                                                    */
/* ------------------------------------------------------------------ */

apr_status_t lem_link_open(lem_link_t *link, const char *path)
{
    struct sockaddr_un sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        apr_status_t rv = errno;
        close(fd);
        return rv;
    }
    link->fd = fd;
    return APR_SUCCESS;
}

static apr_status_t link_send(lem_link_t *link, keeper_op_t op,
                              const lem_id_t *id, apr_uint32_t idle_ms,
                              apr_uint32_t life_s, int fd)
{
    keeper_msg_t m;

    memset(&m, 0, sizeof(m));
    m.magic = KEEPER_MAGIC;
    m.op = op;
    m.slot = id->slot;
    m.idle_ms = idle_ms;
    m.life_s = life_s;
    memcpy(m.id, id->bytes, LEM_ID_BYTES);
    return send_with_fd(link->fd, &m, sizeof(m), fd) ? APR_EGENERAL
                                                     : APR_SUCCESS;
}

/* Wait at most `wait` for the keeper's answer; its words in `why`. */
static apr_status_t link_reply_why(lem_link_t *link,
                                   apr_interval_time_t wait,
                                   keeper_status_t *status, int *fd,
                                   char *why, apr_size_t whylen)
{
    keeper_reply_t r;
    size_t got = 0;
    apr_time_t until = apr_time_now() + wait;

    while (got < sizeof(r)) {
        struct pollfd pfd = { link->fd, POLLIN, 0 };
        apr_interval_time_t left = until - apr_time_now();
        ssize_t n;
        int rc;

        if (left <= 0) {
            return APR_TIMEUP;
        }
        rc = poll(&pfd, 1, (int)apr_time_as_msec(left) + 1);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc == 0) {
            return APR_TIMEUP;
        }
        n = recv_with_fd(link->fd, (char *)&r + got, sizeof(r) - got, fd);
        if (n <= 0) {
            return n == 0 ? APR_EOF : errno;
        }
        got += (size_t)n;
    }
    if (r.magic != KEEPER_MAGIC) {
        return APR_EGENERAL;
    }
    *status = (keeper_status_t)r.status;
    if (why) {
        r.why[sizeof(r.why) - 1] = '\0';
        apr_cpystrn(why, r.why, whylen);
    }
    return APR_SUCCESS;
}

static apr_status_t link_reply(lem_link_t *link, apr_interval_time_t wait,
                               keeper_status_t *status, int *fd)
{
    return link_reply_why(link, wait, status, fd, NULL, 0);
}

/* A time as a 32-bit count of `unit`s, saturated. */
static apr_uint32_t clamp32(apr_interval_time_t t, apr_interval_time_t unit)
{
    apr_uint64_t n = (apr_uint64_t)(t / unit);

    return n > 0xffffffffu ? 0xffffffffu : (apr_uint32_t)n;
}

apr_status_t lem_link_adopt(lem_link_t *link, const lem_id_t *id,
                            apr_interval_time_t idle_timeout,
                            apr_interval_time_t lifetime, int backend_fd)
{
    keeper_status_t status;
    int none = -1;
    apr_status_t rv;

    rv = link_send(link, OP_ADOPT, id, clamp32(idle_timeout, 1000),
                   clamp32(lifetime, APR_USEC_PER_SEC), backend_fd);
    if (rv == APR_SUCCESS) {
        rv = link_reply(link, apr_time_from_sec(10), &status, &none);
    }
    if (none >= 0) {
        close(none);
    }
    if (rv == APR_SUCCESS && status != ST_OK) {
        rv = APR_EGENERAL;
    }
    return rv;
}

apr_status_t lem_link_attach(lem_link_t *link, const lem_id_t *id,
                             apr_interval_time_t wait, int *backend_fd)
{
    keeper_status_t status;
    apr_status_t rv;

    *backend_fd = -1;
    rv = link_send(link, OP_ATTACH, id, 0, 0, -1);
    if (rv == APR_SUCCESS) {
        rv = link_reply(link, wait, &status, backend_fd);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (status == ST_OK && *backend_fd >= 0) {
        return APR_SUCCESS;
    }
    if (*backend_fd >= 0) {
        close(*backend_fd);
        *backend_fd = -1;
    }
    return status == ST_GONE ? APR_NOTFOUND : APR_EGENERAL;
}

apr_status_t lem_link_tls(lem_link_t *link, int net_fd, const char *host,
                          const char *ca_file, apr_interval_time_t wait,
                          int *plain_fd, char *why, apr_size_t whylen)
{
    keeper_msg_t m;
    keeper_status_t status;
    apr_status_t rv;

    *plain_fd = -1;
    memset(&m, 0, sizeof(m));
    m.magic = KEEPER_MAGIC;
    m.op = OP_TLS;
    apr_cpystrn(m.host, host, sizeof(m.host));
    apr_cpystrn(m.ca, ca_file ? ca_file : "", sizeof(m.ca));
    if (send_with_fd(link->fd, &m, sizeof(m), net_fd) != 0) {
        return APR_EGENERAL;
    }
    rv = link_reply_why(link, wait, &status, plain_fd, why, whylen);
    if (rv == APR_SUCCESS && (status != ST_OK || *plain_fd < 0)) {
        if (*plain_fd >= 0) {
            close(*plain_fd);
            *plain_fd = -1;
        }
        rv = APR_EGENERAL;
    }
    return rv;
}

apr_status_t lem_link_close_session(lem_link_t *link, const lem_id_t *id)
{
    keeper_status_t status;
    int none = -1;
    apr_status_t rv;

    rv = link_send(link, OP_CLOSE, id, 0, 0, -1);
    if (rv == APR_SUCCESS) {
        rv = link_reply(link, apr_time_from_sec(10), &status, &none);
    }
    if (none >= 0) {
        close(none);
    }
    return rv;
}

void lem_link_release(lem_link_t *link, int clean)
{
    lem_id_t none;

    if (link->fd >= 0 && clean) {
        memset(&none, 0, sizeof(none));
        link_send(link, OP_RELEASE, &none, 0, 0, -1);
    }
    if (link->fd >= 0) {
        close(link->fd);
        link->fd = -1;
    }
}
