#define _DEFAULT_SOURCE
/* test_ws.c - the WebSocket client without I/O, against a server played
 * by the test (upgrade answers, frames split at every byte, fragments,
 * pings, close, refusals), and the libcurl socket with the pump against a
 * real listening socket on the loopback. */
#include "harness.h"
#include "signalr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void accept_of(const char *req, char out[32])
{
    static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    unsigned char sha[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    char both[64];

    memcpy(both, k + 19, 24);
    memcpy(both + 24, GUID, sizeof GUID - 1);
    EVP_Digest(both, 24 + sizeof GUID - 1, sha, &n, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, sha, (int)n);
}

/* Decode one masked client frame at p: opcode, payload into out. */
static size_t client_frame(const char *p, size_t n, int *opcode, char *out,
                           size_t *len)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i, hl = 2, pl;

    if (n < 2 || !(u[1] & 0x80))
        return 0;
    *opcode = u[0] & 0x0f;
    pl = u[1] & 0x7f;
    if (pl == 126) {
        pl = ((size_t)u[2] << 8) | u[3];
        hl = 4;
    } else if (pl == 127) {
        pl = 0;
        for (i = 0; i < 8; i++)
            pl = (pl << 8) | u[2 + i];
        hl = 10;
    }
    if (n < hl + 4 + pl)
        return 0;
    for (i = 0; i < pl; i++)
        out[i] = (char)(u[hl + 4 + i] ^ u[hl + (i & 3)]);
    *len = pl;
    return hl + 4 + pl;
}

static signalr_ws *opened(void)
{
    signalr_ws *ws = NULL;
    signalr_error e;
    const char *out;
    size_t n;
    char acc[32], head[256];

    signalr_ws_new(&ws, "localhost:8080", "/server/?hub=chat",
                   "Authorization: Bearer t\r\n", &e);
    signalr_ws_output(ws, &out, &n);
    accept_of(out, acc);
    signalr_ws_written(ws, n);
    snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols\r\n"
             "upgrade: WebSocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    signalr_ws_input(ws, head, strlen(head), &e);
    return ws;
}

static void test_upgrade(void)
{
    signalr_ws *ws = NULL;
    signalr_error e;
    const char *out, *st;
    size_t n, i;
    char acc[32], head[512];

    CHECK(signalr_ws_new(&ws, "h", "nopath", NULL, &e) == SIGNALR_EINVAL,
          "a path without / : EINVAL");
    CHECK(signalr_ws_new(&ws, "h\r\nX: y", "/", NULL, &e) == SIGNALR_EINVAL,
          "a line break in the host: EINVAL");
    CHECK(signalr_ws_new(&ws, "localhost:8080", "/server/?hub=chat&cid=1",
                         "Authorization: Bearer t\r\n", &e) == SIGNALR_OK,
          "new");
    CHECK(signalr_ws_send(ws, "\x02\x91\x03", 3, &e) == SIGNALR_OK,
          "a message queued before the answer");
    signalr_ws_output(ws, &out, &n);
    CHECK(n > 100 && !strncmp(out, "GET /server/?hub=chat&cid=1 HTTP/1.1\r\n"
                              "Host: localhost:8080\r\n", 59),
          "the request line and Host");
    CHECK(strstr(out, "\r\nAuthorization: Bearer t\r\n\r\n") != NULL,
          "the caller's headers end the head");
    CHECK(strstr(out, "Sec-WebSocket-Version: 13\r\n") != NULL, "version");
    accept_of(out, acc);
    signalr_ws_written(ws, n);
    signalr_ws_output(ws, &out, &n);
    CHECK(n == 0, "no frame before the 101");
    snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n\x82\x03\x02\x91\x03", acc);
    /* the answer and a first frame, a byte at a time */
    for (i = 0; head[i]; i++)
        CHECK(signalr_ws_input(ws, head + i, 1, &e) == SIGNALR_OK,
              "input a byte");
    CHECK(signalr_ws_state(ws, NULL) == SIGNALR_WS_OPEN, "open");
    signalr_ws_stream(ws, &st, &n);
    CHECK(n == 3 && !memcmp(st, "\x02\x91\x03", 3),
          "the frame after the head reaches the stream");
    signalr_ws_consume(ws, n);
    signalr_ws_output(ws, &out, &n);
    {
        int op = 0;
        char pl[16];
        size_t pn = 0;
        CHECK(client_frame(out, n, &op, pl, &pn) == n && op == 2 &&
              pn == 3 && !memcmp(pl, "\x02\x91\x03", 3),
              "the queued message goes out masked, binary");
    }
    signalr_ws_written(ws, n);
    CHECK(signalr_ws_unsent(ws) == 0, "nothing left to write");
    signalr_ws_free(ws);
}

static void test_frames(void)
{
    signalr_ws *ws = opened();
    signalr_error e;
    const char *out, *st;
    size_t n;
    int op = 0, code = 0;
    char pl[70000];
    size_t pn = 0;
    char *big;

    CHECK(signalr_ws_state(ws, NULL) == SIGNALR_WS_OPEN, "open");
    /* a fragmented message, a ping between the fragments */
    CHECK(signalr_ws_input(ws, "\x02\x02" "ab" "\x89\x01p" "\x80\x01" "c", 10,
                           &e) == SIGNALR_OK, "fragments and a ping");
    signalr_ws_stream(ws, &st, &n);
    CHECK(n == 3 && !memcmp(st, "abc", 3), "the fragments joined");
    signalr_ws_consume(ws, 2);
    signalr_ws_stream(ws, &st, &n);
    CHECK(n == 1 && st[0] == 'c', "consume takes from the front");
    signalr_ws_consume(ws, 1);
    signalr_ws_output(ws, &out, &n);
    CHECK(client_frame(out, n, &op, pl, &pn) == n && op == 10 && pn == 1 &&
          pl[0] == 'p', "the ping answered with a pong");
    signalr_ws_written(ws, n);

    /* messages written straight into the output, masked 8 bytes at a
     * time: every length form and every tail length, in order; one
     * sent while a pong waits in wslay goes after the pong */
    {
        static const size_t sizes[] = { 0, 1, 7, 8, 9, 125, 126, 127,
                                        65535, 65536, 69999 };
        size_t count = sizeof sizes / sizeof *sizes, i, at = 0;
        char *msg = malloc(70000);
        int ok = 1;

        for (i = 0; i < 70000; i++)
            msg[i] = (char)(i * 31 + 7);
        CHECK(signalr_ws_send(ws, msg, 5, &e) == SIGNALR_OK &&
              signalr_ws_unsent(ws) == 5 + 6,
              "a message framed at once (wslay would count its 5 bytes)");
        signalr_ws_output(ws, &out, &n);
        signalr_ws_written(ws, n);
        for (i = 0; i < count; i++)
            ok &= signalr_ws_send(ws, msg, sizes[i], &e) == SIGNALR_OK;
        signalr_ws_output(ws, &out, &n);
        for (i = 0; ok && i < count; i++) {
            size_t used = client_frame(out + at, n - at, &op, pl, &pn);

            ok = used && op == 2 && pn == sizes[i] && !memcmp(pl, msg, pn);
            at += used;
        }
        CHECK(ok && at == n, "11 messages, each whole and unmasked right");
        signalr_ws_written(ws, n);
        CHECK(signalr_ws_input(ws, "\x89\x01q", 3, &e) == SIGNALR_OK &&
              signalr_ws_send(ws, "after", 5, &e) == SIGNALR_OK,
              "a ping, then a message");
        signalr_ws_output(ws, &out, &n);
        at = client_frame(out, n, &op, pl, &pn);
        CHECK(at && op == 10 && pn == 1 && pl[0] == 'q', "the pong first");
        CHECK(at && client_frame(out + at, n - at, &op, pl, &pn) == n - at &&
              op == 2 && pn == 5 && !memcmp(pl, "after", 5),
              "then the message");
        signalr_ws_written(ws, n);
        free(msg);
    }

    /* a 1 MB message leaves in 256 KiB steps */
    big = malloc(1 << 20);
    memset(big, 'z', 1 << 20);
    CHECK(signalr_ws_send(ws, big, 1 << 20, &e) == SIGNALR_OK, "1 MB");
    free(big);
    signalr_ws_output(ws, &out, &n);
    CHECK(n == 256 * 1024, "256 KiB at a time");
    CHECK(signalr_ws_unsent(ws) >= (1 << 20), "the rest waits to be written");
    {
        size_t total = 0;
        while (n) {
            total += n;
            signalr_ws_written(ws, n);
            signalr_ws_output(ws, &out, &n);
        }
        CHECK(total == (1 << 20) + 14, "all of it, with a 14-byte header");
    }

    /* the service closes */
    CHECK(signalr_ws_input(ws, "\x88\x02\x03\xe9", 4, &e) == SIGNALR_OK,
          "close frame");
    CHECK(signalr_ws_state(ws, &code) == SIGNALR_WS_CLOSING && code == 1001,
          "closing, code 1001");
    CHECK(signalr_ws_send(ws, "x", 1, &e) == SIGNALR_ECONNECT,
          "no message after a close");
    signalr_ws_output(ws, &out, &n);
    CHECK(client_frame(out, n, &op, pl, &pn) == n && op == 8,
          "the close answered");
    signalr_ws_written(ws, n);
    CHECK(signalr_ws_state(ws, NULL) == SIGNALR_WS_CLOSED, "closed");
    signalr_ws_free(ws);

    /* a reserved opcode breaks the protocol */
    ws = opened();
    CHECK(signalr_ws_input(ws, "\x83\x01x", 3, &e) == SIGNALR_EREPLY &&
          signalr_ws_state(ws, NULL) == SIGNALR_WS_CLOSED,
          "opcode 3: EREPLY, closed");
    signalr_ws_free(ws);
}

static void test_refusals(void)
{
    signalr_ws *ws = NULL;
    signalr_error e;
    const char *out;
    size_t n;
    static const char *bad[] = {
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
    };
    static const signalr_err want[] = {
        SIGNALR_ESTATUS, SIGNALR_EREPLY, SIGNALR_EREPLY, SIGNALR_EREPLY
    };
    size_t i;
    char *flood;

    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        signalr_ws_new(&ws, "h", "/", NULL, &e);
        signalr_ws_output(ws, &out, &n);
        signalr_ws_written(ws, n);
        CHECK(signalr_ws_input(ws, bad[i], strlen(bad[i]), &e) == want[i] &&
              signalr_ws_state(ws, NULL) == SIGNALR_WS_CLOSED,
              "a refused or bad upgrade closes with its error");
        if (i == 0)
            CHECK(e.status == 401 && strstr(e.msg, "401"),
                  "the refusal's status");
        CHECK(signalr_ws_input(ws, "x", 1, &e) == want[i],
              "input after the failure repeats it");
        signalr_ws_free(ws);
    }
    signalr_ws_new(&ws, "h", "/", NULL, &e);
    flood = malloc(20000);
    memset(flood, 'a', 20000);
    CHECK(signalr_ws_input(ws, flood, 20000, &e) == SIGNALR_EREPLY,
          "an endless head: EREPLY");
    free(flood);
    signalr_ws_free(ws);
}

/* The libcurl socket against a listener of the test's own. */
static void test_sock(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), cfd = -1, rc = 0, i, ww = 0;
    signalr_sock *s = NULL;
    signalr_ws *ws = NULL;
    signalr_sock_options o = { 2000, 0, NULL, NULL };
    signalr_error e;
    char url[64], buf[4096], acc[32], head[256];
    ssize_t got = 0;
    const char *st;
    size_t n;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd, (struct sockaddr *)&a, sizeof a);
    listen(lfd, 4);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    CHECK(signalr_sock_open(&s, "ftp://x/", &o, &e) == SIGNALR_EINVAL,
          "only http and https");
    CHECK(signalr_sock_open(&s, url, &o, &e) == SIGNALR_OK, "open");
    for (i = 0; i < 200 && rc == 0; i++) {
        int fds[4], ev[4], k = signalr_sock_fds(s, fds, ev, 4);
        struct pollfd p[4];
        int j;
        for (j = 0; j < k; j++) {
            p[j].fd = fds[j];
            p[j].events = (short)((ev[j] & 1 ? POLLIN : 0) |
                                  (ev[j] & 2 ? POLLOUT : 0));
        }
        poll(p, (nfds_t)k, 10);
        rc = signalr_sock_connect(s, &e);
    }
    CHECK(rc == 1, "connected without blocking");
    cfd = accept(lfd, NULL, NULL);
    signalr_ws_new(&ws, "127.0.0.1", "/server/?hub=h", NULL, &e);
    CHECK(signalr_sock_pump(s, ws, &ww, &e) == 1 && ww == 0,
          "the pump writes the request");
    for (i = 0; i < 100 && got <= 0; i++) {
        got = recv(cfd, buf, sizeof buf - 1, MSG_DONTWAIT);
        usleep(1000);
    }
    buf[got > 0 ? got : 0] = '\0';
    CHECK(got > 0 && !strncmp(buf, "GET /server/?hub=h HTTP/1.1", 27),
          "the listener got the upgrade request");
    accept_of(buf, acc);
    snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n\x82\x02hi", acc);
    CHECK(send(cfd, head, strlen(head), 0) == (ssize_t)strlen(head), "answer");
    for (i = 0; i < 100; i++) {
        signalr_sock_pump(s, ws, &ww, &e);
        signalr_ws_stream(ws, &st, &n);
        if (n)
            break;
        usleep(1000);
    }
    CHECK(n == 2 && !memcmp(st, "hi", 2), "bytes reach the stream");
    close(cfd);
    for (i = 0; i < 100 && (rc = signalr_sock_pump(s, ws, &ww, &e)) == 1; i++)
        usleep(1000);
    CHECK(rc == 0, "the peer's close ends the pump with 0");
    signalr_ws_free(ws);
    signalr_sock_free(s);

    /* nobody listens */
    close(lfd);
    CHECK(signalr_sock_open(&s, url, &o, &e) == SIGNALR_OK, "open 2");
    rc = 0;
    for (i = 0; i < 200 && rc == 0; i++) {
        usleep(5000);
        rc = signalr_sock_connect(s, &e);
    }
    CHECK(rc == -1 && e.code == SIGNALR_ECONNECT && strstr(e.msg, "connect"),
          "a refused connect: ECONNECT");
    signalr_sock_free(s);
}

int main(void)
{
    test_upgrade();
    test_frames();
    test_refusals();
    test_sock();
    return t_done("test_ws");
}
