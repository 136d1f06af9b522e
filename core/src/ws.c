/* ws.c - a WebSocket client without I/O (RFC 6455), for the server
 * connections of persistent mode: it writes the upgrade request, checks
 * the 101 answer, and turns bytes from the network into the byte stream
 * the service protocol runs on (binary messages, concatenated) and queued
 * messages into bytes for the network.  libwslay does the framing,
 * masking, control frames and close handshake; the caller moves the
 * bytes (libcurl's socket, an nginx cosocket). */
#include "internal.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#define MAX_HEAD (16 * 1024)   /* the upgrade answer's head */
#define OUT_HIGH (256 * 1024)  /* frames held ready to write at most */
/* One WebSocket message read at most: the service sends acks, pings and
 * errors; a longer message closes the connection (1009). */
#define MAX_MESSAGE (16u * 1024 * 1024)

struct signalr_ws {
    wslay_event_context_ptr ctx;
    int state;
    sr__buf head;                 /* the answer's head while upgrading */
    char accept[32];              /* the Sec-WebSocket-Accept expected */
    sr__buf out;                  /* bytes ready for the network */
    size_t out_pos;
    unsigned long long taken;     /* bytes the network took in all */
    const unsigned char *feed;    /* input handed to wslay */
    size_t feed_len;
    sr__buf rx;                   /* read, not yet taken by wslay */
    size_t rx_pos;
    sr__buf in;                   /* the received stream */
    size_t in_pos;
    int status;                   /* the upgrade answer's HTTP status */
    int close_code;
    signalr_err failed;           /* the error that closed it */
    unsigned char masks[256];     /* random bytes for frame masks */
    size_t mask_pos;
    char why[160];
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *ud)
{
    signalr_ws *ws = ud;
    size_t n = ws->feed_len < len ? ws->feed_len : len;

    (void)flags;
    if (!n) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, ws->feed, n);
    ws->feed += n;
    ws->feed_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *ud)
{
    signalr_ws *ws = ud;
    size_t room, n;

    (void)flags;
    if (ws->out.len - ws->out_pos >= OUT_HIGH) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    room = OUT_HIGH - (ws->out.len - ws->out_pos);
    n = len < room ? len : room;
    sr__buf_add(&ws->out, (const char *)data, n);
    if (ws->out.oom) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)n;
}

/* Masks come from OpenSSL's generator, 256 bytes at a time (a mask is 4:
 * one call per 64 frames instead of one per frame).  -1 when it fails. */
static int next_mask(signalr_ws *ws, uint8_t *buf, size_t len)
{
    if (len > sizeof ws->masks)
        len = sizeof ws->masks;
    if (ws->mask_pos + len > sizeof ws->masks) {
        if (RAND_bytes(ws->masks, (int)sizeof ws->masks) != 1)
            return -1;
        ws->mask_pos = 0;
    }
    memcpy(buf, ws->masks + ws->mask_pos, len);
    ws->mask_pos += len;
    return 0;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *ud)
{
    if (next_mask(ud, buf, len)) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

static void msg_cb(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    signalr_ws *ws = ud;

    if (arg->opcode == WSLAY_CONNECTION_CLOSE)
        ws->close_code = wslay_event_get_status_code_received(ctx);
    else if ((arg->opcode == WSLAY_BINARY_FRAME ||
              arg->opcode == WSLAY_TEXT_FRAME) && arg->msg_length)
        sr__buf_add(&ws->in, (const char *)arg->msg, arg->msg_length);
}

/* Drop bytes already taken from the front of b. */
static void compact(sr__buf *b, size_t *pos)
{
    if (*pos == 0)
        return;
    if (*pos >= b->len) {
        b->len = 0;
    } else if (*pos > 65536 && *pos * 2 > b->len) {
        memmove(b->p, b->p + *pos, b->len - *pos);
        b->len -= *pos;
    } else {
        return;
    }
    *pos = 0;
}

static signalr_err ws_fail(signalr_ws *ws, signalr_error *err,
                           signalr_err code, const char *why)
{
    ws->state = SIGNALR_WS_CLOSED;
    ws->failed = code;
    snprintf(ws->why, sizeof ws->why, "%s", why);
    return sr__fail(err, code, "%s", why);
}

signalr_err signalr_ws_new(signalr_ws **out, const char *host,
                           const char *path, const char *headers,
                           signalr_error *err)
{
    static const struct wslay_event_callbacks cbs = {
        recv_cb, send_cb, genmask_cb, NULL, NULL, NULL, msg_cb
    };
    static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char nonce[16], sha[EVP_MAX_MD_SIZE];
    char key[32], both[64];
    unsigned shalen = 0;
    signalr_ws *ws;

    sr__ok(err);
    if (!out || !host || !*host || !path || *path != '/')
        return sr__fail(err, SIGNALR_EINVAL, "a WebSocket needs a host and "
                        "a path starting with /");
    if (strpbrk(host, "\r\n") || strpbrk(path, "\r\n \t"))
        return sr__fail(err, SIGNALR_EINVAL, "the host or path holds a "
                        "line break or blank");
    *out = NULL;
    ws = calloc(1, sizeof *ws);
    if (!ws)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        free(ws);
        return sr__fail(err, SIGNALR_ECRYPTO, "no random bytes for the "
                        "WebSocket key");
    }
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
    memcpy(both, key, 24);
    memcpy(both + 24, GUID, sizeof GUID - 1);
    if (!EVP_Digest(both, 24 + sizeof GUID - 1, sha, &shalen, EVP_sha1(),
                    NULL)) {
        free(ws);
        return sr__fail(err, SIGNALR_ECRYPTO, "SHA-1 failed");
    }
    EVP_EncodeBlock((unsigned char *)ws->accept, sha, (int)shalen);
    if (wslay_event_context_client_init(&ws->ctx, &cbs, ws)) {
        free(ws);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, MAX_MESSAGE);
    sr__buf_adds(&ws->out, "GET ");
    sr__buf_adds(&ws->out, path);
    sr__buf_adds(&ws->out, " HTTP/1.1\r\nHost: ");
    sr__buf_adds(&ws->out, host);
    sr__buf_adds(&ws->out, "\r\nUpgrade: websocket\r\nConnection: Upgrade"
                 "\r\nSec-WebSocket-Key: ");
    sr__buf_adds(&ws->out, key);
    sr__buf_adds(&ws->out, "\r\nSec-WebSocket-Version: 13\r\n");
    if (headers)
        sr__buf_adds(&ws->out, headers);
    sr__buf_adds(&ws->out, "\r\n");
    if (ws->out.oom) {
        signalr_ws_free(ws);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    ws->mask_pos = sizeof ws->masks; /* drawn on the first frame */
    ws->state = SIGNALR_WS_UPGRADING;
    *out = ws;
    return SIGNALR_OK;
}

void signalr_ws_free(signalr_ws *ws)
{
    if (!ws)
        return;
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    sr__buf_free(&ws->head);
    sr__buf_free(&ws->out);
    sr__buf_free(&ws->in);
    sr__buf_free(&ws->rx);
    free(ws);
}

/* The value of header name in the head h (NUL terminated), or NULL. */
static const char *header(const char *h, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *line = strstr(h, "\r\n");

    while (line && line[2] != '\r') {
        const char *v, *end;
        line += 2;
        end = strstr(line, "\r\n");
        if (!end)
            return NULL;
        if ((size_t)(end - line) > nl && line[nl] == ':' &&
            !strncasecmp(line, name, nl)) {
            v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            *vlen = (size_t)(end - v);
            return v;
        }
        line = end;
    }
    return NULL;
}

static signalr_err check_answer(signalr_ws *ws, signalr_error *err)
{
    const char *h = ws->head.p, *v;
    size_t vl;
    char why[160];
    int status = 0;

    if (strncmp(h, "HTTP/1.", 7) || !h[7] || h[8] != ' ' ||
        sscanf(h + 9, "%3d", &status) != 1)
        return ws_fail(ws, err, SIGNALR_EREPLY, "the WebSocket upgrade "
                       "was not answered with HTTP");
    ws->status = status;
    if (status != 101) {
        snprintf(why, sizeof why, "the service answered %d to the "
                 "WebSocket upgrade (101 expected)", status);
        ws_fail(ws, err, SIGNALR_ESTATUS, why);
        if (err)
            err->status = status;
        return SIGNALR_ESTATUS;
    }
    v = header(h, "upgrade", &vl);
    if (!v || vl != 9 || strncasecmp(v, "websocket", 9))
        return ws_fail(ws, err, SIGNALR_EREPLY, "the 101 answer has no "
                       "Upgrade: websocket");
    v = header(h, "sec-websocket-accept", &vl);
    if (!v || vl != strlen(ws->accept) || memcmp(v, ws->accept, vl))
        return ws_fail(ws, err, SIGNALR_EREPLY, "the 101 answer's "
                       "Sec-WebSocket-Accept does not match the key");
    ws->state = SIGNALR_WS_OPEN;
    return SIGNALR_OK;
}

/* Hand wslay what was read and not taken yet.  wslay stops reading
 * while a control frame it owes (a pong, a close) waits to be written, so
 * those frames are moved to the output in between; bytes it cannot take
 * now stay for the next call. */
static signalr_err drain_rx(signalr_ws *ws, signalr_error *err)
{
    int rounds;

    compact(&ws->in, &ws->in_pos);
    for (rounds = 0; rounds < 64 && ws->rx_pos < ws->rx.len; rounds++) {
        size_t before = ws->rx.len - ws->rx_pos;
        ws->feed = (const unsigned char *)ws->rx.p + ws->rx_pos;
        ws->feed_len = before;
        if (wslay_event_recv(ws->ctx) != 0) {
            ws->feed_len = 0;
            return ws_fail(ws, err, SIGNALR_EREPLY, "the service broke "
                           "the WebSocket protocol");
        }
        ws->rx_pos += before - ws->feed_len;
        ws->feed_len = 0;
        if (ws->in.oom)
            return ws_fail(ws, err, SIGNALR_ENOMEM, "out of memory");
        if (ws->rx_pos == ws->rx.len || !wslay_event_get_read_enabled(ws->ctx))
            break;
        if (before == ws->rx.len - ws->rx_pos) {
            /* nothing taken: write what wslay owes, then try again */
            size_t out_before = ws->out.len;
            if (!wslay_event_want_write(ws->ctx) ||
                ws->out.len - ws->out_pos >= OUT_HIGH)
                break;
            if (wslay_event_send(ws->ctx) != 0)
                return ws_fail(ws, err, SIGNALR_ENOMEM, "the WebSocket "
                               "could not write its frames");
            if (ws->out.len == out_before)
                break;
        }
    }
    if (!wslay_event_get_read_enabled(ws->ctx)) {
        ws->rx_pos = ws->rx.len; /* after a close, nothing more is read */
        if (!wslay_event_get_close_received(ws->ctx) &&
            ws->state != SIGNALR_WS_CLOSED) {
            /* wslay stopped reading on its own: a protocol error or a
             * message over 16 MiB (it queued the close frame saying so) */
            ws->state = SIGNALR_WS_CLOSED;
            ws->failed = SIGNALR_EREPLY;
            snprintf(ws->why, sizeof ws->why, "the service broke the "
                     "WebSocket protocol");
            return sr__fail(err, SIGNALR_EREPLY, "%s", ws->why);
        }
    }
    compact(&ws->rx, &ws->rx_pos);
    if (wslay_event_get_close_received(ws->ctx) && ws->state == SIGNALR_WS_OPEN)
        ws->state = SIGNALR_WS_CLOSING;
    return SIGNALR_OK;
}

signalr_err signalr_ws_input(signalr_ws *ws, const char *data, size_t len,
                             signalr_error *err)
{
    sr__ok(err);
    if (!ws || (len && !data))
        return sr__fail(err, SIGNALR_EINVAL, "missing WebSocket or data");
    if (ws->state == SIGNALR_WS_CLOSED)
        return ws->failed ? sr__fail(err, ws->failed, "%s", ws->why)
                          : SIGNALR_OK;
    if (ws->state == SIGNALR_WS_UPGRADING) {
        size_t i, start = ws->head.len > 3 ? ws->head.len - 3 : 0;
        signalr_err rc;

        sr__buf_add(&ws->head, data, len);
        sr__buf_add(&ws->head, "", 1); /* a NUL after the bytes */
        if (ws->head.oom)
            return ws_fail(ws, err, SIGNALR_ENOMEM, "out of memory");
        ws->head.len--;
        for (i = start; i + 3 < ws->head.len; i++)
            if (!memcmp(ws->head.p + i, "\r\n\r\n", 4))
                break;
        if (i + 3 >= ws->head.len) {
            if (ws->head.len > MAX_HEAD)
                return ws_fail(ws, err, SIGNALR_EREPLY, "the upgrade "
                               "answer's head is over 16 KiB");
            return SIGNALR_OK;
        }
        {
            size_t rest_at = i + 4, rest = ws->head.len - rest_at;
            char *tail = NULL;
            if (rest) {
                tail = sr__strndup(ws->head.p + rest_at, rest);
                if (!tail)
                    return ws_fail(ws, err, SIGNALR_ENOMEM, "out of memory");
            }
            ws->head.p[rest_at] = '\0';
            rc = check_answer(ws, err);
            sr__buf_free(&ws->head);
            if (rc || !rest) {
                free(tail);
                return rc;
            }
            rc = signalr_ws_input(ws, tail, rest, err);
            free(tail);
            return rc;
        }
    }
    sr__buf_add(&ws->rx, data, len);
    if (ws->rx.oom)
        return ws_fail(ws, err, SIGNALR_ENOMEM, "out of memory");
    return drain_rx(ws, err);
}

/* A binary message as one frame straight into the output, when nothing
 * waits in wslay (its queue, a frame half written, a control frame) and
 * the output keeps within OUT_HIGH: the order on the wire stays the
 * order of the calls.  wslay masks a byte at
 * a time (about 8 instructions a byte); this masks 8 bytes at a time.
 * -1 when no mask could be drawn (wslay's path then reports it). */
static int send_direct(signalr_ws *ws, const char *data, size_t len,
                       signalr_error *err)
{
    unsigned char h[14], m8[8];
    size_t hl = 2, start = ws->out.len, i;
    unsigned char *p;
    uint64_t k, v;

    h[0] = 0x82; /* FIN, binary */
    if (len < 126) {
        h[1] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        h[1] = 0x80 | 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    if (next_mask(ws, h + hl, 4))
        return -1;
    hl += 4;
    sr__buf_add(&ws->out, (const char *)h, hl);
    if (len)
        sr__buf_add(&ws->out, data, len);
    if (ws->out.oom)
        return ws_fail(ws, err, SIGNALR_ENOMEM, "out of memory");
    p = (unsigned char *)ws->out.p + start + hl;
    memcpy(m8, h + hl - 4, 4);
    memcpy(m8 + 4, h + hl - 4, 4);
    memcpy(&k, m8, 8);
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&v, p + i, 8);
        v ^= k;
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++)
        p[i] ^= m8[i & 3];
    return SIGNALR_OK;
}

signalr_err signalr_ws_send(signalr_ws *ws, const char *data, size_t len,
                            signalr_error *err)
{
    struct wslay_event_msg m;

    sr__ok(err);
    if (!ws || (len && !data))
        return sr__fail(err, SIGNALR_EINVAL, "missing WebSocket or data");
    if (ws->state != SIGNALR_WS_UPGRADING && ws->state != SIGNALR_WS_OPEN)
        return sr__fail(err, SIGNALR_ECONNECT, "the WebSocket is closed");
    if (ws->state == SIGNALR_WS_OPEN && !wslay_event_want_write(ws->ctx) &&
        ws->out.len - ws->out_pos < OUT_HIGH &&
        len + 14 <= OUT_HIGH - (ws->out.len - ws->out_pos)) {
        int r = send_direct(ws, data, len, err);

        if (r >= 0)
            return (signalr_err)r;
    }
    m.opcode = WSLAY_BINARY_FRAME;
    m.msg = (const uint8_t *)data;
    m.msg_length = len;
    if (wslay_event_queue_msg(ws->ctx, &m))
        return sr__fail(err, SIGNALR_ENOMEM, "the message cannot be queued");
    return SIGNALR_OK;
}

void signalr_ws_output(signalr_ws *ws, const char **data, size_t *len)
{
    compact(&ws->out, &ws->out_pos);
    if (ws->state != SIGNALR_WS_UPGRADING && ws->ctx &&
        wslay_event_want_write(ws->ctx) &&
        ws->out.len - ws->out_pos < OUT_HIGH) {
        if (wslay_event_send(ws->ctx) != 0 && ws->state != SIGNALR_WS_CLOSED)
            ws_fail(ws, NULL, SIGNALR_ENOMEM, "the WebSocket could not "
                    "write its frames");
        if (ws->rx_pos < ws->rx.len && ws->state != SIGNALR_WS_CLOSED)
            (void)drain_rx(ws, NULL);
    }
    *data = ws->out.p ? ws->out.p + ws->out_pos : "";
    *len = ws->out.len - ws->out_pos;
}

void signalr_ws_written(signalr_ws *ws, size_t n)
{
    if (n > ws->out.len - ws->out_pos)
        n = ws->out.len - ws->out_pos;
    ws->out_pos += n;
    ws->taken += n;
}

unsigned long long signalr_ws_taken(const signalr_ws *ws)
{
    return ws->taken;
}

void signalr_ws_stream(const signalr_ws *ws, const char **data, size_t *len)
{
    *data = ws->in.p ? ws->in.p + ws->in_pos : "";
    *len = ws->in.len - ws->in_pos;
}

void signalr_ws_consume(signalr_ws *ws, size_t n)
{
    if (n > ws->in.len - ws->in_pos)
        n = ws->in.len - ws->in_pos;
    ws->in_pos += n;
}

size_t signalr_ws_unsent(const signalr_ws *ws)
{
    return ws->out.len - ws->out_pos +
           (ws->ctx ? wslay_event_get_queued_msg_length(ws->ctx) : 0);
}

void signalr_ws_close(signalr_ws *ws, int code, const char *reason)
{
    if (ws->state == SIGNALR_WS_OPEN || ws->state == SIGNALR_WS_CLOSING) {
        size_t n = reason ? strlen(reason) : 0;
        (void)wslay_event_queue_close(ws->ctx, (uint16_t)code,
                                      (const uint8_t *)reason,
                                      n > 123 ? 123 : n);
        ws->state = SIGNALR_WS_CLOSING;
    } else if (ws->state == SIGNALR_WS_UPGRADING) {
        ws->state = SIGNALR_WS_CLOSED;
    }
}

int signalr_ws_state(const signalr_ws *ws, int *close_code)
{
    if (close_code)
        *close_code = ws->close_code;
    if (ws->state == SIGNALR_WS_CLOSING && ws->ctx &&
        wslay_event_get_close_sent(ws->ctx) &&
        wslay_event_get_close_received(ws->ctx) &&
        ws->out.len == ws->out_pos)
        return SIGNALR_WS_CLOSED;
    return ws->state;
}
