/* http_multi.c - the asynchronous transport: libcurl multi, a bounded
 * queue, non-blocking retries, and exactly one outcome per request.
 *
 * libcurl is driven with curl_multi_socket_action: its socket and timer
 * callbacks keep an exact set of descriptors (any number, any value) with
 * their read/write interest, mirrored into one epoll descriptor on Linux
 * (signalr_multi_pollfd) so a caller's loop can wait on a single fd;
 * elsewhere poll() waits on the set itself. */
#define _POSIX_C_SOURCE 200809L
#include "curl_common.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#define FREE_EASY 32

typedef struct xfer {
    struct xfer *prev, *next;  /* in the active, waiting or done list */
    signalr_request req;
    sr__easy *easy;
    sr__sink sink;
    int attempt;
    long long due_ms;          /* waiting: when to try again */
    signalr_outcome out;
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
 * ADD and MOD fall back on each other). */
static int epoll_set(int epfd, curl_socket_t fd, int ev)
{
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    e.data.fd = fd;
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
    if (epoll_set(m->epfd, fd, ev))
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

/* Finish x with its outcome: to the done list, resources released. */
static void finish(signalr_multi *m, xfer *x)
{
    put_easy(m, x->easy);
    x->easy = NULL;
    sr__sink_free(&x->sink);
    signalr_request_clear(&x->req);
    push(&m->done, x);
}

static signalr_err start(signalr_multi *m, xfer *x, signalr_error *err)
{
    signalr_err rc;

    if (!x->easy)
        x->easy = get_easy(m);
    if (!x->easy)
        return sr__fail(err, SIGNALR_ENOMEM, "could not create a curl handle");
    rc = sr__curl_prepare(x->easy, &x->req, &m->http, &x->sink, err);
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
    if (!rc)
        rc = start(m, x, err);
    if (rc) {
        put_easy(m, x->easy);
        sr__sink_free(&x->sink);
        signalr_request_clear(&x->req);
        free(x);
        return rc;
    }
    x->out.id = ++m->next_id;
    x->out.op = op;
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
    x = calloc(1, sizeof(*x));
    if (!x)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    rc = signalr_request_build(m->c, op, p, time(NULL), &x->req, err);
    /* bad input first (EINVAL whatever the mode), then the mode's limit */
    if (!rc && signalr_op_returns_data(op))
        rc = sr__fail(err, SIGNALR_EUNSUPPORTED,
                      "%s answers with data, which outcomes do not carry: "
                      "call it on a blocking client", signalr_op_name(op));
    return enqueue(m, x, rc, op, id, err);
}

signalr_err signalr_multi_fetch(signalr_multi *m, signalr_request *req,
                                unsigned long *id, signalr_error *err)
{
    xfer *x;
    signalr_err rc;

    sr__ok(err);
    x = (rc = room(m, err)) ? NULL : calloc(1, sizeof(*x));
    if (!x) {
        signalr_request_clear(req);
        return rc ? rc : sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    x->req = *req;
    memset(req, 0, sizeof(*req));
    x->req.op = SIGNALR_OP_MAX;
    return enqueue(m, x, SIGNALR_OK, SIGNALR_OP_MAX, id, err);
}

/* A transfer ended: read the reply, then finish or schedule a retry. */
static void completed(signalr_multi *m, xfer *x, CURLcode cc)
{
    signalr_error *e = &x->out.err;
    long status = 0, delay;
    signalr_err rc;

    curl_multi_remove_handle(m->cm, x->easy->curl);
    unlink_x(&m->active, x);
    if (cc != CURLE_OK) {
        rc = sr__curl_error(x->easy->curl, cc, &x->sink, e);
    } else {
        signalr_reply r;

        curl_easy_getinfo(x->easy->curl, CURLINFO_RESPONSE_CODE, &status);
        r.status = (int)status;
        r.error_code = x->sink.error_code;
        r.body = x->sink.body;
        r.body_len = x->sink.body_len;
        x->out.status = (int)status;
        if (x->out.op != SIGNALR_OP_MAX)
            rc = signalr_reply_read(x->out.op, &r, &x->out.value, e);
        else if (status >= 500 || status == 429 || status == 408)
            rc = sr__fail(e, SIGNALR_ESTATUS, "HTTP %ld", status);
        else
            rc = SIGNALR_OK;
    }
    x->out.rc = rc;
    if (rc) {
        delay = signalr_retry_delay(x->out.op, m->has_retry ? &m->retry : NULL,
                                    x->attempt, rc, (int)status,
                                    rc == SIGNALR_ESTATUS
                                        ? x->sink.retry_after_s : -1);
        if (delay >= 0) {
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
    /* a fetch's reply is its result, whatever the status */
    if (x->out.op == SIGNALR_OP_MAX && (rc == SIGNALR_OK || rc == SIGNALR_ESTATUS)) {
        x->out.rc = SIGNALR_OK;
        sr__ok(e);
        free(x->out.body);
        x->out.body = sr__strndup(x->sink.body ? x->sink.body : "",
                                  x->sink.body_len);
        x->out.body_len = x->out.body ? x->sink.body_len : 0;
    }
    finish(m, x);
}

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
        signalr_err rc = act(m, ev[i].data.fd, f, err);

        if (rc)
            return rc;
    }
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
    if (m->timer_due >= 0)
        wait = m->timer_due <= now ? 0
               : (m->timer_due - now < wait ? (long)(m->timer_due - now) : wait);
    if (next >= 0 && next < wait)
        wait = next;
    /* nothing under way: do not sleep */
    if (!m->active.head && !m->waiting.head)
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
    free(x);
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
static void cancel_list(signalr_multi *m, list *l, int active)
{
    while (l->head) {
        xfer *x = l->head;
        curl_off_t pre = 0;
        long req_bytes = 0;
        int sent;

        unlink_x(l, x);
        if (active) {
            curl_easy_getinfo(x->easy->curl, CURLINFO_PRETRANSFER_TIME_T, &pre);
            curl_easy_getinfo(x->easy->curl, CURLINFO_REQUEST_SIZE, &req_bytes);
            curl_multi_remove_handle(m->cm, x->easy->curl);
        }
        sent = active && (pre > 0 || req_bytes > 0 || x->sink.up_pos > 0);
        x->out.rc = sr__fail(&x->out.err, SIGNALR_ECANCELED, "%s",
                             sent ? "canceled: the client was closed after "
                                    "the request was sent (it may have been "
                                    "delivered)"
                                  : "canceled: the client was closed before "
                                    "the request was sent");
        x->out.err.sent = sent;
        x->out.value = 0;
        finish(m, x);
    }
}

void signalr_multi_cancel(signalr_multi *m)
{
    cancel_list(m, &m->active, 1);
    cancel_list(m, &m->waiting, 0);
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

    for (i = 0; i < m->nsocks && (int)i < max; i++) {
        fds[i] = (int)m->socks[i].fd;
        events[i] = m->socks[i].ev;
    }
    return (int)m->nsocks;
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
    curl_multi_cleanup(m->cm);
    if (m->epfd >= 0)
        close(m->epfd);
    free(m->socks);
    free(m);
}
