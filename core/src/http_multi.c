/* http_multi.c - the asynchronous transport: a bounded queue, non-blocking
 * retries, and exactly one outcome per request, over two paths:
 *
 * - the lean path (http_lean.c; which requests: there), Linux: up to
 *   max_host_connections keep-alive sockets to the client's endpoint that
 *   libcurl connects (each with a multi handle of its own while it does)
 *   and we drive: a request is one curl_easy_send, its reply read with
 *   curl_easy_recv into http_reply as the socket becomes readable.
 *   Requests wait in order for a free connection; each attempt has the
 *   whole timeout_ms from when it was started, waiting included.
 * - the full libcurl path, driven with curl_multi_socket_action: its
 *   socket and timer callbacks keep an exact set of descriptors (any
 *   number, any value) with their read/write interest.
 *
 * Both paths' sockets are in one epoll descriptor on Linux
 * (signalr_multi_pollfd) so a caller's loop can wait on a single fd;
 * elsewhere poll() waits on libcurl's set itself (and only the full path
 * is used). */
#define _POSIX_C_SOURCE 200809L
#include "curl_common.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#define FREE_EASY 32
#define SPARE_XFERS 64

typedef struct xfer {
    struct xfer *prev, *next;  /* in the active, waiting or done list */
    signalr_request req;
    sr__easy *easy;
    sr__sink *sink;            /* the full path's; NULL on the lean one */
    int attempt;
    long long due_ms;          /* waiting: when to try again */
    signalr_outcome out;
    /* the lean path: the connection carrying this attempt (connecting or
     * exchanging), when the attempt started and when it times out */
    sr__conn *conn;
    int lean, resent;
    long long t0, deadline;
} xfer;

typedef struct {
    xfer *head, *tail;
} list;

struct signalr_multi {
    signalr_client *c;
    CURLM *cm;
    signalr_http_options http;
    signalr_retry_policy retry;
    int has_retry;
    size_t max_queue, count;   /* count: submitted, not yet collected */
    unsigned long next_id;
    list active, waiting, done;
    /* the lean path: attempts waiting for a connection (in order), those
     * on one; the connections (at most max_conns), and those closed while
     * events naming them may still be in hand (freed after) */
    list lean_q, lean_on;
    sr__conn *conns, *closed;
    int nconns, max_conns, lean_off, pumping;
    CURLSH *share;
    /* collected transfers kept for the next submissions (no malloc and
     * free a request), at most SPARE_XFERS */
    struct xfer *spare;
    int nspare;
    sr__easy *free_easy[FREE_EASY];
    int nfree;
    /* the sockets libcurl wants watched: fd and interest (1 read, 2
     * write), in no order; libcurl's timer (-1: none) */
    struct sock {
        curl_socket_t fd;
        int ev;
    } *socks;
    size_t nsocks, capsocks;
    long long timer_due;
    int epfd;                  /* -1 without epoll */
};

static void push(list *l, xfer *x)
{
    x->next = NULL;
    x->prev = l->tail;
    if (l->tail)
        l->tail->next = x;
    else
        l->head = x;
    l->tail = x;
}

static void unlink_x(list *l, xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->tail = x->prev;
    x->prev = x->next = NULL;
}

/* ===== libcurl's sockets and timer ===== */

#ifdef __linux__
/* Mirror one socket's interest into the epoll set (fds may be reused:
 * ADD and MOD fall back on each other).  The event's data is a lean
 * connection (a pointer: its low bit 0) or libcurl's socket (fd << 1 | 1). */
static int epoll_set(int epfd, curl_socket_t fd, int ev, sr__conn *c)
{
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    if (c)
        e.data.ptr = c;
    else
        e.data.u64 = (uint64_t)fd << 1 | 1u;
    e.events = (ev & 1 ? EPOLLIN : 0u) | (ev & 2 ? EPOLLOUT : 0u);
    if (!ev)
        return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &e) == 0 || errno == ENOENT ||
               errno == EBADF ? 0 : -1;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e) == 0)
        return 0;
    if (errno == ENOENT && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) == 0)
        return 0;
    return -1;
}
#endif

static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud,
                     void *sockp)
{
    signalr_multi *m = ud;
    int ev = what == CURL_POLL_REMOVE ? 0
             : (what & CURL_POLL_IN ? 1 : 0) | (what & CURL_POLL_OUT ? 2 : 0);
    size_t i;

    (void)e;
    (void)sockp;
    for (i = 0; i < m->nsocks && m->socks[i].fd != fd; i++)
        ;
    if (!ev) {
        if (i < m->nsocks)
            m->socks[i] = m->socks[--m->nsocks];
    } else {
        if (i == m->nsocks) {
            if (m->nsocks == m->capsocks) {
                size_t cap = m->capsocks ? m->capsocks * 2 : 16;
                struct sock *ns = realloc(m->socks, cap * sizeof(*ns));

                if (!ns)
                    return -1; /* libcurl fails the transfer */
                m->socks = ns;
                m->capsocks = cap;
            }
            m->socks[m->nsocks++].fd = fd;
        }
        m->socks[i].ev = ev;
    }
#ifdef __linux__
    if (epoll_set(m->epfd, fd, ev, NULL))
        return -1;
#endif
    return 0;
}

static int on_timer(CURLM *cm, long timeout_ms, void *ud)
{
    signalr_multi *m = ud;

    (void)cm;
    m->timer_due = timeout_ms < 0 ? -1 : sr__now_ms() + timeout_ms;
    return 0;
}

signalr_err signalr_multi_new(signalr_client *c, const signalr_http_options *o,
                              const signalr_retry_policy *p, size_t max_queue,
                              long max_host_connections, signalr_multi **out,
                              signalr_error *err)
{
    signalr_multi *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (!m)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    m->cm = curl_multi_init();
    if (!m->cm) {
        free(m);
        return sr__fail(err, SIGNALR_ENOMEM, "could not create a curl multi");
    }
    m->c = c;
    if (o)
        m->http = *o;
    else
        m->http.verify_tls = 1;
    if (p) {
        m->retry = *p;
        m->has_retry = 1;
    }
    m->max_queue = max_queue ? max_queue : 1024;
    m->max_conns = max_host_connections > 0 ? (int)max_host_connections : 8;
    m->timer_due = -1;
    m->epfd = -1;
#ifdef __linux__
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0) {
        curl_multi_cleanup(m->cm);
        free(m);
        return sr__fail(err, SIGNALR_ENOMEM, "could not create an epoll "
                        "descriptor: %s", strerror(errno));
    }
#endif
    curl_multi_setopt(m->cm, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->cm, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->cm, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(m->cm, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->cm, CURLMOPT_MAX_HOST_CONNECTIONS,
                      max_host_connections > 0 ? max_host_connections : 8L);
    curl_multi_setopt(m->cm, CURLMOPT_MAXCONNECTS,
                      max_host_connections > 0 ? max_host_connections : 8L);
    *out = m;
    return SIGNALR_OK;
}

/* A zeroed transfer: a spare one, or a new one (NULL: out of memory). */
static xfer *new_xfer(signalr_multi *m)
{
    xfer *x = m->spare;

    if (!x)
        return calloc(1, sizeof(*x));
    m->spare = x->next;
    m->nspare--;
    memset(x, 0, sizeof(*x));
    return x;
}

static sr__easy *get_easy(signalr_multi *m)
{
    return m->nfree ? m->free_easy[--m->nfree] : sr__easy_new();
}

static void put_easy(signalr_multi *m, sr__easy *e)
{
    if (!e)
        return;
    if (m->nfree < FREE_EASY)
        m->free_easy[m->nfree++] = e;
    else
        sr__easy_free(e);
}

static void drop_sink(xfer *x)
{
    if (x->sink) {
        sr__sink_free(x->sink);
        free(x->sink);
        x->sink = NULL;
    }
}

/* Finish x with its outcome: to the done list, resources released. */
static void finish(signalr_multi *m, xfer *x)
{
    put_easy(m, x->easy);
    x->easy = NULL;
    x->conn = NULL;
    drop_sink(x);
    signalr_request_clear(&x->req);
    push(&m->done, x);
}

#ifdef __linux__
static signalr_err lean_start(signalr_multi *m, xfer *x, signalr_error *err);
#endif

static signalr_err start(signalr_multi *m, xfer *x, signalr_error *err)
{
    signalr_err rc;

#ifdef __linux__
    if (!m->lean_off && x->lean >= 0 && sr__lean_eligible(&x->req)) {
        rc = lean_start(m, x, err);
        if (rc || x->lean)
            return rc;
    }
#endif
    if (!x->easy)
        x->easy = get_easy(m);
    if (!x->easy)
        return sr__fail(err, SIGNALR_ENOMEM, "could not create a curl handle");
    if (!x->sink && !(x->sink = calloc(1, sizeof(*x->sink))))
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    rc = sr__curl_prepare(x->easy, &x->req, &m->http, x->sink, err);
    if (rc)
        return rc;
    curl_easy_setopt(x->easy->curl, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(m->cm, x->easy->curl) != CURLM_OK)
        return sr__fail(err, SIGNALR_EHTTP, "curl_multi_add_handle failed");
    x->attempt++;
    push(&m->active, x);
    return SIGNALR_OK;
}

/* Room for one more outcome?  EQUEUEFULL when max_queue are pending. */
static signalr_err room(const signalr_multi *m, signalr_error *err)
{
    if (m->count < m->max_queue)
        return SIGNALR_OK;
    return sr__fail(err, SIGNALR_EQUEUEFULL,
                    "queue full: %lu requests are pending; poll or flush "
                    "before sending more", (unsigned long)m->count);
}

/* Start x (its request built, or rc the build's failure) and give it its
 * id; on failure x and what it holds are released. */
static signalr_err enqueue(signalr_multi *m, xfer *x, signalr_err rc,
                           signalr_op op, unsigned long *id,
                           signalr_error *err)
{
    x->out.op = op; /* first: a first attempt refused in start() logs it */
    if (!rc)
        rc = start(m, x, err);
    if (rc) {
        put_easy(m, x->easy);
        drop_sink(x);
        signalr_request_clear(&x->req);
        free(x);
        return rc;
    }
    x->out.id = ++m->next_id;
    *id = x->out.id;
    m->count++;
    return SIGNALR_OK;
}

signalr_err signalr_multi_submit(signalr_multi *m, signalr_op op,
                                 const signalr_params *p, unsigned long *id,
                                 signalr_error *err)
{
    xfer *x;
    signalr_err rc;

    sr__ok(err);
    if ((rc = room(m, err)))
        return rc;
    x = new_xfer(m);
    if (!x)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    rc = signalr_request_build(m->c, op, p, time(NULL), &x->req, err);
    return enqueue(m, x, rc, op, id, err);
}

signalr_err signalr_multi_fetch(signalr_multi *m, signalr_request *req,
                                unsigned long *id, signalr_error *err)
{
    xfer *x;
    signalr_err rc;

    sr__ok(err);
    x = (rc = room(m, err)) ? NULL : new_xfer(m);
    if (!x) {
        signalr_request_clear(req);
        return rc ? rc : sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    x->req = *req;
    memset(req, 0, sizeof(*req));
    x->req.op = SIGNALR_OP_MAX;
    return enqueue(m, x, SIGNALR_OK, SIGNALR_OP_MAX, id, err);
}

/* An attempt ended: rc its transport failure (x->out.err filled) or
 * SIGNALR_OK with the reply's status, x-ms-error-code, Retry-After and
 * body.  Read the reply, then finish x or schedule its retry. */
static void settle(signalr_multi *m, xfer *x, signalr_err rc, int status,
                   const char *error_code, long retry_after,
                   const char *body, size_t body_len)
{
    signalr_error *e = &x->out.err;
    long delay;

    if (!rc) {
        signalr_reply r;

        r.status = status;
        r.error_code = error_code;
        r.body = body;
        r.body_len = body_len;
        x->out.status = status;
        if (x->out.op != SIGNALR_OP_MAX)
            rc = signalr_reply_read(x->out.op, &r, &x->out.value, e);
        else if (status >= 500 || status == 429 || status == 408)
            rc = sr__fail(e, SIGNALR_ESTATUS, "HTTP %d", status);
        else
            rc = SIGNALR_OK;
    }
    x->out.rc = rc;
    if (rc) {
        delay = signalr_retry_delay(x->out.op, m->has_retry ? &m->retry : NULL,
                                    x->attempt, rc, status,
                                    rc == SIGNALR_ESTATUS ? retry_after : -1);
        if (delay >= 0) {
            sr__log_retry(&m->http, x->out.op, x->attempt, rc, e, delay);
            x->due_ms = sr__now_ms() + delay;
            push(&m->waiting, x);
            return;
        }
        if (x->attempt > 1) {
            size_t n = strlen(e->msg);

            snprintf(e->msg + n, sizeof(e->msg) - n, " (after %d attempts)",
                     x->attempt);
        }
    } else {
        sr__ok(e);
    }
    /* a fetch's reply is its result, whatever the status; an operation
     * that answers with data carries its body when it succeeded */
    if ((x->out.op == SIGNALR_OP_MAX &&
         (rc == SIGNALR_OK || rc == SIGNALR_ESTATUS)) ||
        (rc == SIGNALR_OK && x->out.op != SIGNALR_OP_MAX &&
         signalr_op_returns_data(x->out.op))) {
        x->out.rc = SIGNALR_OK;
        sr__ok(e);
        free(x->out.body);
        x->out.body = sr__strndup(body ? body : "", body_len);
        x->out.body_len = x->out.body ? body_len : 0;
        if (!x->out.body)
            x->out.rc = sr__fail(e, SIGNALR_ENOMEM, "out of memory");
    }
    finish(m, x);
}

/* A libcurl transfer ended. */
static void completed(signalr_multi *m, xfer *x, CURLcode cc)
{
    long status = 0;

    curl_multi_remove_handle(m->cm, x->easy->curl);
    unlink_x(&m->active, x);
    if (cc != CURLE_OK) {
        settle(m, x, sr__curl_error(x->easy->curl, cc, x->sink, &x->out.err),
               0, NULL, -1, NULL, 0);
        return;
    }
    curl_easy_getinfo(x->easy->curl, CURLINFO_RESPONSE_CODE, &status);
    settle(m, x, SIGNALR_OK, (int)status, x->sink->error_code,
           x->sink->retry_after_s, x->sink->body, x->sink->body_len);
}

#ifdef __linux__
/* ===== the lean path ===== */

/* Watch c's socket fd for ev (1 read, 2 write; 0: no more). */
static int conn_watch(sr__conn *c, curl_socket_t fd, int ev)
{
    signalr_multi *m = c->owner;

    return epoll_set(m->epfd, fd, ev, c);
}

/* Close c: out of the set and the epoll descriptor; freed by reap() once
 * no event in hand can name it. */
static void conn_close(signalr_multi *m, sr__conn *c)
{
    sr__conn **p;
    int i;

    for (p = &m->conns; *p && *p != c; p = &(*p)->next)
        ;
    if (*p) {
        *p = c->next;
        m->nconns--;
    }
    if (c->fd != CURL_SOCKET_BAD)
        epoll_set(m->epfd, c->fd, 0, c);
    for (i = 0; i < c->ncfds; i++)
        epoll_set(m->epfd, c->cfds[i], 0, c);
    c->watch = NULL;
    c->state = SR__CONN_DEAD;
    c->job = NULL;
    c->next = m->closed;
    m->closed = c;
}

static void reap(signalr_multi *m)
{
    while (m->closed) {
        sr__conn *c = m->closed;

        m->closed = c->next;
        sr__conn_free(c);
    }
}

static void lean_dispatch(signalr_multi *m, xfer *x);

/* Hand waiting attempts the connections that are idle or may be opened.
 * A loop, not recursion: whatever frees a connection while it runs (a
 * connect refused at once) is picked up by the same loop. */
static void lean_pump(signalr_multi *m)
{
    size_t guard = m->count + 1;
    xfer *x;

    if (m->pumping)
        return;
    m->pumping = 1;
    while ((x = m->lean_q.head) && guard--) {
        sr__conn *c;

        for (c = m->conns; c; c = c->next)
            if (c->state == SR__CONN_IDLE && !c->job)
                break;
        if (!c && m->nconns >= m->max_conns)
            break;
        unlink_x(&m->lean_q, x);
        lean_dispatch(m, x);
    }
    m->pumping = 0;
}

/* x's attempt failed on its connection c (how: SR__FAIL_*): c is closed;
 * x is written again elsewhere when that is safe, else settled. */
static void lean_failed(signalr_multi *m, xfer *x, sr__conn *c, int how)
{
    int resend = 0;
    signalr_err rc;

    rc = sr__conn_fail(c, &x->req, how, (long)(sr__now_ms() - x->t0),
                       !x->resent, &resend, &x->out.err);
    if (how == SR__FAIL_BAD)
        m->lean_off = 1; /* the rest take the full path */
    unlink_x(&m->lean_on, x);
    x->conn = NULL;
    conn_close(m, c);
    if (resend) {
        x->resent = 1;
        lean_dispatch(m, x);
    } else {
        settle(m, x, rc, 0, NULL, -1, NULL, 0);
    }
    lean_pump(m); /* a connection slot is free */
}

/* Write x's request on c (connected, idle). */
static void lean_begin(signalr_multi *m, xfer *x, sr__conn *c)
{
    size_t keep = signalr_op_returns_data(x->req.op) ? 8 * 1024 * 1024
                                                     : 64 * 1024;
    int r;

    x->conn = c;
    c->job = x;
    if (sr__conn_begin(c, &x->req, keep, &x->out.err)) {
        /* nothing was written: c stays idle */
        x->conn = NULL;
        c->job = NULL;
        unlink_x(&m->lean_on, x);
        settle(m, x, SIGNALR_ENOMEM, 0, NULL, -1, NULL, 0);
        lean_pump(m);
        return;
    }
    r = sr__conn_write(c);
    if (r < 0) {
        lean_failed(m, x, c, SR__FAIL_WRITE);
    } else if (!r) {
        c->ev = 3;
        epoll_set(m->epfd, c->fd, 3, c);
    }
}

/* c connected: watch its socket, then carry its attempt or the next. */
static void conn_connected(signalr_multi *m, sr__conn *c)
{
    xfer *x = c->job;

    c->watch = NULL; /* its own multi is done with the socket */
    c->ncfds = 0;    /* libcurl removed (and closed) the others */
    c->ev = 1;
    epoll_set(m->epfd, c->fd, 1, c);
    if (x)
        lean_begin(m, x, c);
    else
        lean_pump(m);
}

/* c's connect failed: its attempt (if still waiting on it) fails with
 * the connect's error; nothing was sent. */
static void conn_refused(signalr_multi *m, sr__conn *c,
                         const signalr_error *e)
{
    xfer *x = c->job;

    conn_close(m, c);
    if (x) {
        unlink_x(&m->lean_on, x);
        x->conn = NULL;
        x->out.err = *e;
        settle(m, x, e->code, 0, NULL, -1, NULL, 0);
    }
    lean_pump(m);
}

/* Drive c's connect (timer: its timer is due). */
static void conn_connect(signalr_multi *m, sr__conn *c, int timer)
{
    signalr_error e;
    int r;

    sr__ok(&e);
    r = sr__conn_connect_step(c, timer, &e);
    if (r > 0)
        conn_connected(m, c);
    else if (r < 0)
        conn_refused(m, c, &e);
}

/* Put x's attempt on an idle connection, a new one, or in the queue. */
static void lean_dispatch(signalr_multi *m, xfer *x)
{
    sr__conn *c, *nc;
    long left;
    signalr_err rc;

    /* attempts are waiting: no connection is idle (each that becomes so
     * takes the first of them), and x goes after them */
    if (m->lean_q.head && m->nconns >= m->max_conns) {
        push(&m->lean_q, x);
        return;
    }
    for (c = m->conns; c; c = nc) {
        nc = c->next;
        if (c->state != SR__CONN_IDLE || c->job)
            continue;
        if (!sr__conn_alive(c, 0)) {
            conn_close(m, c);
            continue;
        }
        push(&m->lean_on, x);
        lean_begin(m, x, c);
        return;
    }
    if (m->nconns >= m->max_conns) {
        push(&m->lean_q, x);
        return;
    }
    if (sr__lean_refused(&m->http)) {
        /* the full path: a proxy in the environment; no attempt yet */
        x->lean = -1;
        x->attempt--;
        if (start(m, x, &x->out.err)) {
            x->out.rc = x->out.err.code;
            finish(m, x);
        }
        return;
    }
    left = (long)(x->deadline - sr__now_ms());
    if (left < 1)
        left = 1;
    if (!m->share)
        m->share = sr__share_new();
    {
        long timeout, conn_timeout;

        sr__http_timeouts(&m->http, &timeout, &conn_timeout);
        rc = sr__conn_start(&x->req, &m->http, m->share,
                            conn_timeout < left ? conn_timeout : left, left,
                            conn_watch, m, &c, &x->out.err);
    }
    if (rc) {
        settle(m, x, rc, 0, NULL, -1, NULL, 0);
        return;
    }
    c->next = m->conns;
    m->conns = c;
    m->nconns++;
    c->job = x;
    x->conn = c;
    push(&m->lean_on, x);
    conn_connect(m, c, 1); /* under way now, not at the next step */
}

/* Start x's attempt on the lean path. */
static signalr_err lean_start(signalr_multi *m, xfer *x, signalr_error *err)
{
    long timeout, conn_timeout;

    (void)err;
    sr__http_timeouts(&m->http, &timeout, &conn_timeout);
    x->lean = 1;
    x->resent = 0;
    x->attempt++;
    x->t0 = sr__now_ms();
    x->deadline = x->t0 + timeout;
    lean_dispatch(m, x);
    return SIGNALR_OK;
}

/* Socket activity on c (events: epoll's). */
static void conn_event(signalr_multi *m, sr__conn *c, uint32_t events)
{
    xfer *x = c->job;
    int r;

    if (c->state == SR__CONN_DEAD)
        return; /* closed earlier in this batch */
    if (c->state == SR__CONN_CONNECTING) {
        conn_connect(m, c, 0);
        return;
    }
    if (c->state == SR__CONN_IDLE || !x) {
        /* an idle connection became readable: closed, or worse */
        if (!sr__conn_alive(c, 1)) {
            conn_close(m, c);
            lean_pump(m);
        }
        return;
    }
    if (c->out_pos < c->out_len) {
        r = sr__conn_write(c);
        if (r < 0) {
            lean_failed(m, x, c, SR__FAIL_WRITE);
            return;
        }
        if (!r)
            return;
        c->ev = 1;
        epoll_set(m->epfd, c->fd, 1, c);
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    r = sr__conn_read(c);
    if (r == SR__HR_MORE)
        return;
    if (r != SR__HR_DONE) {
        lean_failed(m, x, c, r == SR__HR_BAD ? SR__FAIL_BAD : SR__FAIL_READ);
        return;
    }
    sr__conn_done(c);
    unlink_x(&m->lean_on, x);
    x->conn = NULL;
    c->job = NULL;
    settle(m, x, SIGNALR_OK, c->rep.status, c->rep.error_code,
           c->rep.retry_after_s, c->rep.body, c->rep.body_len);
    if (c->state != SR__CONN_IDLE) {
        conn_close(m, c);
    } else if ((x = m->lean_q.head)) {
        /* straight on to the next waiting attempt: c was busy a moment
         * ago, so no look at it is due */
        unlink_x(&m->lean_q, x);
        push(&m->lean_on, x);
        lean_begin(m, x, c);
        return;
    }
    lean_pump(m);
}

/* Attempts past their deadline fail, and connects whose timer is due are
 * driven; returns ms until the next of these, or -1. */
static long lean_timers(signalr_multi *m, int act_now)
{
    long long now = sr__now_ms(), next = -1;
    sr__conn *c, *nc;
    xfer *x, *nx;

    for (x = m->lean_on.head; x; x = nx) {
        nx = x->next;
        if (act_now && x->deadline <= now) {
            if (x->conn && x->conn->state == SR__CONN_CONNECTING) {
                /* the connect goes on for whoever comes next */
                sr__conn *cc = x->conn;

                cc->job = NULL;
                unlink_x(&m->lean_on, x);
                x->conn = NULL;
                settle(m, x, sr__fail(&x->out.err, SIGNALR_ECONNECT,
                                      "connect timed out after %ld "
                                      "milliseconds",
                                      (long)(now - x->t0)),
                       0, NULL, -1, NULL, 0);
            } else if (x->conn) {
                lean_failed(m, x, x->conn, SR__FAIL_TIMEOUT);
            }
            continue;
        }
        if (next < 0 || x->deadline < next)
            next = x->deadline;
    }
    while (act_now && (x = m->lean_q.head) && x->deadline <= now) {
        unlink_x(&m->lean_q, x);
        settle(m, x, sr__fail(&x->out.err, SIGNALR_ECONNECT,
                              "connect timed out: no connection was free "
                              "within %ld milliseconds (request not sent)",
                              (long)(now - x->t0)),
               0, NULL, -1, NULL, 0);
    }
    if (m->lean_q.head &&
        (next < 0 || m->lean_q.head->deadline < next))
        next = m->lean_q.head->deadline;
    for (c = m->conns; c; c = nc) {
        nc = c->next;
        if (c->state != SR__CONN_CONNECTING || c->ctimer_due < 0)
            continue;
        if (act_now && c->ctimer_due <= now) {
            conn_connect(m, c, 1);
            continue;
        }
        if (next < 0 || c->ctimer_due < next)
            next = c->ctimer_due;
    }
    if (next < 0)
        return -1;
    return next > now ? (long)(next - now) : 0;
}

/* x ends with ECANCELED (who: what canceled it; sent: whether the
 * request went out, wholly or in part). */
static void canceled(signalr_multi *m, xfer *x, const char *who, int sent)
{
    x->out.rc = sr__fail(&x->out.err, SIGNALR_ECANCELED, "canceled: %s %s",
                         who, sent ? "after the request was sent (it may "
                                     "have been delivered)"
                                   : "before the request was sent");
    x->out.err.sent = sent;
    x->out.value = 0;
    finish(m, x);
}

/* End one lean attempt (in lean_q when queued, else in lean_on). */
static void lean_cancel_one(signalr_multi *m, xfer *x, int queued,
                            const char *who)
{
    int sent = !queued && x->conn && x->conn->state == SR__CONN_BUSY &&
               x->conn->out_pos > 0;

    unlink_x(queued ? &m->lean_q : &m->lean_on, x);
    if (x->conn) {
        sr__conn *c = x->conn;

        x->conn = NULL;
        c->job = NULL;
        /* a connection mid-exchange or mid-connect cannot carry another */
        conn_close(m, c);
    }
    canceled(m, x, who, sent);
}

/* End the lean path's attempts with ECANCELED; close its connections. */
static void lean_cancel(signalr_multi *m)
{
    while (m->lean_q.head)
        lean_cancel_one(m, m->lean_q.head, 1, "the client was closed");
    while (m->lean_on.head)
        lean_cancel_one(m, m->lean_on.head, 0, "the client was closed");
}
#endif

/* Restart the retries that are due; returns ms until the next one, or -1. */
static long due_retries(signalr_multi *m)
{
    long long now = sr__now_ms();
    long next = -1;
    xfer *x = m->waiting.head;

    while (x) {
        xfer *nx = x->next;

        if (x->due_ms <= now) {
            unlink_x(&m->waiting, x);
            if (start(m, x, &x->out.err)) {
                x->out.rc = x->out.err.code;
                finish(m, x);
            }
        } else if (next < 0 || x->due_ms - now < next) {
            next = (long)(x->due_ms - now);
        }
        x = nx;
    }
    return next;
}

/* Hand libcurl what happened on a socket (or its timer: CURL_SOCKET_TIMEOUT). */
static signalr_err act(signalr_multi *m, curl_socket_t fd, int flags,
                       signalr_error *err)
{
    int running = 0;

    if (curl_multi_socket_action(m->cm, fd, flags, &running) != CURLM_OK)
        return sr__fail(err, SIGNALR_EHTTP, "curl_multi_socket_action failed");
    return SIGNALR_OK;
}

/* Wait up to wait_ms for socket activity (0: just look) and act on it. */
static signalr_err wait_sockets(signalr_multi *m, long wait_ms,
                                signalr_error *err)
{
#ifdef __linux__
    struct epoll_event ev[64];
    int n, i;

    n = epoll_wait(m->epfd, ev, 64, (int)wait_ms);
    if (n < 0 && errno != EINTR)
        return sr__fail(err, SIGNALR_EHTTP, "epoll_wait failed: %s",
                        strerror(errno));
    for (i = 0; i < n; i++) {
        int f = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        signalr_err rc;

        if (!(ev[i].data.u64 & 1u)) {
            conn_event(m, ev[i].data.ptr, ev[i].events);
            continue;
        }
        rc = act(m, (curl_socket_t)(ev[i].data.u64 >> 1), f, err);
        if (rc) {
            reap(m);
            return rc;
        }
    }
    reap(m); /* no event in hand names a closed connection now */
    return SIGNALR_OK;
#else
    struct pollfd *p = NULL;
    size_t i, n = m->nsocks;
    int r;
    signalr_err rc = SIGNALR_OK;

    if (n && !(p = calloc(n, sizeof(*p))))
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        p[i].fd = m->socks[i].fd;
        p[i].events = (short)((m->socks[i].ev & 1 ? POLLIN : 0) |
                              (m->socks[i].ev & 2 ? POLLOUT : 0));
    }
    r = poll(p, (nfds_t)n, (int)wait_ms);
    if (r < 0 && errno != EINTR)
        rc = sr__fail(err, SIGNALR_EHTTP, "poll failed: %s", strerror(errno));
    for (i = 0; r > 0 && !rc && i < n; i++) {
        int f = (p[i].revents & POLLIN ? CURL_CSELECT_IN : 0) |
                (p[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
                (p[i].revents & (POLLERR | POLLHUP | POLLNVAL)
                     ? CURL_CSELECT_ERR : 0);

        if (f)
            rc = act(m, p[i].fd, f, err);
    }
    free(p);
    return rc;
#endif
}

signalr_err signalr_multi_step(signalr_multi *m, long timeout_ms,
                               signalr_error *err)
{
    long next = due_retries(m), wait = timeout_ms > 0 ? timeout_ms : 0;
    long long now = sr__now_ms();
    signalr_err rc;
    CURLMsg *msg;
    int left;

    sr__ok(err);
#ifdef __linux__
    if (wait > 0) {
        long t = lean_timers(m, 0);

        if (t >= 0 && (next < 0 || t < next))
            next = t;
    }
#endif
    if (m->timer_due >= 0)
        wait = m->timer_due <= now ? 0
               : (m->timer_due - now < wait ? (long)(m->timer_due - now) : wait);
    if (next >= 0 && next < wait)
        wait = next;
    /* nothing under way: do not sleep */
    if (!m->active.head && !m->waiting.head && !m->lean_on.head &&
        !m->lean_q.head)
        wait = 0;
    rc = wait_sockets(m, wait, err);
    if (rc)
        return rc;
    if (m->timer_due >= 0 && m->timer_due <= sr__now_ms()) {
        m->timer_due = -1;
        rc = act(m, CURL_SOCKET_TIMEOUT, 0, err);
        if (rc)
            return rc;
    }
    while ((msg = curl_multi_info_read(m->cm, &left))) {
        xfer *x = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x)
            completed(m, x, msg->data.result);
    }
#ifdef __linux__
    lean_timers(m, 1);
    reap(m);
#endif
    due_retries(m);
    return SIGNALR_OK;
}

int signalr_multi_next(signalr_multi *m, signalr_outcome *out)
{
    xfer *x = m->done.head;

    if (!x)
        return 0;
    unlink_x(&m->done, x);
    *out = x->out;
    if (m->nspare < SPARE_XFERS) {
        x->next = m->spare;
        m->spare = x;
        m->nspare++;
    } else {
        free(x);
    }
    m->count--;
    return 1;
}

size_t signalr_multi_pending(const signalr_multi *m)
{
    return m->count;
}

/* End every transfer of l with ECANCELED.  Active ones may have been
 * sent (their connection was set up: the request went or was going out);
 * waiting ones are retries whose attempts the retry rule judged to have
 * done no work. */
static void cancel_x(signalr_multi *m, list *l, xfer *x, int active,
                     const char *who)
{
    curl_off_t pre = 0;
    long req_bytes = 0;
    int sent;

    unlink_x(l, x);
    if (active) {
        curl_easy_getinfo(x->easy->curl, CURLINFO_PRETRANSFER_TIME_T, &pre);
        curl_easy_getinfo(x->easy->curl, CURLINFO_REQUEST_SIZE, &req_bytes);
        curl_multi_remove_handle(m->cm, x->easy->curl);
    }
    sent = active && (pre > 0 || req_bytes > 0 ||
                      (x->sink && x->sink->up_pos > 0));
    canceled(m, x, who, sent);
}

static void cancel_list(signalr_multi *m, list *l, int active)
{
    while (l->head)
        cancel_x(m, l, l->head, active, "the client was closed");
}

void signalr_multi_cancel(signalr_multi *m)
{
#ifdef __linux__
    lean_cancel(m);
    reap(m);
#endif
    cancel_list(m, &m->active, 1);
    cancel_list(m, &m->waiting, 0);
}

static xfer *find(const list *l, unsigned long id)
{
    xfer *x;

    for (x = l->head; x; x = x->next)
        if (x->out.id == id)
            return x;
    return NULL;
}

int signalr_multi_cancel_one(signalr_multi *m, unsigned long id)
{
    const char *who = "with req:cancel()";
    xfer *x;

#ifdef __linux__
    if ((x = find(&m->lean_q, id))) {
        lean_cancel_one(m, x, 1, who);
        lean_pump(m);
        return 1;
    }
    if ((x = find(&m->lean_on, id))) {
        lean_cancel_one(m, x, 0, who);
        lean_pump(m);
        return 1;
    }
#endif
    if ((x = find(&m->active, id))) {
        cancel_x(m, &m->active, x, 1, who);
        return 1;
    }
    if ((x = find(&m->waiting, id))) {
        cancel_x(m, &m->waiting, x, 0, who);
        return 1;
    }
    return 0;
}

long signalr_multi_timeout(signalr_multi *m)
{
    long t = -1;
    long long now = sr__now_ms();
    xfer *x;

    if (m->done.head)
        return 0;
    if (m->timer_due >= 0)
        t = m->timer_due > now ? (long)(m->timer_due - now) : 0;
#ifdef __linux__
    {
        long lt = lean_timers(m, 0);

        if (lt >= 0 && (t < 0 || lt < t))
            t = lt;
    }
#endif
    for (x = m->waiting.head; x; x = x->next) {
        long d = x->due_ms > now ? (long)(x->due_ms - now) : 0;

        if (t < 0 || d < t)
            t = d;
    }
    return t;
}

int signalr_multi_fds(signalr_multi *m, int *fds, int *events, int max)
{
    size_t i;
    int n;
    sr__conn *c;

    for (i = 0; i < m->nsocks && (int)i < max; i++) {
        fds[i] = (int)m->socks[i].fd;
        events[i] = m->socks[i].ev;
    }
    n = (int)m->nsocks;
    /* the lean connections at work: read, and write while a request
     * waits for room (idle ones need no watching: each is peeked at
     * before reuse; the epoll set still has them, so that a close there
     * is cleaned up at the next step) */
    for (c = m->conns; c; c = c->next) {
        int k;

        if (c->state == SR__CONN_CONNECTING) {
            for (k = 0; k < c->ncfds; k++, n++)
                if (n < max) {
                    fds[n] = (int)c->cfds[k];
                    events[n] = c->cwhat[k];
                }
        } else if (c->fd != CURL_SOCKET_BAD && c->job) {
            if (n < max) {
                fds[n] = (int)c->fd;
                events[n] = c->ev ? c->ev : 1;
            }
            n++;
        }
    }
    return n;
}

int signalr_multi_pollfd(const signalr_multi *m)
{
    return m->epfd;
}

void signalr_multi_free(signalr_multi *m)
{
    signalr_outcome o;

    if (!m)
        return;
    signalr_multi_cancel(m);
    while (signalr_multi_next(m, &o))
        free(o.body);
    while (m->nfree)
        sr__easy_free(m->free_easy[--m->nfree]);
#ifdef __linux__
    while (m->conns)
        conn_close(m, m->conns);
    reap(m);
#endif
    if (m->share)
        curl_share_cleanup(m->share);
    while (m->spare) {
        xfer *x = m->spare;

        m->spare = x->next;
        free(x);
    }
    curl_multi_cleanup(m->cm);
    if (m->epfd >= 0)
        close(m->epfd);
    free(m->socks);
    free(m);
}
