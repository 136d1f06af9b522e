/* hub_sim.c - the lean service of the hub-server benchmark
 * (bench/hub_server.sh): it stands where Azure SignalR Service stands for a
 * hub server in Default mode, and simulates the clients itself, so that
 * only the hub server's cost is measured.
 *
 *   hub_sim sim PORT [-n clients] [-c server_conns] [-r rate] [-s secs]
 *                    [-w warmup] [-P pidfile]
 *     Listens on 127.0.0.1:PORT, accepts the hub server's WebSocket upgrade
 *     on /server/ (any token), answers its HandshakeRequest [1, ...] with
 *     [2, ""], and once `-c` server connections are open opens `-n` clients
 *     (OpenConnection, then ConnectionData with the JSON hub handshake),
 *     spread over them.  Then each client invokes Add(2, 3):
 *       -r 0 (closed loop): each client keeps one invocation in flight;
 *       -r R (open loop): R invocations/s in all, each on a fixed schedule
 *       whatever the answers, round trips counted from the scheduled time
 *       (so a late answer delays nothing and is not hidden).
 *     After `-w` seconds of warm-up it measures `-s` seconds and prints
 *       completions/s p50_us p99_us max_us server_cpu_us sim_cpu_us samples
 *     (round trips of the invocations sent in the window; CPU per
 *     invocation of the process whose pid is in pidfile, read from
 *     /proc/PID/schedstat at the window's ends, and of this one; 0 without
 *     -P).  Exit 1 on a protocol error, a lost connection, a wrong result
 *     or a timeout.
 *
 *   hub_sim echo PORT [-c conns]
 *     The floor: a trivial hub server in C.  It opens `-c` server
 *     connections to PORT and answers every client handshake with {} and
 *     every invocation with the Completion result 5, one write per read,
 *     until the simulator goes away (10 minutes at most).
 *
 * WebSocket framing is written by hand here (RFC 6455 §5: the few frame
 * shapes these two peers exchange); MessagePack likewise, for the handful
 * of service-protocol messages involved.  Caveats: loopback only, one
 * thread, no TLS, a bench tool that trusts its peer's frame sizes; it
 * reads the completion's invocation id by finding "invocationId":" in the
 * JSON text, not by parsing JSON. */
#define _POSIX_C_SOURCE 200809L
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define MAX_CLIENTS 10000
#define RING (1u << 20) /* invocations in flight at most */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("hub_sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ===== growable byte buffers ===== */

typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf;

static void b_reserve(buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    while (b->len + more > b->cap)
        b->cap = b->cap ? b->cap * 2 : 4096;
    b->p = realloc(b->p, b->cap);
    if (!b->p)
        die("out of memory");
}

static void b_put(buf *b, const void *p, size_t n)
{
    b_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void b_byte(buf *b, unsigned c)
{
    unsigned char x = (unsigned char)c;

    b_put(b, &x, 1);
}

/* Drop the first n bytes. */
static void b_consume(buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* ===== MessagePack: the few shapes used ===== */

static void mp_be(buf *b, uint64_t v, int bytes)
{
    while (bytes--)
        b_byte(b, (unsigned)(v >> (8 * bytes)) & 0xff);
}

static void mp_str(buf *b, const char *s, size_t n)
{
    if (n < 32) {
        b_byte(b, 0xa0 | (unsigned)n);
    } else if (n < 256) {
        b_byte(b, 0xd9);
        mp_be(b, n, 1);
    } else {
        b_byte(b, 0xda);
        mp_be(b, n, 2);
    }
    b_put(b, s, n);
}

static void mp_bin(buf *b, const void *p, size_t n)
{
    if (n < 256) {
        b_byte(b, 0xc4);
        mp_be(b, n, 1);
    } else if (n < 65536) {
        b_byte(b, 0xc5);
        mp_be(b, n, 2);
    } else {
        b_byte(b, 0xc6);
        mp_be(b, n, 4);
    }
    b_put(b, p, n);
}

/* A reader over one message's bytes. */
typedef struct {
    const unsigned char *p;
    size_t n, i;
} rd;

static int rd_be(rd *r, int bytes, uint64_t *v)
{
    if (r->n - r->i < (size_t)bytes)
        return -1;
    *v = 0;
    while (bytes--)
        *v = (*v << 8) | r->p[r->i++];
    return 0;
}

/* An array header: its length. */
static int rd_array(rd *r, size_t *len)
{
    uint64_t v;
    unsigned c;

    if (r->i >= r->n)
        return -1;
    c = r->p[r->i++];
    if ((c & 0xf0) == 0x90) {
        *len = c & 0x0f;
        return 0;
    }
    if (c == 0xdc || c == 0xdd) {
        if (rd_be(r, c == 0xdc ? 2 : 4, &v))
            return -1;
        *len = (size_t)v;
        return 0;
    }
    return -1;
}

/* A non-negative integer. */
static int rd_uint(rd *r, uint64_t *v)
{
    unsigned c;

    if (r->i >= r->n)
        return -1;
    c = r->p[r->i++];
    if (c < 0x80) {
        *v = c;
        return 0;
    }
    switch (c) {
    case 0xcc: case 0xd0: return rd_be(r, 1, v);
    case 0xcd: case 0xd1: return rd_be(r, 2, v);
    case 0xce: case 0xd2: return rd_be(r, 4, v);
    case 0xcf: case 0xd3: return rd_be(r, 8, v);
    default: return -1;
    }
}

/* A string or binary: where and how long. */
static int rd_bytes(rd *r, const unsigned char **s, size_t *len)
{
    uint64_t v;
    unsigned c;

    if (r->i >= r->n)
        return -1;
    c = r->p[r->i++];
    if ((c & 0xe0) == 0xa0) {
        v = c & 0x1f;
    } else if (c == 0xd9 || c == 0xc4) {
        if (rd_be(r, 1, &v))
            return -1;
    } else if (c == 0xda || c == 0xc5) {
        if (rd_be(r, 2, &v))
            return -1;
    } else if (c == 0xdb || c == 0xc6) {
        if (rd_be(r, 4, &v))
            return -1;
    } else {
        return -1;
    }
    if (r->n - r->i < v)
        return -1;
    *s = r->p + r->i;
    *len = (size_t)v;
    r->i += (size_t)v;
    return 0;
}

/* The next varint-prefixed frame in a stream: 1 (body, len, used), 0
 * incomplete, -1 bad. */
static int sp_next(const unsigned char *p, size_t n, const unsigned char **body,
                   size_t *len, size_t *used)
{
    uint64_t v = 0;
    size_t k;

    for (k = 0; k < 5; k++) {
        if (k >= n)
            return 0;
        v |= (uint64_t)(p[k] & 0x7f) << (7 * k);
        if (!(p[k] & 0x80))
            break;
    }
    if (k == 5)
        return -1;
    k++;
    if (n - k < v)
        return 0;
    *body = p + k;
    *len = (size_t)v;
    *used = k + (size_t)v;
    return 1;
}

/* Append a frame: the varint length, then the body. */
static void sp_frame(buf *out, const buf *body)
{
    size_t n = body->len;

    do {
        b_byte(out, (unsigned)(n & 0x7f) | (n > 0x7f ? 0x80 : 0));
        n >>= 7;
    } while (n);
    b_put(out, body->p, body->len);
}

/* ===== WebSocket framing (RFC 6455 §5.2) ===== */

/* One binary frame around payload; masked with a zero key when `mask`
 * (a client's frames must carry a mask; XOR with zeros leaves them as
 * they are). */
static void ws_frame(buf *out, const buf *payload, int mask)
{
    size_t n = payload->len;
    unsigned m = mask ? 0x80 : 0;

    b_byte(out, 0x82);
    if (n < 126) {
        b_byte(out, m | (unsigned)n);
    } else if (n < 65536) {
        b_byte(out, m | 126);
        mp_be(out, n, 2);
    } else {
        b_byte(out, m | 127);
        mp_be(out, n, 8);
    }
    if (mask)
        b_put(out, "\0\0\0\0", 4);
    b_put(out, payload->p, n);
}

/* Move the complete frames of `in` into `stream` (their payloads,
 * unmasked); pings get a pong in `pong`.  Returns -1 on a close. */
static int ws_read(buf *in, buf *stream, buf *pong)
{
    size_t i = 0;

    for (;;) {
        const unsigned char *p = in->p + i;
        size_t have = in->len - i, h = 2, n, k;
        unsigned op, masked;
        unsigned char key[4] = {0, 0, 0, 0};

        if (have < 2)
            break;
        op = p[0] & 0x0f;
        masked = p[1] & 0x80;
        n = p[1] & 0x7f;
        if (n == 126) {
            if (have < 4)
                break;
            n = ((size_t)p[2] << 8) | p[3];
            h = 4;
        } else if (n == 127) {
            if (have < 10)
                break;
            n = 0;
            for (k = 2; k < 10; k++)
                n = (n << 8) | p[k];
            h = 10;
        }
        if (masked) {
            if (have < h + 4)
                break;
            memcpy(key, p + h, 4);
            h += 4;
        }
        if (have - h < n)
            break;
        if (op == 8)
            return -1;
        if (op == 0 || op == 1 || op == 2) {
            b_reserve(stream, n);
            for (k = 0; k < n; k++)
                stream->p[stream->len + k] = p[h + k] ^ key[k & 3];
            stream->len += n;
        } else if (op == 9 && pong) {
            buf pl = {0, 0, 0};
            for (k = 0; k < n; k++)
                b_byte(&pl, p[h + k] ^ key[k & 3]);
            b_byte(pong, 0x8a);
            b_byte(pong, (unsigned)n);
            b_put(pong, pl.p, pl.len);
            free(pl.p);
        }
        i += h + n;
    }
    b_consume(in, i);
    return 0;
}

/* ===== sockets ===== */

static void nonblock(int fd)
{
    int one = 1;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

typedef struct {
    int fd, state; /* 0: HTTP head, 1: waiting for HandshakeRequest, 2: open */
    buf in, stream, out, pend; /* raw in, unmasked stream, raw out, messages */
} conn;

/* Write what out holds; -1 when the peer is gone. */
static int flush_out(conn *c)
{
    while (c->out.len) {
        ssize_t w = write(c->fd, c->out.p, c->out.len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        b_consume(&c->out, (size_t)w);
    }
    return 0;
}

/* The messages gathered in pend as one WebSocket message, then written. */
static int send_pending(conn *c, int mask)
{
    if (c->pend.len) {
        ws_frame(&c->out, &c->pend, mask);
        c->pend.len = 0;
    }
    return flush_out(c);
}

/* Read what the socket has into in: -1 when the peer is gone. */
static int fill_in(conn *c)
{
    for (;;) {
        ssize_t r;
        b_reserve(&c->in, 65536);
        r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (r > 0) {
            c->in.len += (size_t)r;
            if (c->in.len < c->in.cap)
                return 0;
            continue;
        }
        if (r == 0)
            return -1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* ===== the simulated service ===== */

typedef struct {
    int conn, ready;           /* its server connection; handshake answered */
    long long inflight;        /* closed loop: the id awaited, or -1 */
    char id[16];
    size_t idlen;
} client;

static struct {
    conn conns[MAX_CONNS];
    int nconns, nopen;
    client *clients;
    int nclients, nready;
    double rate, secs, warmup;
    const char *pidfile;
    /* invocation ids are one global sequence; the ring keeps each one's
     * send (or scheduled) time */
    double *sent;
    long long *ring_id;
    long long next_id, outstanding;
    double t_start, t_ms, t_me; /* load start, measured window */
    int measuring, sending;
    double *lat;
    size_t nlat, cap_lat;
    long long done_in_window, bad;
} S;

static void add_sample(double us)
{
    if (S.nlat == S.cap_lat) {
        S.cap_lat = S.cap_lat ? S.cap_lat * 2 : 1 << 16;
        S.lat = realloc(S.lat, S.cap_lat * sizeof *S.lat);
        if (!S.lat)
            die("out of memory");
    }
    S.lat[S.nlat++] = us;
}

/* Queue ConnectionData [6, id, bin, {}] for client k. */
static void send_data(int k, const char *payload, size_t n)
{
    client *cl = &S.clients[k];
    buf body = {0, 0, 0};

    b_byte(&body, 0x94);
    b_byte(&body, 6);
    mp_str(&body, cl->id, cl->idlen);
    mp_bin(&body, payload, n);
    b_byte(&body, 0x80);
    sp_frame(&S.conns[cl->conn].pend, &body);
    free(body.p);
}

/* Invoke Add(2, 3) from client k; t: its send (or scheduled) time. */
static int invoke(int k, double t)
{
    char js[128];
    long long id = S.next_id;
    int n;

    if (S.outstanding >= (long long)RING)
        return -1; /* the server is that far behind: skip */
    S.next_id++;
    S.outstanding++;
    S.sent[id & (RING - 1)] = t;
    S.ring_id[id & (RING - 1)] = id;
    n = snprintf(js, sizeof js, "{\"type\":1,\"invocationId\":\"%lld\","
                 "\"target\":\"Add\",\"arguments\":[2,3]}\x1e", id);
    send_data(k, js, (size_t)n);
    S.clients[k].inflight = id;
    return 0;
}

/* What the hub server sent for client k: its handshake answer, or
 * completions ("invocationId":"<n>" in each record). */
static void on_payload(int k, const unsigned char *p, size_t n, double t)
{
    static const char KEY[] = "\"invocationId\":\"";
    client *cl = &S.clients[k];
    size_t i = 0;

    while (i < n) {
        const unsigned char *rs = memchr(p + i, 0x1e, n - i);
        size_t end = rs ? (size_t)(rs - p) : n;
        const char *f;
        char rec[512];
        size_t rl = end - i < sizeof rec - 1 ? end - i : sizeof rec - 1;

        memcpy(rec, p + i, rl);
        rec[rl] = '\0';
        i = end + 1;
        if (!cl->ready) {
            if (strcmp(rec, "{}") != 0)
                die("client %s: handshake answer %s", cl->id, rec);
            cl->ready = 1;
            S.nready++;
            continue;
        }
        f = strstr(rec, KEY);
        if (f) {
            long long id = strtoll(f + sizeof KEY - 1, NULL, 10);
            double st;
            if (id < 0 || id >= S.next_id || S.ring_id[id & (RING - 1)] != id)
                die("client %s: a completion for an unknown id: %s", cl->id,
                    rec);
            st = S.sent[id & (RING - 1)];
            S.ring_id[id & (RING - 1)] = -1;
            S.outstanding--;
            if (!strstr(rec, "\"result\":5"))
                S.bad++;
            if (st >= S.t_ms && st < S.t_me)
                add_sample((t - st) * 1e6);
            if (S.measuring && t >= S.t_ms && t < S.t_me)
                S.done_in_window++;
            if (S.rate <= 0 && cl->inflight == id) {
                cl->inflight = -1;
                if (S.sending)
                    invoke(k, t);
            }
        }
        /* pings (type 6) and anything else: nothing to do */
    }
}

/* One service-protocol message from a server connection. */
static void on_message(int ci, const unsigned char *p, size_t n, double t)
{
    rd r = {p, n, 0};
    size_t items, idl, pl;
    uint64_t type;
    const unsigned char *id, *payload;
    conn *c = &S.conns[ci];

    if (rd_array(&r, &items) || items < 1 || rd_uint(&r, &type))
        die("a malformed message from the hub server");
    if (type == 1 && c->state == 1) { /* HandshakeRequest: [2, ""] */
        static const unsigned char OK[] = {0x03, 0x92, 0x02, 0xa0};
        b_put(&c->pend, OK, sizeof OK);
        c->state = 2;
        S.nopen++;
    } else if (type == 6) {
        long k;
        if (items < 3 || rd_bytes(&r, &id, &idl) ||
            rd_bytes(&r, &payload, &pl) || idl < 2 || idl > 10 || id[0] != 'c')
            die("a malformed ConnectionData");
        k = strtol((const char *)id + 1, NULL, 10);
        if (k < 0 || k >= S.nclients)
            die("ConnectionData for an unknown client");
        on_payload((int)k, payload, pl, t);
    } else if (type == 5) {
        die("the hub server closed a client (CloseConnection)");
    }
    /* pings (3) and the rest: nothing */
}

/* The upgrade: 101 with Sec-WebSocket-Accept (RFC 6455 §4.2.2). */
static int on_http(conn *c)
{
    static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char *end, *k, both[128], head[256], acc[64];
    unsigned char sha[EVP_MAX_MD_SIZE];
    unsigned sl = 0;
    size_t kl;
    int n;

    b_byte(&c->in, 0);
    c->in.len--;
    end = strstr((char *)c->in.p, "\r\n\r\n");
    if (!end)
        return c->in.len > 16384 ? -1 : 0;
    if (strncmp((char *)c->in.p, "GET /server/", 12) != 0)
        return -1;
    k = strcasestr((char *)c->in.p, "Sec-WebSocket-Key:");
    if (!k || k > end)
        return -1;
    k += 18;
    while (*k == ' ')
        k++;
    kl = strcspn(k, "\r");
    if (kl > 60)
        return -1;
    memcpy(both, k, kl);
    memcpy(both + kl, GUID, sizeof GUID - 1);
    EVP_Digest(both, kl + sizeof GUID - 1, sha, &sl, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)acc, sha, (int)sl);
    n = snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    b_put(&c->out, head, (size_t)n);
    b_consume(&c->in, (size_t)(end + 4 - (char *)c->in.p));
    c->state = 1;
    return 0;
}

/* Everything the socket of connection ci has: -1 when it is gone. */
static int on_readable(int ci, double t)
{
    conn *c = &S.conns[ci];
    const unsigned char *body;
    size_t len, used, off = 0;
    int got;

    if (fill_in(c))
        return -1;
    if (c->state == 0 && on_http(c))
        return -1;
    if (c->state == 0)
        return 0;
    if (ws_read(&c->in, &c->stream, &c->out))
        return -1;
    while ((got = sp_next(c->stream.p + off, c->stream.len - off, &body, &len,
                          &used)) == 1) {
        on_message(ci, body, len, t);
        off += used;
    }
    if (got < 0)
        die("a bad frame length from the hub server");
    b_consume(&c->stream, off);
    return 0;
}

static long long proc_cpu_ns(long pid)
{
    char path[64];
    long long ns = 0;
    FILE *f;

    if (pid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lld", &ns) != 1)
        ns = 0;
    fclose(f);
    return ns;
}

static double self_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static long read_pid(void)
{
    long pid = 0;
    FILE *f;

    if (!S.pidfile)
        return 0;
    f = fopen(S.pidfile, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Wait for socket activity (at most `wait` s), then handle it. */
static void io_step(int lfd, double wait)
{
    struct pollfd pf[MAX_CONNS + 1];
    struct timespec ts;
    double t;
    int i, n = 0;

    pf[n].fd = lfd;
    pf[n].events = POLLIN;
    n++;
    for (i = 0; i < S.nconns; i++) {
        pf[n].fd = S.conns[i].fd;
        pf[n].events = POLLIN | (S.conns[i].out.len ? POLLOUT : 0);
        n++;
    }
    if (wait < 0)
        wait = 0;
    ts.tv_sec = (time_t)wait;
    ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
    if (ppoll(pf, (nfds_t)n, &ts, NULL) < 0 && errno != EINTR)
        die("poll: %s", strerror(errno));
    t = now();
    if (pf[0].revents & POLLIN) {
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            if (S.nconns == MAX_CONNS)
                die("too many server connections");
            nonblock(fd);
            memset(&S.conns[S.nconns], 0, sizeof S.conns[0]);
            S.conns[S.nconns++].fd = fd;
        }
    }
    for (i = 0; i < n - 1 && i < S.nconns; i++) {
        if (pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (on_readable(i, t))
                die("server connection %d lost", i);
        }
    }
}

static void flush_all(void)
{
    int i;

    for (i = 0; i < S.nconns; i++)
        if (S.conns[i].state >= 1 && send_pending(&S.conns[i], 0))
            die("server connection %d lost on write", i);
}

static int run_sim(int port, int want_conns)
{
    struct sockaddr_in a;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), i;
    double t, deadline, cpu0 = 0, cpu1 = 0;
    long long srv0 = 0, srv1 = 0, rr = 0, sched = 0;
    long pid = 0;
    size_t p50, p99;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 64))
        die("listen on %d: %s", port, strerror(errno));
    fprintf(stderr, "hub_sim: listening on 127.0.0.1:%d\n", port);
    S.sent = calloc(RING, sizeof *S.sent);
    S.ring_id = malloc(RING * sizeof *S.ring_id);
    S.clients = calloc((size_t)S.nclients, sizeof *S.clients);
    if (!S.sent || !S.ring_id || !S.clients)
        die("out of memory");
    memset(S.ring_id, 0xff, RING * sizeof *S.ring_id);

    /* the hub server's connections, their handshakes */
    deadline = now() + 30;
    while (S.nopen < want_conns) {
        if (now() > deadline)
            die("%d of %d server connections open after 30 s", S.nopen,
                want_conns);
        io_step(lfd, 0.05);
        flush_all();
    }
    /* the clients: OpenConnection [4, id, {}, {}, "", {3: "json"}], then
     * the hub handshake, spread over the open connections */
    for (i = 0; i < S.nclients; i++) {
        static const char HS[] = "{\"protocol\":\"json\",\"version\":1}\x1e";
        client *cl = &S.clients[i];
        buf body = {0, 0, 0};
        int ci, open_seen = 0, j;
        for (j = 0, ci = -1; j < S.nconns; j++) {
            if (S.conns[j].state == 2 && open_seen++ == i % S.nopen) {
                ci = j;
                break;
            }
        }
        cl->conn = ci;
        cl->inflight = -1;
        cl->idlen = (size_t)snprintf(cl->id, sizeof cl->id, "c%d", i);
        b_byte(&body, 0x96);
        b_byte(&body, 4);
        mp_str(&body, cl->id, cl->idlen);
        b_byte(&body, 0x80);
        b_byte(&body, 0x80);
        mp_str(&body, "", 0);
        b_byte(&body, 0x81);
        b_byte(&body, 3);
        mp_str(&body, "json", 4);
        sp_frame(&S.conns[ci].pend, &body);
        free(body.p);
        send_data(i, HS, sizeof HS - 1);
    }
    flush_all();
    deadline = now() + 30;
    while (S.nready < S.nclients) {
        if (now() > deadline)
            die("%d of %d client handshakes answered after 30 s", S.nready,
                S.nclients);
        io_step(lfd, 0.05);
        flush_all();
    }

    /* the load: warm-up, then the window */
    t = now();
    S.t_start = t;
    S.t_ms = t + S.warmup;
    S.t_me = S.t_ms + S.secs;
    S.sending = 1;
    if (S.rate <= 0) {
        for (i = 0; i < S.nclients; i++)
            invoke(i, t);
        flush_all();
    }
    while ((t = now()) < S.t_me) {
        double wait = S.t_me - t;
        if (!S.measuring && t >= S.t_ms) {
            pid = read_pid();
            S.measuring = 1;
            srv0 = proc_cpu_ns(pid);
            cpu0 = self_cpu();
            S.t_ms = t; /* the window starts now */
            S.t_me = t + S.secs;
        } else if (!S.measuring && S.t_ms - t < wait) {
            wait = S.t_ms - t;
        }
        if (S.rate > 0) {
            /* open loop: every invocation due by now, at its own time */
            long long due = (long long)((t - S.t_start) * S.rate);
            for (; sched < due; sched++)
                invoke((int)(rr++ % S.nclients),
                       S.t_start + (double)sched / S.rate);
            flush_all();
            double next = S.t_start + (double)(sched + 1) / S.rate - t;
            if (next < wait)
                wait = next;
        }
        io_step(lfd, wait);
        flush_all();
    }
    srv1 = proc_cpu_ns(pid);
    cpu1 = self_cpu();
    S.measuring = 0;
    S.sending = 0;
    /* answers still on their way for invocations of the window */
    deadline = now() + 5;
    while (S.outstanding > 0 && now() < deadline) {
        io_step(lfd, 0.01);
        flush_all();
    }
    if (S.bad)
        die("%lld completions without the result 5", S.bad);
    if (S.outstanding > 0)
        fprintf(stderr, "hub_sim: %lld invocations unanswered 5 s after "
                "the window\n", S.outstanding);
    if (!S.nlat || !S.done_in_window)
        die("no invocation completed in the window");
    qsort(S.lat, S.nlat, sizeof *S.lat, cmp_double);
    p50 = (S.nlat - 1) / 2;
    p99 = (size_t)((double)S.nlat * 0.99);
    if (p99 >= S.nlat)
        p99 = S.nlat - 1;
    printf("%.1f %.1f %.1f %.1f %.2f %.2f %zu\n",
           (double)S.done_in_window / S.secs, S.lat[p50], S.lat[p99],
           S.lat[S.nlat - 1],
           pid ? (double)(srv1 - srv0) / 1e3 / (double)S.done_in_window : 0.0,
           (cpu1 - cpu0) * 1e6 / (double)S.done_in_window, S.nlat);
    return S.outstanding > 0 ? 1 : 0;
}

/* ===== the floor: a trivial hub server in C ===== */

/* Answer one ConnectionData's records into pend: {} to a handshake, the
 * Completion result 5 to an invocation. */
static void echo_payload(conn *c, const unsigned char *id, size_t idl,
                         const unsigned char *p, size_t n)
{
    static const char KEY[] = "\"invocationId\":\"";
    size_t i = 0;

    while (i < n) {
        const unsigned char *rs = memchr(p + i, 0x1e, n - i);
        size_t end = rs ? (size_t)(rs - p) : n;
        char rec[512], js[128];
        size_t rl = end - i < sizeof rec - 1 ? end - i : sizeof rec - 1;
        const char *f;
        int jn = 0;
        buf body = {0, 0, 0};

        memcpy(rec, p + i, rl);
        rec[rl] = '\0';
        i = end + 1;
        f = strstr(rec, KEY);
        if (strstr(rec, "\"protocol\"")) {
            jn = snprintf(js, sizeof js, "{}\x1e");
        } else if (f) {
            long long v = strtoll(f + sizeof KEY - 1, NULL, 10);
            jn = snprintf(js, sizeof js, "{\"type\":3,\"invocationId\":"
                          "\"%lld\",\"result\":5}\x1e", v);
        } else {
            continue;
        }
        b_byte(&body, 0x94);
        b_byte(&body, 6);
        mp_str(&body, (const char *)id, idl);
        mp_bin(&body, js, (size_t)jn);
        b_byte(&body, 0x80);
        sp_frame(&c->pend, &body);
        free(body.p);
    }
}

static int run_echo(int port, int nconns)
{
    static const char REQ[] = "GET /server/?hub=chat&cid=0 HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    /* [1, 1, 0, "", 0, {}]: a Default connection's HandshakeRequest */
    static const unsigned char HS[] = {0x96, 0x01, 0x01, 0x00, 0xa0, 0x00,
                                       0x80};
    conn cs[MAX_CONNS];
    struct pollfd pf[MAX_CONNS];
    double deadline;
    int i;

    if (nconns < 1 || nconns > MAX_CONNS)
        die("1..%d connections", MAX_CONNS);
    memset(cs, 0, sizeof cs);
    for (i = 0; i < nconns; i++) {
        struct sockaddr_in a;
        buf body = {0, 0, 0};
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof a))
            die("connect to %d: %s", port, strerror(errno));
        nonblock(cs[i].fd);
        b_put(&cs[i].out, REQ, sizeof REQ - 1);
        b_put(&body, HS, sizeof HS);
        sp_frame(&cs[i].pend, &body);
        free(body.p);
        send_pending(&cs[i], 1);
    }
    deadline = now() + 600;
    while (now() < deadline) { /* until the simulator goes away */
        for (i = 0; i < nconns; i++) {
            pf[i].fd = cs[i].fd;
            pf[i].events = POLLIN | (cs[i].out.len ? POLLOUT : 0);
        }
        if (poll(pf, (nfds_t)nconns, 1000) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (i = 0; i < nconns; i++) {
            conn *c = &cs[i];
            const unsigned char *body;
            size_t len, used, off = 0;
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR | POLLOUT)))
                continue;
            if ((pf[i].revents & (POLLIN | POLLHUP | POLLERR)) && fill_in(c))
                return 0;
            if (c->state == 0) {
                char *end;
                b_byte(&c->in, 0);
                c->in.len--;
                end = strstr((char *)c->in.p, "\r\n\r\n");
                if (end) {
                    if (strncmp((char *)c->in.p, "HTTP/1.1 101", 12) != 0)
                        die("the upgrade was refused");
                    b_consume(&c->in, (size_t)(end + 4 - (char *)c->in.p));
                    c->state = 2;
                }
            }
            if (c->state == 2) {
                if (ws_read(&c->in, &c->stream, NULL))
                    return 0;
                while (sp_next(c->stream.p + off, c->stream.len - off, &body,
                               &len, &used) == 1) {
                    rd r = {body, len, 0};
                    size_t items, idl, pl;
                    uint64_t type;
                    const unsigned char *id, *payload;
                    off += used;
                    if (rd_array(&r, &items) || rd_uint(&r, &type))
                        die("a malformed message from the simulator");
                    if (type == 6 && items >= 3 && !rd_bytes(&r, &id, &idl) &&
                        !rd_bytes(&r, &payload, &pl))
                        echo_payload(c, id, idl, payload, pl);
                }
                b_consume(&c->stream, off);
            }
            if (send_pending(c, 1))
                return 0;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int i, port, conns = 1;

    signal(SIGPIPE, SIG_IGN);
    if (argc < 3) {
        fprintf(stderr, "usage: hub_sim sim PORT [-n clients] [-c conns] "
                "[-r rate] [-s secs] [-w warmup] [-P pidfile]\n"
                "       hub_sim echo PORT [-c conns]\n");
        return 2;
    }
    port = atoi(argv[2]);
    S.nclients = 100;
    S.secs = 3;
    S.warmup = 1;
    for (i = 3; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "-n"))
            S.nclients = atoi(v);
        else if (!strcmp(o, "-c"))
            conns = atoi(v);
        else if (!strcmp(o, "-r"))
            S.rate = atof(v);
        else if (!strcmp(o, "-s"))
            S.secs = atof(v);
        else if (!strcmp(o, "-w"))
            S.warmup = atof(v);
        else if (!strcmp(o, "-P"))
            S.pidfile = v;
        else
            die("unknown option %s", o);
    }
    if (S.nclients < 1 || S.nclients > MAX_CLIENTS || S.secs <= 0 || conns < 1)
        die("bad arguments");
    if (!strcmp(argv[1], "sim"))
        return run_sim(port, conns);
    if (!strcmp(argv[1], "echo"))
        return run_echo(port, conns);
    die("unknown role %s", argv[1]);
    return 2;
}
