/* fuzz_hubproto.c - what a hub server reads from its clients: arbitrary
 * bytes through the hub-protocol reader (handshake first, or JSON, or
 * MessagePack from the start), cut into pieces of a width the first byte
 * picks; and the same bytes as JSON given to the writers.  Invariants:
 * the reader never takes more than it was given and stops for good after
 * an error; every string it returns is valid UTF-8 and every JSON text
 * valid JSON of the right kind; a value read from MessagePack comes back
 * the same text through the MessagePack writer and reader (numbers
 * exact); what the writers accept reads back as what was written.
 * First byte: bits 0-1 the mode (0 handshake, 1 JSON, 2 MessagePack, 3
 * handshake with a JSON-only hub), bits 2-5 the piece width (0: all at
 * once), bit 6 a max_message of 64 bytes. */
#include "internal.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *p, size_t n)
{
    if (p)
        assert(!sr__utf8_bad(p, n));
}

static void check_json(const char *p, size_t n, char open)
{
    if (!p)
        return;
    assert(sr__json_valid(p, n));
    if (open)
        assert(sr__json_is(p, n, open));
}

/* A value read from MessagePack, written as a result and read back. */
static void round_trip(const char *json, size_t n)
{
    signalr_hub_reader *r = NULL;
    signalr_hub_message m;
    signalr_error e;
    char *out = NULL;
    size_t len = 0, used = 0;

    if (!json)
        return;
    assert(signalr_hub_encode_completion(SIGNALR_HUB_MESSAGEPACK, "1", json,
                                         n, NULL, &out, &len, &e) ==
           SIGNALR_OK);
    assert(!signalr_hub_reader_new(&r, 0, (size_t)-1 / 4, &e));
    assert(!signalr_hub_reader_set_protocol(r, SIGNALR_HUB_MESSAGEPACK, &e));
    assert(signalr_hub_next(r, out, len, &used, &m, &e) == 1);
    assert(used == len && m.type == SIGNALR_HUB_COMPLETION);
    assert(m.result_len == n && !memcmp(m.result, json, n));
    signalr_hub_reader_free(r);
    signalr_free(out);
}

static void check_message(const signalr_hub_message *m, int mp)
{
    check_text(m->invocation_id, m->invocation_id_len);
    check_text(m->target, m->target_len);
    check_text(m->error, m->error_len);
    check_text(m->protocol, m->protocol_len);
    check_json(m->arguments, m->arguments_len, '[');
    check_json(m->stream_ids, m->stream_ids_len, '[');
    check_json(m->headers, m->headers_len, '{');
    check_json(m->item, m->item_len, 0);
    check_json(m->result, m->result_len, 0);
    switch (m->type) {
    case SIGNALR_HUB_INVOCATION:
    case SIGNALR_HUB_STREAM_INVOCATION:
        /* the arguments, or (MessagePack only) why JSON cannot carry
         * them: one of the two */
        assert(m->target && m->target_len);
        assert(!m->arguments != !m->error);
        assert(mp || m->arguments);
        if (m->type == SIGNALR_HUB_STREAM_INVOCATION)
            assert(m->invocation_id && m->invocation_id_len);
        break;
    case SIGNALR_HUB_STREAM_ITEM:
        assert(m->invocation_id && m->item);
        break;
    case SIGNALR_HUB_COMPLETION:
        assert(m->invocation_id && !(m->error && m->result));
        break;
    case SIGNALR_HUB_HANDSHAKE:
        assert(m->protocol && m->version >= 1 && m->version <= 2);
        break;
    default:
        assert(m->type >= SIGNALR_HUB_CANCEL_INVOCATION &&
               m->type <= SIGNALR_HUB_SEQUENCE);
        break;
    }
    if (mp) {
        round_trip(m->arguments, m->arguments_len);
        round_trip(m->item, m->item_len);
        round_trip(m->result, m->result_len);
    }
}

static void read_stream(int mode, size_t step, size_t max,
                        const char *p, size_t n)
{
    signalr_hub_reader *r = NULL;
    signalr_hub_message m;
    signalr_error e;

    assert(!signalr_hub_reader_new(&r, mode == 3 ? SIGNALR_HUB_JSON : 0,
                                   max, &e));
    if (mode == 1 || mode == 2)
        assert(!signalr_hub_reader_set_protocol(r, mode, &e));
    while (n) {
        size_t piece = step && n > step ? step : n, used = 0;
        const char *q = p;
        p += piece;
        n -= piece;
        while (piece) {
            int got = signalr_hub_next(r, q, piece, &used, &m, &e);
            assert(used <= piece);
            if (got < 0) {
                assert(e.code == SIGNALR_EPROTOCOL ||
                       e.code == SIGNALR_ETOOBIG);
                /* stopped for good */
                assert(signalr_hub_next(r, "x", 1, &used, &m, &e) == -1 &&
                       e.code == SIGNALR_EINVAL);
                goto done;
            }
            if (got == 0) {
                assert(used == piece);
                break;
            }
            check_message(&m, signalr_hub_reader_protocol(r) ==
                          SIGNALR_HUB_MESSAGEPACK &&
                          m.type != SIGNALR_HUB_HANDSHAKE);
            q += used;
            piece -= used;
        }
    }
done:
    signalr_hub_reader_free(r);
}

/* The bytes as JSON given to a writer, read back. */
static void write_read(int proto, const char *p, size_t n)
{
    signalr_hub_reader *r = NULL;
    signalr_hub_message m;
    signalr_error e;
    char *out = NULL;
    size_t len = 0, used = 0;
    int got;

    if (signalr_hub_encode_stream_item(proto, "s", p, n, &out, &len, &e))
        return;
    assert(!signalr_hub_reader_new(&r, 0, (size_t)-1 / 4, &e));
    assert(!signalr_hub_reader_set_protocol(r, proto, &e));
    got = signalr_hub_next(r, out, len, &used, &m, &e);
    if (got == 1) {
        assert(used == len && m.type == SIGNALR_HUB_STREAM_ITEM);
        check_message(&m, 0);
        if (proto == SIGNALR_HUB_JSON) { /* the text as given, trimmed */
            while (n && strchr(" \t\r\n", p[0])) {
                p++;
                n--;
            }
            assert(m.item_len <= n && !memcmp(m.item, p, m.item_len));
        }
    } else {
        /* what JSON allows and the reader refuses: too deep, a lone
         * surrogate, an infinity in MessagePack */
        assert(got == -1 && e.code == SIGNALR_EPROTOCOL);
    }
    signalr_hub_reader_free(r);
    signalr_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data + 1;
    size_t n = size ? size - 1 : 0, step, max;
    int mode;

    if (size < 1)
        return 0;
    mode = data[0] & 3;
    step = (data[0] >> 2) & 15;
    max = data[0] & 0x40 ? 64 : 0;
    read_stream(mode, step, max, p, n);
    write_read(SIGNALR_HUB_JSON, p, n);
    write_read(SIGNALR_HUB_MESSAGEPACK, p, n);
    return 0;
}
