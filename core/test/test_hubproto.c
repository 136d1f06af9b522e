/* test_hubproto.c - the hub protocol: every message both ways in both
 * protocols (one table: the JSON and the MessagePack form of a message
 * read to the same result), input split anywhere, the handshake, sizes,
 * depth, UTF-8, and numbers kept exact through JSON and MessagePack.
 * MessagePack vectors are built by hand from HubProtocol.md's array
 * layouts and were decoded with lua-messagepack to check them. */
#include "harness.h"
#include "signalr.h"

#include <stdlib.h>

static char hexbuf[8192];

static const char *hex(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n && 3 * i + 3 < sizeof hexbuf; i++)
        snprintf(hexbuf + 3 * i, 4, "%02x ", (unsigned char)p[i]);
    if (n)
        hexbuf[3 * i - 1] = '\0';
    else
        hexbuf[0] = '\0';
    return hexbuf;
}

static size_t unhex(const char *h, char *out)
{
    size_t n = 0;
    unsigned v;

    while (*h) {
        if (*h == ' ') {
            h++;
            continue;
        }
        sscanf(h, "%2x", &v);
        out[n++] = (char)v;
        h += 2;
    }
    return n;
}

/* A message as one line: its type and the fields it set. */
static void show(const signalr_hub_message *m, char *o, size_t cap)
{
    size_t n = (size_t)snprintf(o, cap, "t=%d", m->type);

#define FIELD(name, p, len)                                                 \
    if ((p) && n < cap)                                                     \
        n += (size_t)snprintf(o + n, cap - n, " " name "=%.*s", (int)(len), \
                              (p));
    FIELD("id", m->invocation_id, m->invocation_id_len)
    FIELD("target", m->target, m->target_len)
    FIELD("args", m->arguments, m->arguments_len)
    FIELD("ids", m->stream_ids, m->stream_ids_len)
    FIELD("headers", m->headers, m->headers_len)
    FIELD("item", m->item, m->item_len)
    FIELD("result", m->result, m->result_len)
    FIELD("error", m->error, m->error_len)
    FIELD("protocol", m->protocol, m->protocol_len)
#undef FIELD
    if (m->allow_reconnect && n < cap)
        n += (size_t)snprintf(o + n, cap - n, " reconnect");
    if ((m->type == SIGNALR_HUB_ACK || m->type == SIGNALR_HUB_SEQUENCE) &&
        n < cap)
        n += (size_t)snprintf(o + n, cap - n, " seq=%lld", m->sequence_id);
    if (m->type == SIGNALR_HUB_HANDSHAKE && n < cap)
        snprintf(o + n, cap - n, " v=%d", m->version);
}

/* Feed in[0..len) to a new reader step bytes at a time (0: all at once)
 * and show every message, " | " between; an error ends the line with
 * "ERR <name>: <msg>".  proto 0: a handshake first. */
static const char *read_all(int proto, size_t max, const char *in,
                            size_t len, size_t step)
{
    static char line[16384];
    signalr_hub_reader *r = NULL;
    signalr_hub_message m;
    signalr_error e;
    size_t at = 0, o = 0;

    line[0] = '\0';
    if (signalr_hub_reader_new(&r, 0, max, &e))
        return "no reader";
    if (proto)
        signalr_hub_reader_set_protocol(r, proto, &e);
    while (at < len) {
        size_t n = step && len - at > step ? step : len - at, used = 0;
        const char *p = in + at;
        int got;

        at += n;
        while ((got = signalr_hub_next(r, p, n, &used, &m, &e)) == 1) {
            if (used > n) {
                snprintf(line + o, sizeof line - o, "USED>LEN");
                goto done;
            }
            if (o)
                o += (size_t)snprintf(line + o, sizeof line - o, " | ");
            show(&m, line + o, sizeof line - o);
            o += strlen(line + o);
            p += used;
            n -= used;
        }
        if (got < 0) {
            snprintf(line + o, sizeof line - o, "%sERR %s: %s",
                     o ? " | " : "", signalr_err_name(e.code), e.msg);
            goto done;
        }
        if (used != n) {
            snprintf(line + o, sizeof line - o, "NEED MORE USED %zu OF %zu",
                     used, n);
            goto done;
        }
    }
done:
    signalr_hub_reader_free(r);
    return line;
}

/* One message in both protocols and what the reader makes of either. */
static const struct both {
    const char *json;  /* without its 0x1E */
    const char *mp;    /* hex, with the length prefix; NULL: JSON only */
    const char *want;
} BOTH[] = {
    { "{\"type\":1,\"target\":\"Send\",\"arguments\":[\"hi\",1]}",
      "0e 95 01 80 c0 a4 53 65 6e 64 92 a2 68 69 01",
      "t=1 target=Send args=[\"hi\",1]" },
    { "{\"type\":1,\"headers\":{\"h\":\"v\"},\"invocationId\":\"7\","
      "\"target\":\"Add\",\"arguments\":[1,2],\"streamIds\":[\"s1\"]}",
      "14 96 01 81 a1 68 a1 76 a1 37 a3 41 64 64 92 01 02 91 a2 73 31",
      "t=1 id=7 target=Add args=[1,2] ids=[\"s1\"] headers={\"h\":\"v\"}" },
    { "{\"type\":1,\"invocationId\":\"\",\"target\":\"T\",\"arguments\":[],"
      "\"streamIds\":[]}",
      "08 96 01 80 a0 a1 54 90 90",
      "t=1 target=T args=[]" },
    { "{\"type\":4,\"invocationId\":\"8\",\"target\":\"Count\","
      "\"arguments\":[10]}",
      "0e 96 04 80 a1 38 a5 43 6f 75 6e 74 91 0a 90",
      "t=4 id=8 target=Count args=[10]" },
    { "{\"type\":2,\"invocationId\":\"s1\",\"item\":{\"a\":[true,null]}}",
      "0c 94 02 80 a2 73 31 81 a1 61 92 c3 c0",
      "t=2 id=s1 item={\"a\":[true,null]}" },
    { "{\"type\":3,\"invocationId\":\"9\",\"result\":42}",
      "07 95 03 80 a1 39 03 2a", "t=3 id=9 result=42" },
    { "{\"type\":3,\"invocationId\":\"9\",\"result\":null}",
      "07 95 03 80 a1 39 03 c0", "t=3 id=9 result=null" },
    { "{\"type\":3,\"invocationId\":\"9\",\"error\":\"boom\"}",
      "0b 95 03 80 a1 39 01 a4 62 6f 6f 6d", "t=3 id=9 error=boom" },
    { "{\"type\":3,\"invocationId\":\"9\"}", "06 94 03 80 a1 39 02",
      "t=3 id=9" },
    { "{\"type\":5,\"invocationId\":\"8\"}", "05 93 05 80 a1 38",
      "t=5 id=8" },
    { "{\"type\":6}", "02 91 06", "t=6" },
    { "{\"type\":7}", "04 93 07 c0 c2", "t=7" },
    { "{\"type\":7}", "03 92 07 c0", "t=7" },
    { "{\"type\":7,\"error\":\"bye\",\"allowReconnect\":true}",
      "07 93 07 a3 62 79 65 c3", "t=7 error=bye reconnect" },
    { "{\"type\":8,\"sequenceId\":1394}", "05 92 08 cd 05 72",
      "t=8 seq=1394" },
    { "{\"type\":9,\"sequenceId\":1}", "03 92 09 01", "t=9 seq=1" },
    /* a type this reader does not know is passed over */
    { "{\"type\":99,\"x\":1}\x1e{\"type\":6}", "04 92 63 a1 78 02 91 06",
      "t=6" },
    { "{\"type\":-1}\x1e{\"type\":6}", "03 92 ff c0 02 91 06", "t=6" },
    /* JSON only: member order, escapes, white space, unknown members */
    { "{\"arguments\":[1],\"target\":\"T\",\"type\":1}", NULL,
      "t=1 target=T args=[1]" },
    { "{\"t\\u0079pe\":1,\"target\":\"S\\u00e9nd\\n\",\"arguments\":[]}",
      NULL, "t=1 target=S\xc3\xa9nd\n args=[]" },
    { " { \"type\" : 6 , \"extra\" : {\"deep\":[1,{}]} } ", NULL, "t=6" },
    { "{\"type\":1,\"target\":\"a\",\"target\":\"b\",\"arguments\":[]}",
      NULL, "t=1 target=b args=[]" },
    { "{\"type\":5,\"invocationId\":\"\\ud83d\\ude00\"}", NULL,
      "t=5 id=\xf0\x9f\x98\x80" },
    /* MessagePack only: headers, old clients, wider encodings */
    { "{\"type\":6}", "0b 9a 06 01 02 03 04 05 06 07 08 09", "t=6" },
    { "{\"type\":6}", "0a dc 00 01 d2 00 00 00 06 ff ff", "t=6" },
    { "{\"type\":5,\"invocationId\":\"8\"}", "08 93 05 de 00 00 d9 01 38",
      "t=5 id=8" },
};

/* Malformed messages: what the reader says. */
static const struct bad {
    int proto;
    const char *in; /* JSON text (0x1E added) or hex */
    const char *msg;
} BAD[] = {
    { 1, "{\"target\":\"x\",\"arguments\":[]}",
      "Missing required property 'type'." },
    { 1, "{\"type\":\"1\"}", "Expected 'type' to be of type Number." },
    { 1, "{\"type\":1.0}", "Expected 'type' to be of type Number." },
    { 1, "{\"type\":null}", "Expected 'type' to be of type Number." },
    { 1, "{\"type\":4294967297}", "Expected 'type' to be of type Number." },
    { 1, "{\"type\":1,\"arguments\":[]}",
      "Missing required property 'target'." },
    { 1, "{\"type\":1,\"target\":\"\",\"arguments\":[]}",
      "Missing required property 'target'." },
    { 1, "{\"type\":1,\"target\":\"x\"}",
      "Missing required property 'arguments'." },
    { 1, "{\"type\":1,\"target\":\"x\",\"arguments\":{}}",
      "Expected 'arguments' to be of type Array." },
    { 1, "{\"type\":4,\"target\":\"x\",\"arguments\":[]}",
      "Missing required property 'invocationId'." },
    { 1, "{\"type\":2,\"invocationId\":\"1\"}",
      "Missing required property 'item'." },
    { 1, "{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"e\"}",
      "The 'error' and 'result' properties are mutually exclusive." },
    { 1, "{\"type\":3,\"result\":1}",
      "Missing required property 'invocationId'." },
    { 1, "{\"type\":5,\"invocationId\":5}",
      "Expected 'invocationId' to be of type String." },
    { 1, "{\"type\":5,\"invocationId\":null}",
      "Expected 'invocationId' to be of type String." },
    { 1, "{\"type\":7,\"allowReconnect\":1}",
      "Expected 'allowReconnect' to be true or false." },
    { 1, "{\"type\":8}", "Missing required property 'sequenceId'." },
    { 1, "{\"type\":8,\"sequenceId\":1.5}",
      "Expected 'sequenceId' to be of type Number." },
    { 1, "{\"type\":1,\"target\":\"x\",\"arguments\":[],\"streamIds\":[null]}",
      "Expected 'streamIds' to hold strings." },
    { 1, "{\"type\":1,\"target\":\"x\",\"arguments\":[],\"headers\":[]}",
      "Expected 'headers' to be of type Object." },
    { 1, "{\"type\":5,\"invocationId\":\"1\",\"headers\":{\"a\":1}}",
      "Expected header values to be of type String." },
    { 1, "[1,2]", "the message is not a JSON object" },
    { 1, "{\"type\":6} x", "the message is not a JSON object" },
    { 1, "{\"type\":6", "the message is not a JSON object" },
    { 1, "", "the message is not a JSON object" },
    { 1, "{\"type\":1,\"target\":\"\xff\",\"arguments\":[]}",
      "the message is not valid UTF-8" },
    { 1, "{\"type\":1,\"target\":\"t\",\"arguments\":[\"\xed\xa0\x80\"]}",
      "the message is not valid UTF-8" },
    { 1, "{\"type\":1,\"target\":\"t\",\"arguments\":[\"\\ud800\"]}",
      "the message holds a lone surrogate" },
    { 1, "{\"type\":1,\"target\":\"t\",\"arguments\":[\"\\udc00\\ud800\"]}",
      "the message holds a lone surrogate" },
    { 2, "00", "A message that is not a MessagePack array." },
    { 2, "01 90", "Reading 'messageType' as Int32 failed." },
    { 2, "02 91 a1", "Reading 'messageType' as Int32 failed." },
    { 2, "06 91 cf 00 00 00 01", "Reading 'messageType' as Int32 failed." },
    { 2, "05 94 01 80 c0 a1", "An invocation of fewer than 5 items." },
    { 2, "06 95 01 80 c0 a0 90", "Null or empty target for Invocation "
      "message." },
    { 2, "07 95 01 80 c0 a1 74 80", "Reading array length for 'arguments' "
      "failed." },
    { 2, "08 95 01 80 c0 a2 ff fe 90", "'target' is not valid UTF-8" },
    { 2, "08 95 01 80 c0 c4 01 74 90", "Reading 'target' as String "
      "failed." },
    { 2, "07 95 04 80 c0 a1 74 90", "Null or empty invocation ID for "
      "StreamInvocation message." },
    { 2, "09 96 01 80 c0 a1 74 90 91 a0", "Null or empty value in "
      "streamIds received." },
    { 2, "0a 95 01 81 a1 68 c0 c0 a1 74 90", "Null or empty value in "
      "header." },
    { 2, "04 94 02 80 c0 c0", "Null or empty invocation ID for StreamItem "
      "message." },
    { 2, "05 94 02 80 a1 31", "a value is missing (at byte 6 of the "
      "message)" },
    { 2, "06 95 03 80 a1 31 04 00", "Invalid invocation result kind." },
    { 2, "06 94 03 80 a1 31 03", "A completion without its error or "
      "result." },
    { 2, "02 91 07", "A close without its error." },
    { 2, "04 93 07 c0 01", "Reading 'allowReconnect' as Boolean failed." },
    { 2, "03 92 08 c0", "Reading 'sequenceId' as Int64 failed." },
    /* bytes that are not MessagePack inside the arguments (values JSON
     * cannot carry are the invocation's error: test_unbound) */
    { 2, "08 95 01 80 c0 a1 74 91 c1",
      "a byte that starts no MessagePack value (at byte 8 of the "
      "message)" },
    { 2, "09 95 01 80 c0 a1 74 91 a5 61",
      "a string runs past the message (at byte 8 of the message)" },
};

static void test_both(void)
{
    size_t i, n;
    char buf[512], want[600], rec[512];

    for (i = 0; i < sizeof BOTH / sizeof BOTH[0]; i++) {
        const struct both *c = &BOTH[i];
        size_t step;

        n = strlen(c->json);
        memcpy(rec, c->json, n);
        rec[n++] = '\x1e';
        for (step = 0; step <= 1; step++)
            CHECK_STR(read_all(SIGNALR_HUB_JSON, 0, rec, n, step), c->want,
                      c->json);
        if (!c->mp)
            continue;
        n = unhex(c->mp, buf);
        for (step = 0; step <= 1; step++)
            CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, buf, n, step),
                      c->want, c->mp);
    }
    /* every table case in one stream, split at every possible width */
    for (n = 0, i = 0; i < sizeof BOTH / sizeof BOTH[0]; i++)
        if (BOTH[i].mp)
            n += unhex(BOTH[i].mp, buf + n);
    {
        char all[600];
        size_t step, o = 0;
        memcpy(all, buf, n);
        for (i = 0; i < sizeof BOTH / sizeof BOTH[0]; i++)
            if (BOTH[i].mp)
                o += (size_t)snprintf(want + o, sizeof want - o, "%s%s",
                                      o ? " | " : "", BOTH[i].want);
        for (step = 1; step <= n; step++) {
            const char *got = read_all(SIGNALR_HUB_MESSAGEPACK, 0, all, n,
                                       step);
            if (strcmp(got, want)) {
                CHECK_STR(got, want, "MessagePack stream split");
                break;
            }
        }
        CHECK(step > n, "the MessagePack stream, split at every width");
    }
}

static void test_bad(void)
{
    size_t i, n;
    char buf[512], want[600];

    for (i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const struct bad *c = &BAD[i];

        if (c->proto == SIGNALR_HUB_JSON) {
            n = strlen(c->in);
            memcpy(buf, c->in, n);
            buf[n++] = '\x1e';
        } else {
            n = unhex(c->in, buf);
        }
        snprintf(want, sizeof want, "ERR EPROTOCOL: %s", c->msg);
        CHECK_STR(read_all(c->proto, 0, buf, n, 0), want, c->in);
        CHECK_STR(read_all(c->proto, 0, buf, n, 1), want, c->in);
    }
}

/* [1, {}, nil, "t", args] with its length into out: args are `nested`
 * arrays of one member each around `tail` (tail_len bytes).  Its size. */
static size_t mp_nested(char *out, size_t nested, const char *tail,
                        size_t tail_len)
{
    size_t n = 0, k;

    out[n++] = 0; /* the length, below */
    memcpy(out + n, "\x95\x01\x80\xc0\xa1t", 6);
    n += 6;
    for (k = 0; k < nested; k++)
        out[n++] = (char)0x91;
    memcpy(out + n, tail, tail_len);
    n += tail_len;
    out[0] = (char)(n - 1);
    return n;
}

/* Arguments of valid MessagePack that JSON cannot carry: the invocation
 * still, its arguments absent and why in error (the hub answers it as a
 * binding failure); the messages after it are read as ever. */
static const struct {
    const char *in, *want;
} UNBOUND[] = {
    { "10 95 01 80 c0 a1 74 91 cb 7f f8 00 00 00 00 00 00",
      "NaN and infinities have no JSON form (at byte 8 of the message)" },
    { "10 95 01 80 c0 a1 74 91 cb 7f f0 00 00 00 00 00 00",
      "NaN and infinities have no JSON form (at byte 8 of the message)" },
    { "0a 95 01 80 c0 a1 74 91 d4 01 00",
      "a MessagePack extension type has no JSON form (at byte 8 of the "
      "message)" },
    { "0a 95 01 80 c0 a1 74 91 81 01 02",
      "a map key is not a string: JSON has no other (at byte 9 of the "
      "message)" },
    { "0a 95 01 80 c0 a1 74 91 a2 c3 28",
      "a string is not valid UTF-8 (at byte 8 of the message)" },
};

static void test_unbound(void)
{
    size_t i, n;
    char buf[512], want[700];

    for (i = 0; i < sizeof UNBOUND / sizeof UNBOUND[0]; i++) {
        n = unhex(UNBOUND[i].in, buf);
        /* then a ping: the reader goes on */
        buf[n++] = 0x02;
        buf[n++] = (char)0x91;
        buf[n++] = 0x06;
        snprintf(want, sizeof want, "t=1 target=t error=%s | t=6",
                 UNBOUND[i].want);
        CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, buf, n, 0), want,
                  UNBOUND[i].in);
        CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, buf, n, 1), want,
                  UNBOUND[i].in);
    }
    /* with an id and stream ids after the arguments: both kept */
    n = unhex("15 96 01 80 a1 31 a1 74 92 01 cb 7f f8 00 00 00 00 00 00 "
              "91 a1 73", buf);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, buf, n, 0),
              "t=1 id=1 target=t ids=[\"s\"] error=NaN and infinities have "
              "no JSON form (at byte 10 of the message)",
              "an id and stream ids kept");
    /* at the deepest the arguments may nest: NaN in the innermost of 63
     * containers is unbound arguments too (a 64th container is too deep
     * and stops the reader: test_depth) */
    {
        char want2[200];

        n = mp_nested(buf, SIGNALR_HUB_MAX_DEPTH - 1,
                      "\xcb\x7f\xf8\0\0\0\0\0\0", 9);
        snprintf(want2, sizeof want2, "t=1 target=t error=NaN and "
                 "infinities have no JSON form (at byte %d of the message)",
                 SIGNALR_HUB_MAX_DEPTH - 1 + 7);
        CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, buf, n, 0), want2,
                  "NaN at the deepest");
    }
    /* a JSON invocation's own "error" field is not that */
    n = (size_t)snprintf(buf, sizeof buf, "%s\x1e", "{\"type\":1,\"target\":\"t\","
                         "\"arguments\":[1],\"error\":\"x\"}");
    CHECK_STR(read_all(SIGNALR_HUB_JSON, 0, buf, n, 0), "t=1 target=t args=[1]",
              "a JSON invocation's error field");
}

static void test_handshake(void)
{
    static const struct {
        const char *in;
        const char *want;
    } T[] = {
        { "{\"protocol\":\"json\",\"version\":1}\x1e",
          "t=0 protocol=json v=1" },
        { "{\"protocol\":\"messagepack\",\"version\":2}\x1e",
          "t=0 protocol=messagepack v=2" },
        { "{\"version\":1,\"x\":[{}],\"protocol\":\"JSON\"}\x1e",
          "t=0 protocol=JSON v=1" },
        { "{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e"
          "{\"type\":7}\x1e", "t=0 protocol=json v=1 | t=6 | t=7" },
        { "{\"protocol\":\"messagepack\",\"version\":1}\x1e\x02\x91\x06",
          "t=0 protocol=messagepack v=1 | t=6" },
        { "{\"protocol\":\"blazorpack\",\"version\":1}\x1e",
          "ERR EPROTOCOL: The protocol 'blazorpack' is not supported." },
        { "{\"protocol\":\"json\",\"version\":3}\x1e",
          "ERR EPROTOCOL: The server does not support version 3 of the "
          "'json' protocol." },
        { "{\"protocol\":\"json\",\"version\":0}\x1e",
          "ERR EPROTOCOL: The server does not support version 0 of the "
          "'json' protocol." },
        { "{\"protocol\":\"json\"}\x1e",
          "ERR EPROTOCOL: Missing required property 'version'." },
        { "{\"protocol\":\"json\",\"version\":null}\x1e",
          "ERR EPROTOCOL: Missing required property 'version'." },
        { "{\"version\":1}\x1e",
          "ERR EPROTOCOL: Missing required property 'protocol'." },
        { "{\"protocol\":1,\"version\":1}\x1e",
          "ERR EPROTOCOL: Expected 'protocol' to be of type String." },
        { "{\"protocol\":\"json\",\"version\":\"1\"}\x1e",
          "ERR EPROTOCOL: Expected 'version' to be of type Number." },
        { "protocol=json\x1e",
          "ERR EPROTOCOL: the handshake request is not a JSON object" },
        { "{\"protocol\":\"json\",\"version\":1}",
          "" /* no separator yet: nothing */ },
    };
    size_t i, step, used;
    signalr_hub_reader *r = NULL;
    signalr_hub_message m;
    signalr_error e;
    const char *hs = "{\"protocol\":\"messagepack\",\"version\":1}\x1e";

    for (i = 0; i < sizeof T / sizeof T[0]; i++)
        for (step = 0; step <= 1; step++)
            CHECK_STR(read_all(0, 0, T[i].in, strlen(T[i].in), step),
                      T[i].want, T[i].in);

    /* a hub that speaks JSON only */
    CHECK(signalr_hub_reader_new(&r, SIGNALR_HUB_JSON, 0, &e) == SIGNALR_OK,
          "reader");
    CHECK(signalr_hub_reader_protocol(r) == 0, "no protocol yet");
    CHECK(signalr_hub_next(r, hs, strlen(hs), &used, &m, &e) == -1 &&
          e.code == SIGNALR_EPROTOCOL &&
          !strcmp(e.msg, "The protocol 'messagepack' is not supported."),
          "messagepack refused by a JSON-only hub");
    CHECK(signalr_hub_next(r, "{", 1, &used, &m, &e) == -1 &&
          e.code == SIGNALR_EINVAL, "a stopped reader stays stopped");
    CHECK(signalr_hub_reader_set_protocol(r, SIGNALR_HUB_JSON, &e) ==
          SIGNALR_EINVAL, "no protocol switch once bytes were read");
    signalr_hub_reader_free(r);

    CHECK(signalr_hub_reader_new(&r, 0, 0, &e) == SIGNALR_OK, "reader");
    CHECK(signalr_hub_next(r, hs, strlen(hs), &used, &m, &e) == 1 &&
          used == strlen(hs) && m.type == SIGNALR_HUB_HANDSHAKE &&
          signalr_hub_reader_protocol(r) == SIGNALR_HUB_MESSAGEPACK,
          "the handshake chooses MessagePack");
    CHECK(signalr_hub_next(r, NULL, 0, &used, &m, &e) == 0 && used == 0,
          "no bytes: need more");
    signalr_hub_reader_free(r);
    signalr_hub_reader_free(NULL);
    CHECK(signalr_hub_reader_new(&r, 4, 0, &e) == SIGNALR_EINVAL && !r,
          "unknown protocols: EINVAL");
    CHECK(signalr_hub_next(NULL, "x", 1, &used, &m, &e) == -1 &&
          e.code == SIGNALR_EINVAL, "no reader: EINVAL");
}

static void test_sizes(void)
{
    char big[200];
    size_t n;

    /* 31 bytes and the separator: 32, the limit */
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"type\":6}", 10);
    big[31] = '\x1e';
    CHECK_STR(read_all(SIGNALR_HUB_JSON, 32, big, 32, 0), "t=6",
              "JSON: a message of exactly max bytes");
    CHECK_STR(read_all(SIGNALR_HUB_JSON, 32, big, 32, 1), "t=6",
              "JSON: a message of exactly max bytes, byte by byte");
    big[31] = ' ';
    big[32] = '\x1e';
    CHECK_STR(read_all(SIGNALR_HUB_JSON, 32, big, 33, 0),
              "ERR ETOOBIG: The maximum message size of 32B was exceeded.",
              "JSON: one byte over");
    CHECK_STR(read_all(SIGNALR_HUB_JSON, 32, big, 33, 1),
              "ERR ETOOBIG: The maximum message size of 32B was exceeded.",
              "JSON: one byte over, byte by byte");
    CHECK_STR(read_all(SIGNALR_HUB_JSON, 32, big, 32, 7),
              "ERR ETOOBIG: The maximum message size of 32B was exceeded.",
              "JSON: no separator within max bytes: known before it comes");
    CHECK_STR(read_all(0, 32, big, 33, 3),
              "ERR ETOOBIG: The maximum message size of 32B was exceeded.",
              "the handshake has the same limit");

    /* MessagePack: the prefix counts */
    n = unhex("1f 9f 06 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
              "00 00 00 00 00 00 00 00 00 00 00 00 00", big);
    CHECK(n == 32, "a frame of 32 bytes");
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 32, big, n, 0), "t=6",
              "MessagePack: exactly max bytes");
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 32, big, n, 1), "t=6",
              "MessagePack: exactly max bytes, byte by byte");
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 31, big, n, 1),
              "ERR ETOOBIG: The maximum message size of 31B was exceeded.",
              "MessagePack: over: known from the prefix");
    n = unhex("ff ff ff ff 07", big);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, big, n, 1),
              "ERR ETOOBIG: The maximum message size of 32768B was "
              "exceeded.", "a 2 GB prefix: ETOOBIG before any body");
    n = unhex("80 80 80 80 80 01", big);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, big, n, 0),
              "ERR EPROTOCOL: a message length of more than 5 bytes",
              "a 6-byte prefix");
    n = unhex("80 80 80 80 80 01", big);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, big, n, 1),
              "ERR EPROTOCOL: a message length of more than 5 bytes",
              "a 6-byte prefix, byte by byte");
    n = unhex("82 00", big);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 2, big, n, 1),
              "ERR ETOOBIG: The maximum message size of 2B was exceeded.",
              "a non-minimal prefix counts as it is written");
    n = unhex("00 02 91 06", big);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, big, n, 0),
              "ERR EPROTOCOL: A message that is not a MessagePack array.",
              "an empty message");
    n = unhex("80 80 80", big);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 1, big, n, 1), "",
              "max 1: a prefix longer than max in flight, kept");
    n = unhex("80 80 80 00", big);
    CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 1, big, n, 1),
              "ERR ETOOBIG: The maximum message size of 1B was exceeded.",
              "max 1: a 4-byte prefix of 0 is over");
}

/* Nesting: the message's own array or object counts. */
static void test_depth(void)
{
    char in[400], want[400];
    size_t k, n, d;

    for (d = SIGNALR_HUB_MAX_DEPTH; d <= SIGNALR_HUB_MAX_DEPTH + 1; d++) {
        /* JSON: {"type":1,... "arguments":[[...]]}, depth d */
        n = (size_t)sprintf(in, "{\"type\":1,\"target\":\"t\",\"arguments\":");
        for (k = 0; k < d - 1; k++)
            in[n++] = '[';
        for (k = 0; k < d - 1; k++)
            in[n++] = ']';
        in[n++] = '}';
        in[n++] = '\x1e';
        if (d == SIGNALR_HUB_MAX_DEPTH) {
            memcpy(want, "t=1 target=t args=", 18);
            memcpy(want + 18, in + 35, 2 * (d - 1));
            want[18 + 2 * (d - 1)] = '\0';
        } else {
            snprintf(want, sizeof want, "ERR EPROTOCOL: the message nests "
                     "deeper than %d", SIGNALR_HUB_MAX_DEPTH);
        }
        CHECK_STR(read_all(SIGNALR_HUB_JSON, 0, in, n, 0), want,
                  "JSON depth");

        /* MessagePack: [1, {}, nil, "t", [[...]]], depth d */
        n = mp_nested(in, d - 2, "\x90", 1);
        if (d > SIGNALR_HUB_MAX_DEPTH)
            snprintf(want, sizeof want, "ERR EPROTOCOL: values nested too "
                     "deep (at byte %d of the message)",
                     SIGNALR_HUB_MAX_DEPTH + 6);
        CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, in, n, 0), want,
                  "MessagePack depth");
    }
}

/* Values through MessagePack -> JSON (the reader) and JSON ->
 * MessagePack (the writers): exact both ways. */
static void test_values(void)
{
    static const struct {
        const char *mp;    /* one MessagePack value, hex */
        const char *json;  /* what the reader makes of it */
        int back;          /* the writer gives the same bytes back */
    } V[] = {
        { "cf 00 20 00 00 00 00 00 01", "9007199254740993", 1 },
        { "d3 80 00 00 00 00 00 00 00", "-9223372036854775808", 1 },
        { "cf ff ff ff ff ff ff ff ff", "18446744073709551615", 1 },
        { "cb 3f b9 99 99 99 99 99 9a", "0.1", 1 },
        { "cb 7f e1 cc f3 85 eb c8 a0", "1e+308", 1 },
        { "cb 40 08 00 00 00 00 00 00", "3.0", 1 },
        { "cb 80 00 00 00 00 00 00 00", "-0.0", 1 },
        { "cb 43 f0 00 00 00 00 00 00", "1.8446744073709552e+19", 1 },
        { "cb 00 00 00 00 00 00 00 01", "4.94065645841247e-324", 1 },
        { "cb 3f b9 99 99 99 99 99 9b", "0.10000000000000002", 1 },
        { "ca 3d cc cc cd", "0.10000000149011612", 0 },
        { "d0 9c", "-100", 1 },
        { "cd 01 00", "256", 1 },
        { "d1 00 05", "5", 0 },
        { "c4 03 01 02 03", "\"AQID\"", 0 },
        { "c4 02 61 62", "\"YWI=\"", 0 },
        { "c5 00 01 61", "\"YQ==\"", 0 },
        { "c4 00", "\"\"", 0 },
        { "a6 22 5c 0a 01 c3 a9", "\"\\\"\\\\\\n\\u0001\xc3\xa9\"", 1 },
        { "82 a1 61 90 a1 62 81 a0 c0", "{\"a\":[],\"b\":{\"\":null}}", 1 },
        { "93 c3 c2 c0", "[true,false,null]", 1 },
    };
    size_t i, n, k;
    char in[128], want[160], *out = NULL, json[128];
    signalr_error e;

    for (i = 0; i < sizeof V / sizeof V[0]; i++) {
        /* read: [1, {}, nil, "t", [value]] */
        memcpy(in, "\x00\x95\x01\x80\xc0\xa1t\x91", 8);
        n = 8 + unhex(V[i].mp, in + 8);
        in[0] = (char)(n - 1);
        snprintf(want, sizeof want, "t=1 target=t args=[%s]", V[i].json);
        CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, in, n, 0), want,
                  V[i].mp);
        /* write: the JSON back as a result, [3, {}, "1", 3, value] */
        CHECK(signalr_hub_encode_completion(SIGNALR_HUB_MESSAGEPACK, "1",
                                            V[i].json, strlen(V[i].json),
                                            NULL, &out, &k, &e) ==
              SIGNALR_OK, V[i].json);
        if (out && V[i].back) {
            snprintf(want, sizeof want, "%02x 95 03 80 a1 31 03 %s",
                     (unsigned)(n - 8 + 6), V[i].mp);
            CHECK_STR(hex(out, k), want, V[i].json);
        }
        if (out) { /* and read that back: the same JSON text */
            snprintf(want, sizeof want, "t=3 id=1 result=%s", V[i].json);
            CHECK_STR(read_all(SIGNALR_HUB_MESSAGEPACK, 0, out, k, 0), want,
                      V[i].json);
        }
        signalr_free(out);
        out = NULL;
    }

    /* JSON numbers through the writer: integer or float64 as .NET reads */
    {
        static const struct {
            const char *json, *mp;
        } W[] = {
            { "9007199254740993", "cf 00 20 00 00 00 00 00 01" },
            { "-9223372036854775808", "d3 80 00 00 00 00 00 00 00" },
            { "-9223372036854775809", "cb c3 e0 00 00 00 00 00 00" },
            { "18446744073709551616", "cb 43 f0 00 00 00 00 00 00" },
            { "0.1", "cb 3f b9 99 99 99 99 99 9a" },
            { "1e308", "cb 7f e1 cc f3 85 eb c8 a0" },
            { "1E2", "cb 40 59 00 00 00 00 00 00" },
            { "-0", "00" },
            { "-0.0", "cb 80 00 00 00 00 00 00 00" },
            { "1e999", "cb 7f f0 00 00 00 00 00 00" },
        };
        for (i = 0; i < sizeof W / sizeof W[0]; i++) {
            snprintf(json, sizeof json, "[%s]", W[i].json);
            CHECK(signalr_hub_encode_invocation(SIGNALR_HUB_MESSAGEPACK,
                                                NULL, "t", json,
                                                strlen(json), &out, &k,
                                                &e) == SIGNALR_OK, json);
            n = unhex(W[i].mp, in);
            CHECK(out && k == 9 + n && !memcmp(out + 8, in, n) &&
                  (unsigned char)out[8 + n] == 0x90, W[i].json);
            signalr_free(out);
            out = NULL;
        }
    }

    /* JSON arguments pass through the reader untouched */
    {
        const char *rec = "{\"type\":1,\"target\":\"t\",\"arguments\":"
                          "[9007199254740993,-9223372036854775808,0.1,"
                          "1e308, 1.0E+2 ]}\x1e";
        CHECK_STR(read_all(SIGNALR_HUB_JSON, 0, rec, strlen(rec), 0),
                  "t=1 target=t args=[9007199254740993,"
                  "-9223372036854775808,0.1,1e308, 1.0E+2 ]",
                  "JSON arguments: the client's text as it came");
    }
}

static void test_writers(void)
{
    static const struct {
        int proto;
        const char *what;
        const char *want; /* hex for MessagePack, text for JSON */
    } T[] = {
        { 2, "result 3", "07 95 03 80 a1 31 03 03" },
        { 2, "void", "06 94 03 80 a1 31 02" },
        { 2, "error x", "08 95 03 80 a1 31 01 a1 78" },
        { 2, "ping", "02 91 06" },
        { 2, "close", "04 93 07 c0 c2" },
        { 2, "close error", "07 93 07 a3 62 79 65 c3" },
        { 2, "close empty", "04 93 07 c0 c3" },
        { 2, "item", "07 94 02 80 a1 73 91 01" },
        { 2, "invocation", "14 96 01 80 c0 aa 6e 65 77 4d 65 73 73 61 67 65 "
          "91 a2 68 69 90" },
        { 2, "invocation id", "09 96 01 80 a1 35 a1 74 90 90" },
        { 1, "result 3", "{\"type\":3,\"invocationId\":\"1\",\"result\":3}" },
        { 1, "void", "{\"type\":3,\"invocationId\":\"1\"}" },
        { 1, "error x", "{\"type\":3,\"invocationId\":\"1\",\"error\":\"x\"}" },
        { 1, "ping", "{\"type\":6}" },
        { 1, "close", "{\"type\":7}" },
        { 1, "close error", "{\"type\":7,\"error\":\"bye\","
          "\"allowReconnect\":true}" },
        { 1, "close empty", "{\"type\":7,\"error\":\"\","
          "\"allowReconnect\":true}" },
        { 1, "item", "{\"type\":2,\"invocationId\":\"s\",\"item\":[1]}" },
        { 1, "invocation", "{\"type\":1,\"target\":\"newMessage\","
          "\"arguments\":[\"hi\"]}" },
        { 1, "invocation id", "{\"type\":1,\"invocationId\":\"5\","
          "\"target\":\"t\",\"arguments\":[]}" },
    };
    size_t i, n;
    char *out = NULL, want[256];
    signalr_error e;
    signalr_err rc = SIGNALR_OK;

    for (i = 0; i < sizeof T / sizeof T[0]; i++) {
        const char *w = T[i].what;
        int p = T[i].proto;

        if (!strcmp(w, "result 3"))
            rc = signalr_hub_encode_completion(p, "1", " 3 ", 3, NULL, &out,
                                               &n, &e);
        else if (!strcmp(w, "void"))
            rc = signalr_hub_encode_completion(p, "1", NULL, 0, NULL, &out,
                                               &n, &e);
        else if (!strcmp(w, "error x"))
            rc = signalr_hub_encode_completion(p, "1", "3", 1, "x", &out,
                                               &n, &e);
        else if (!strcmp(w, "ping"))
            rc = signalr_hub_encode_ping(p, &out, &n, &e);
        else if (!strcmp(w, "close"))
            rc = signalr_hub_encode_close(p, NULL, 0, &out, &n, &e);
        else if (!strcmp(w, "close error"))
            rc = signalr_hub_encode_close(p, "bye", 1, &out, &n, &e);
        else if (!strcmp(w, "close empty"))
            rc = signalr_hub_encode_close(p, "", 1, &out, &n, &e);
        else if (!strcmp(w, "item"))
            rc = signalr_hub_encode_stream_item(p, "s", "[1]", 3, &out, &n,
                                                &e);
        else if (!strcmp(w, "invocation"))
            rc = signalr_hub_encode_invocation(p, NULL, "newMessage",
                                               "[\"hi\"]", 6, &out, &n, &e);
        else if (!strcmp(w, "invocation id"))
            rc = signalr_hub_encode_invocation(p, "5", "t", NULL, 0, &out,
                                               &n, &e);
        CHECK(rc == SIGNALR_OK && out, w);
        if (!out)
            continue;
        if (p == SIGNALR_HUB_MESSAGEPACK) {
            CHECK_STR(hex(out, n), T[i].want, w);
        } else {
            snprintf(want, sizeof want, "%s\x1e", T[i].want);
            CHECK(n == strlen(want) && out[n] == '\0', w);
            CHECK_STR(out, want, w);
        }
        signalr_free(out);
        out = NULL;
    }

    CHECK(signalr_hub_encode_handshake_response(NULL, &out, &n, &e) ==
          SIGNALR_OK && n == 3 && !memcmp(out, "{}\x1e", 3),
          "handshake accepted: {} 0x1E");
    signalr_free(out);
    CHECK(signalr_hub_encode_handshake_response("", &out, &n, &e) ==
          SIGNALR_OK && n == 3, "an empty error is no error");
    signalr_free(out);
    CHECK(signalr_hub_encode_handshake_response("The protocol 'x\"' is not "
                                                "supported.", &out, &n,
                                                &e) == SIGNALR_OK, "refused");
    CHECK_STR(out, "{\"error\":\"The protocol 'x\\\"' is not supported.\"}"
              "\x1e", "handshake refused, the text escaped");
    signalr_free(out);

    /* what the writers refuse */
    out = NULL;
    CHECK(signalr_hub_encode_ping(3, &out, &n, &e) == SIGNALR_EINVAL && !out,
          "an unknown protocol");
    CHECK(signalr_hub_encode_completion(1, NULL, NULL, 0, NULL, &out, &n,
                                        &e) == SIGNALR_EINVAL,
          "a completion without an id");
    CHECK(signalr_hub_encode_completion(1, "", NULL, 0, NULL, &out, &n,
                                        &e) == SIGNALR_EINVAL,
          "a completion with an empty id");
    CHECK(signalr_hub_encode_stream_item(2, "1", "[1,", 3, &out, &n, &e) ==
          SIGNALR_EINVAL && !strcmp(e.msg, "the item is not one JSON value"),
          e.msg);
    CHECK(signalr_hub_encode_invocation(1, NULL, "t", "{}", 2, &out, &n,
                                        &e) == SIGNALR_EINVAL,
          "arguments that are no array");
    CHECK(signalr_hub_encode_invocation(1, NULL, "", "[]", 2, &out, &n,
                                        &e) == SIGNALR_EINVAL,
          "an empty target");
    CHECK(signalr_hub_encode_invocation(2, NULL, "t", "[\"\xff\"]", 4, &out,
                                        &n, &e) == SIGNALR_EINVAL &&
          strstr(e.msg, "not valid UTF-8"), e.msg);
    CHECK(signalr_hub_encode_close(1, "bad \xc3", 0, &out, &n, &e) ==
          SIGNALR_EINVAL, "an error that is not UTF-8");
    CHECK(signalr_hub_encode_completion(2, "1", "[\"\\ud800\"]", 10, NULL,
                                        &out, &n, &e) == SIGNALR_EINVAL &&
          !out, "a lone surrogate has no MessagePack form");
    CHECK(signalr_hub_encode_completion(1, "1", "[\"\\ud800\"]", 10, NULL,
                                        &out, &n, &e) == SIGNALR_OK,
          "JSON passes the client's text as it is");
    signalr_free(out);
    CHECK(signalr_hub_encode_ping(1, NULL, &n, &e) == SIGNALR_EINVAL,
          "no output");
}

/* A reader's buffers over a long life: messages of all sizes, split. */
static void test_stream(void)
{
    signalr_hub_reader *r = NULL;
    signalr_hub_message m;
    signalr_error e;
    char *msg = NULL, *all;
    size_t n, total = 0, used, at, count = 0, i;
    const size_t sizes[] = { 10, 20000, 3, 30000, 100, 32000 };

    all = malloc(200000);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *args = malloc(sizes[i] + 8);
        args[0] = '[';
        args[1] = '"';
        memset(args + 2, 'x', sizes[i]);
        memcpy(args + 2 + sizes[i], "\"]", 3);
        CHECK(signalr_hub_encode_invocation(SIGNALR_HUB_MESSAGEPACK, "i",
                                            "t", args, sizes[i] + 4, &msg,
                                            &n, &e) == SIGNALR_OK, "encode");
        memcpy(all + total, msg, n);
        total += n;
        signalr_free(msg);
        free(args);
    }
    CHECK(signalr_hub_reader_new(&r, 0, 0, &e) == SIGNALR_OK, "reader");
    signalr_hub_reader_set_protocol(r, SIGNALR_HUB_MESSAGEPACK, &e);
    for (at = 0; at < total;) {
        size_t chunk = total - at < 777 ? total - at : 777;
        const char *p = all + at;
        at += chunk;
        while (chunk) {
            int got = signalr_hub_next(r, p, chunk, &used, &m, &e);
            if (got < 0) {
                CHECK(0, e.msg);
                break;
            }
            CHECK(used <= chunk, "used <= given");
            p += used;
            chunk -= used;
            if (got == 1) {
                CHECK(m.arguments_len == sizes[count] + 4, "size kept");
                count++;
            }
        }
    }
    CHECK(count == 6, "six messages up to 32000 bytes, 777 at a time");
    signalr_hub_reader_free(r);
    free(all);
}

int main(void)
{
    test_both();
    test_bad();
    test_unbound();
    test_handshake();
    test_sizes();
    test_depth();
    test_values();
    test_writers();
    test_stream();
    return t_done("test_hubproto");
}
