/* fuzz_svcproto.c - what a server connection reads from the network:
 * the bytes go through the WebSocket client (as the answer to its
 * upgrade, then frames) and the stream it yields through the
 * service-protocol reader, frame after frame, as persistent mode reads
 * them.  The first byte picks how the input is split and whether a
 * valid upgrade answer comes first (else the bytes are the answer).  Invariants: the
 * reader never claims more bytes than it was given, a message's strings
 * and maps lie inside its frame, a map it accepted always iterates to its
 * end, ConnectionData carries any bytes there and back, and a data
 * message built from any JSON text the core accepts reads back as its
 * own type. */
#include "signalr.h"

#include <assert.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_stream(const char *p, size_t n)
{
    size_t used = 0, k;
    signalr_sp_message m;
    signalr_error e;

    while (n) {
        int r = signalr_sp_next(p, n, 1 << 20, &m, &used, &e);
        assert(used <= n);
        if (r == 0 || (r < 0 && used == 0))
            return;
        if (r == 1) {
            for (k = 0; k < 4; k++)
                assert(!m.str[k] || (m.str[k] >= p && m.str[k] + m.len[k] <= p + used));
            assert(m.nping <= SIGNALR_SP_MAX_PING);
            for (k = 0; k < 2; k++) {
                signalr_sp_pairs it;
                const char *key, *val;
                size_t kl, vl;
                int got;
                assert(!m.map[k] || (m.map[k] >= p && m.map[k] + m.map_len[k] <= p + used));
                signalr_sp_pairs_init(&it, m.map[k], m.map_len[k]);
                while ((got = signalr_sp_pairs_next(&it, &key, &kl, &val, &vl)) == 1)
                    assert(key >= m.map[k] && key + kl <= m.map[k] + m.map_len[k] &&
                           (!val || (val >= m.map[k] && val + vl <= m.map[k] + m.map_len[k])));
                assert(got == 0); /* a map the reader accepted always reads */
            }
        }
        p += used;
        n -= used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    signalr_ws *ws = NULL;
    signalr_error e;
    const char *out, *st;
    size_t n, step, i;

    if (size < 1)
        return 0;
    /* the reader alone, on the raw bytes */
    read_stream((const char *)data + 1, size - 1);

    /* the bytes as a client's payload: ConnectionData reads back whole */
    {
        char *f = NULL;
        size_t fl = 0, used = 0;
        signalr_sp_message m;
        assert(signalr_sp_encode_connection_data("c1", (const char *)data + 1, size - 1,
                                                 data[0] & 3, &f, &fl, &e) == SIGNALR_OK);
        assert(signalr_sp_next(f, fl, 0, &m, &used, &e) == 1 && used == fl);
        assert(m.type == SIGNALR_SP_CONNECTION_DATA && m.len[1] == size - 1 &&
               !memcmp(m.str[1], data + 1, size - 1) && m.num[0] == (data[0] & 3));
        signalr_free(f);
    }

    /* the bytes as a data message's arguments */
    {
        signalr_sp_data d;
        char *f = NULL;
        size_t fl = 0, used = 0;
        signalr_sp_message m;
        memset(&d, 0, sizeof d);
        d.type = SIGNALR_SP_MULTI_GROUP_BROADCAST;
        d.target = "t";
        d.arguments = (const char *)data + 1;
        d.arguments_len = size - 1;
        d.protocols = SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK;
        if (signalr_sp_encode_data(&d, &f, &fl, &e) == SIGNALR_OK) {
            assert(signalr_sp_next(f, fl, 0, &m, &used, &e) == 1);
            assert(used == fl && m.type == SIGNALR_SP_MULTI_GROUP_BROADCAST);
            signalr_free(f);
        }
    }

    /* through the WebSocket: an answer head, then frames */
    if (signalr_ws_new(&ws, "h", "/server/?hub=h", NULL, &e))
        return 0;
    signalr_ws_output(ws, &out, &n);
    if (!(data[0] & 0x40)) {
        /* a valid answer first, so the bytes are frames */
        static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        const char *k = strstr(out, "Sec-WebSocket-Key: ");
        unsigned char sha[EVP_MAX_MD_SIZE];
        unsigned sl = 0;
        char both[64], acc[32], head[160];
        memcpy(both, k + 19, 24);
        memcpy(both + 24, GUID, sizeof GUID - 1);
        EVP_Digest(both, 24 + sizeof GUID - 1, sha, &sl, EVP_sha1(), NULL);
        EVP_EncodeBlock((unsigned char *)acc, sha, (int)sl);
        snprintf(head, sizeof head, "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
        assert(signalr_ws_input(ws, head, strlen(head), &e) == SIGNALR_OK);
        assert(signalr_ws_state(ws, NULL) == SIGNALR_WS_OPEN);
    }
    signalr_ws_written(ws, n);
    step = (data[0] & 0x3f) + 1;
    for (i = 1; i < size; i += step) {
        size_t len = size - i < step ? size - i : step;
        if (signalr_ws_input(ws, (const char *)data + i, len, &e))
            break;
        signalr_ws_output(ws, &out, &n);
        signalr_ws_written(ws, n);
        signalr_ws_stream(ws, &st, &n);
        read_stream(st, n);
        signalr_ws_consume(ws, n);
    }
    (void)signalr_ws_state(ws, NULL);
    signalr_ws_free(ws);
    return 0;
}
