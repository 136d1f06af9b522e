/* test_svcproto.c - the service protocol: the reference sheet's worked
 * examples byte for byte, every operation's shape, the JSON-to-MessagePack
 * transcoding of arguments, and the reader on whole, split, unknown and
 * malformed frames. */
#include "harness.h"
#include "signalr.h"

#include <stdlib.h>

static char hexbuf[4096];

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

/* Does p[0..n) hold the string s? */
static int has(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s), i;

    for (i = 0; p && i + k <= n; i++)
        if (!memcmp(p + i, s, k))
            return 1;
    return 0;
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

static void test_examples(void)
{
    char *out = NULL;
    size_t n = 0;
    signalr_error e;
    signalr_sp_data d;
    signalr_sp_op o;

    CHECK(signalr_sp_encode_handshake(SIGNALR_SP_WEAK_CONNECTION, &out, &n,
                                      &e) == SIGNALR_OK, "handshake");
    CHECK_STR(hex(out, n), "07 96 01 01 02 a0 00 80", "11.1 handshake");
    signalr_free(out);

    CHECK(signalr_sp_encode_ping(NULL, 0, &out, &n, &e) == SIGNALR_OK,
          "keep-alive");
    CHECK_STR(hex(out, n), "02 91 03", "11.2 keep-alive");
    signalr_free(out);
    {
        const char *kv[] = { "status", "1" };
        CHECK(signalr_sp_encode_ping(kv, 2, &out, &n, &e) == SIGNALR_OK,
              "status ping");
        CHECK_STR(hex(out, n), "0b 93 03 a6 73 74 61 74 75 73 a1 31",
                  "11.2 status ping");
        signalr_free(out);
        CHECK(signalr_sp_encode_ping(kv, 1, &out, &n, &e) == SIGNALR_EINVAL,
              "odd ping: EINVAL");
    }

    memset(&d, 0, sizeof d);
    d.type = SIGNALR_SP_BROADCAST;
    d.target = "newMessage";
    d.arguments = "[\"hi\"]";
    d.arguments_len = 6;
    d.protocols = SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK,
          "broadcast");
    CHECK(n == 100, "11.3: a 99-byte body and its 1-byte prefix");
    CHECK_STR(hex(out, n),
              "63 94 0a 90 82 a4 6a 73 6f 6e c4 34 7b 22 74 79 70 65 22 3a "
              "31 2c 22 74 61 72 67 65 74 22 3a 22 6e 65 77 4d 65 73 73 61 "
              "67 65 22 2c 22 61 72 67 75 6d 65 6e 74 73 22 3a 5b 22 68 69 "
              "22 5d 7d 1e ab 6d 65 73 73 61 67 65 70 61 63 6b c4 15 14 96 "
              "01 80 c0 aa 6e 65 77 4d 65 73 73 61 67 65 91 a2 68 69 90 80",
              "11.3 broadcast, both protocols");
    signalr_free(out);

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_SP_JOIN_GROUP_WITH_ACK;
    o.id = "conn1";
    o.group = "g1";
    o.ack_id = 1;
    o.ttl = SIGNALR_TTL_NONE;
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "join");
    CHECK_STR(hex(out, n), "0d 95 12 a5 63 6f 6e 6e 31 a2 67 31 01 80",
              "11.4 join with ack");
    signalr_free(out);

    o.type = SIGNALR_SP_USER_JOIN_GROUP_WITH_ACK;
    o.id = "u1";
    o.ack_id = 2;
    o.ttl = 60;
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "user join");
    CHECK_STR(hex(out, n), "0c 95 1a a2 75 31 a2 67 31 02 81 02 3c",
              "11.4 user join with ttl");
    signalr_free(out);

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_SP_CHECK_USER_EXISTENCE;
    o.id = "u1";
    o.ack_id = 3;
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "check");
    CHECK_STR(hex(out, n), "07 94 19 a2 75 31 03 80", "11.4 user exists");
    signalr_free(out);
}

static void test_ops(void)
{
    char *out = NULL;
    size_t n = 0;
    signalr_error e;
    signalr_sp_op o;
    const char *ex[] = { "c9" };

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_SP_LEAVE_GROUP_WITH_ACK;
    o.id = "c1";
    o.ack_id = 7;
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "leave all");
    CHECK_STR(hex(out, n), "08 95 13 a2 63 31 c0 07 80",
              "a nil group: every group");
    signalr_free(out);

    o.type = SIGNALR_SP_CLOSE_CONNECTION;
    o.text = "bye";
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "close");
    CHECK_STR(hex(out, n), "0b 95 05 a2 63 31 a3 62 79 65 80 80",
              "close: id, reason, headers, ext");
    signalr_free(out);

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_SP_CLOSE_GROUP_CONNECTIONS;
    o.id = "g";
    o.list = ex;
    o.count = 1;
    o.ack_id = 300;
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "close group");
    CHECK_STR(hex(out, n), "0d 96 21 a1 67 c0 cd 01 2c 91 a2 63 39 80",
              "close group: no reason is nil, ack 300 as uint16, excluded "
              "list");
    signalr_free(out);
    o.type = SIGNALR_SP_CLOSE_CONNECTIONS;
    o.text = "";
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "close all");
    CHECK_STR(hex(out, n), "0b 95 1f a0 cd 01 2c 91 a2 63 39 80",
              "close all: an empty reason stays \"\" (only none is nil)");
    signalr_free(out);

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_SP_JOIN_GROUP_WITH_ACK;
    o.id = "c1";
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_EINVAL &&
          out == NULL, "join without a group: EINVAL");
    o.type = 4;
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_EINVAL,
          "type 4 is not an operation");
    o.type = SIGNALR_SP_CHECK_USER_EXISTENCE;
    o.ack_id = -1;
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_EINVAL,
          "a negative ack id: EINVAL");
}

static void test_data(void)
{
    char *out = NULL;
    size_t n = 0;
    signalr_error e;
    signalr_sp_data d;
    const char *users[] = { "a", "b" };
    char *big;

    memset(&d, 0, sizeof d);
    d.type = SIGNALR_SP_MULTI_USER_DATA;
    d.list = users;
    d.count = 2;
    d.target = "t";
    d.arguments = " [1, -1, -200, 3.5, true, false, null, \"\\u00e9\\n\","
                  " {\"k\": [70000]}, 5000000000, \"\\ud83d\\ude00\"] ";
    d.arguments_len = strlen(d.arguments);
    d.protocols = SIGNALR_SP_MESSAGEPACK;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK,
          "multi-user");
    CHECK_STR(hex(out, n),
              "4c 94 09 92 a1 61 a1 62 81 ab 6d 65 73 73 61 67 65 70 61 63 "
              "6b c4 35 34 96 01 80 c0 a1 74 9b 01 ff d1 ff 38 cb 40 0c 00 "
              "00 00 00 00 00 c3 c2 c0 a3 c3 a9 0a 81 a1 6b 91 ce 00 01 11 "
              "70 cf 00 00 00 01 2a 05 f2 00 a4 f0 9f 98 80 90 80",
              "every JSON kind transcoded, smallest widths");
    signalr_free(out);

    /* 512 levels go, 513 are refused as too deep, not as "no array" */
    {
        static char deep[2 * 513 + 1];

        memset(deep, '[', 512);
        memset(deep + 512, ']', 512);
        deep[2 * 512] = ' ';
        d.arguments = deep;
        d.arguments_len = 2 * 512 + 1;
        CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK,
              "512 levels (and a space)");
        signalr_free(out);
        out = NULL;
        memset(deep, '[', 513);
        memset(deep + 513, ']', 513);
        d.arguments = deep;
        d.arguments_len = 2 * 513;
        CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL &&
              out == NULL, "513 levels: EINVAL");
        CHECK_STR(e.msg, "the arguments nest more than 512 arrays and "
                         "objects deep (the list itself is one)",
                  "513 levels: said so");
        d.arguments = "{\"a\":1}";
        d.arguments_len = 7;
        CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL,
              "an object");
        CHECK_STR(e.msg, "the arguments are not a JSON array",
                  "an object: not an array");
    }
    /* past int64: uint64, then float64; a lone surrogate has no UTF-8 */
    d.arguments = "[9223372036854775808,18446744073709551616]";
    d.arguments_len = strlen(d.arguments);
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK,
          "big integers");
    CHECK(n > 20 && strstr(hex(out, n), "92 cf 80 00 00 00 00 00 00 00 "
                           "cb 43 f0 00 00 00 00 00 00 90 80"),
          "2^63 as a uint64, 2^64 as a float64");
    signalr_free(out);
    /* a caller's own checked text and MessagePack: the same frame as
     * the checks and the transcoding give; the MessagePack used as given */
    {
        char *want = NULL, *got = NULL;
        size_t wn = 0, gn = 0;
        static const char mp[] = "\x92\xa2hi\x81\xa1x\x01";

        d.type = SIGNALR_SP_BROADCAST;
        d.list = NULL;
        d.count = 0;
        d.arguments = "[\"hi\",{\"x\":1}]";
        d.arguments_len = strlen(d.arguments);
        d.protocols = SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK;
        CHECK(signalr_sp_encode_data(&d, &want, &wn, &e) == SIGNALR_OK,
              "transcoded");
        d.arguments_checked = 1;
        d.arguments_mp = mp;
        d.arguments_mp_len = sizeof mp - 1;
        CHECK(signalr_sp_encode_data(&d, &got, &gn, &e) == SIGNALR_OK &&
              gn == wn && !memcmp(want, got, wn),
              "arguments_checked and arguments_mp: the same bytes");
        signalr_free(got);
        d.arguments_mp = "\x91\x07";
        d.arguments_mp_len = 2;
        CHECK(signalr_sp_encode_data(&d, &got, &gn, &e) == SIGNALR_OK &&
              gn == wn - 6 && has(got, gn, "\xa1t\x91\x07\x90\x80"),
              "arguments_mp is taken as it is");
        signalr_free(got);
        d.protocols = SIGNALR_SP_JSON;
        CHECK(signalr_sp_encode_data(&d, &got, &gn, &e) == SIGNALR_OK &&
              !has(got, gn, "messagepack"), "JSON clients only: unused");
        signalr_free(got);
        signalr_free(want);
        memset(&d, 0, sizeof d);
        d.type = SIGNALR_SP_MULTI_USER_DATA;
        d.list = users;
        d.count = 2;
        d.target = "t";
        d.protocols = SIGNALR_SP_MESSAGEPACK;
    }
    /* containers of 16 and of 65,536 members: 16- and 32-bit headers
     * (the transcoder widens a one-byte header in place) */
    {
        char *t = malloc(5 * 65536 + 512);
        size_t k = 0, i;
        static const unsigned char a16[] = { 0xdc, 0x00, 0x10, 0x00, 0x00 };
        static const unsigned char m16[] = { 0xde, 0x00, 0x10, 0xa2, 'k',
                                             'a', 0x00, 0xa2, 'k', 'b' };
        static const unsigned char a65k[] = { 0xdd, 0x00, 0x01, 0x00, 0x00,
                                              0x91, 0x90, 0x91 };
        int found[3] = { 0, 0, 0 };

        t[k++] = '[';
        t[k++] = '[';
        for (i = 0; i < 16; i++)
            k += (size_t)sprintf(t + k, "%s0", i ? "," : "");
        k += (size_t)sprintf(t + k, "],{");
        for (i = 0; i < 16; i++)
            k += (size_t)sprintf(t + k, "%s\"k%c\":0", i ? "," : "",
                                 (char)('a' + i));
        k += (size_t)sprintf(t + k, "},[");
        for (i = 0; i < 65536; i++)
            k += (size_t)sprintf(t + k, "%s[[]]", i ? "," : "");
        k += (size_t)sprintf(t + k, "],1]");
        d.arguments = t;
        d.arguments_len = k;
        CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK,
              "wide containers");
        for (i = 0; out && i + sizeof a65k <= n; i++) {
            found[0] |= !memcmp(out + i, a16, sizeof a16);
            found[1] |= !memcmp(out + i, m16, sizeof m16);
            found[2] |= !memcmp(out + i, a65k, sizeof a65k);
        }
        CHECK(found[0] && found[1] && found[2],
              "array16, map16 and array32 headers before their members");
        CHECK(out && !memcmp(out + n - 5, "\x91\x90\x01\x90\x80", 5) &&
              (unsigned char)out[n - 8 - 65536 * 2] == 0xdd,
              "the members after a widened header are whole");
        signalr_free(out);
        free(t);
    }
    d.arguments = "[\"\\ud800\"]";
    d.arguments_len = strlen(d.arguments);
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL &&
          strstr(e.msg, "MessagePack"),
          "a lone surrogate cannot be written as MessagePack");

    d.type = SIGNALR_SP_GROUP_BROADCAST;
    d.id = "g1";
    d.list = NULL;
    d.count = 0;
    d.arguments = NULL;
    d.protocols = SIGNALR_SP_JSON;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK, "group");
    CHECK(n > 10 && (unsigned char)out[1] == 0x97 && out[2] == 13,
          "group: array of 7, type 13");
    CHECK(!memcmp(out + n - 3, "\x80\x90\xc0", 3),
          "group: ext, no excluded users, no caller");
    signalr_free(out);

    /* a target with characters JSON escapes; one without, as it is */
    d.target = "q\"b\\s\n\x01";
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK &&
          n > 40 && has(out, n, "\"target\":\"q\\\"b\\\\s\\n\\u0001\","),
          "the target escaped in the JSON payload");
    signalr_free(out);
    d.target = "plain \xc3\xa9";
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK &&
          has(out, n, "\"target\":\"plain \xc3\xa9\","),
          "a target without escapes, its UTF-8 as it is");
    signalr_free(out);
    d.target = "t";

    d.arguments = "{}";
    d.arguments_len = 2;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL,
          "arguments not an array: EINVAL");
    /* bytes JSON cannot carry: nothing is encoded, in either protocol */
    d.arguments = "[\"bad\xff\xfe\"]";
    d.arguments_len = strlen(d.arguments);
    d.protocols = SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK;
    out = NULL;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL &&
          !out, "invalid UTF-8 arguments: EINVAL, nothing encoded");
    CHECK(!strcmp(e.msg, "the arguments are not valid UTF-8 (byte 6): "
                  "JSON carries text only"), e.msg);
    d.protocols = SIGNALR_SP_JSON;
    d.arguments = NULL;
    d.id = NULL;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL,
          "a group send without a group: EINVAL");
    d.id = "g";
    d.protocols = 0;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL,
          "no protocol: EINVAL");
    d.protocols = SIGNALR_SP_JSON;
    d.target = "";
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_EINVAL,
          "an empty target: EINVAL");

    /* 5 MB in one argument: a 4-byte length prefix, and the limit */
    big = malloc(5 * 1024 * 1024 + 8);
    big[0] = '[';
    big[1] = '"';
    memset(big + 2, 'x', 5 * 1024 * 1024);
    memcpy(big + 2 + 5 * 1024 * 1024, "\"]", 3);
    d.target = "big";
    d.arguments = big;
    d.arguments_len = strlen(big);
    d.protocols = SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_OK, "5 MB");
    CHECK(n > 10 * 1024 * 1024 && n < 10 * 1024 * 1024 + 200,
          "5 MB: both payloads");
    {
        signalr_sp_message m;
        size_t used = 0;
        CHECK(signalr_sp_next(out, n - 1, 0, &m, &used, &e) == 0 &&
              used == 0, "a frame short of one byte: not complete");
        CHECK(signalr_sp_next(out, n, 0, &m, &used, &e) == 1 && used == n &&
              m.type == SIGNALR_SP_GROUP_BROADCAST,
              "the reader spans the whole frame");
        CHECK(signalr_sp_next(out, n, 1024 * 1024, &m, &used, &e) == -1 &&
              e.code == SIGNALR_ETOOBIG && used == 0,
              "a frame over the reader's limit: ETOOBIG");
    }
    signalr_free(out);
    d.max_size = 4 * 1024 * 1024;
    CHECK(signalr_sp_encode_data(&d, &out, &n, &e) == SIGNALR_ETOOBIG &&
          out == NULL && strstr(e.msg, "limit"), "over max_size: ETOOBIG");
    free(big);
}

static void test_reader(void)
{
    char buf[256];
    size_t n, used;
    signalr_sp_message m;
    signalr_error e;

    n = unhex("03 92 02 a0", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && used == 4 &&
          m.type == 2 && m.len[0] == 0 && m.str[1] == NULL,
          "11.1 minimal handshake response");
    n = unhex("0a 94 02 c0 80 a5 63 6f 6e 6e 31", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 2 &&
          m.str[0] == NULL && m.len[1] == 5 && !memcmp(m.str[1], "conn1", 5),
          "11.1 full handshake response");
    n = unhex("06 95 14 01 01 a0 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 20 &&
          m.num[0] == 1 && m.num[1] == 1, "11.4 ack");
    n = unhex("05 94 14 01 01 a0", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.num[1] == 1,
          "11.4 ack of 4 items");
    n = unhex("0a 95 14 d2 7f ff ff ff 02 a0 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 &&
          m.num[0] == 2147483647 && m.num[1] == 2, "ack id as int32");
    n = unhex("0b 93 03 a6 73 74 61 74 75 73 a1 30", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 3 &&
          m.nping == 1 && m.ping_len[0] == 6 && m.ping[1][0] == '0',
          "status ping");
    n = unhex("02 91 03 0b 93 03", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && used == 3 &&
          m.nping == 0, "keep-alive, then a partial frame");
    CHECK(signalr_sp_next(buf + used, n - used, 0, &m, &used, &e) == 0,
          "the partial frame waits");
    n = unhex("05 92 0f a2 6e 6f", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 15 &&
          m.len[0] == 2, "service error");
    n = unhex("0b 96 1d a1 6b a3 6b 65 79 a0 a0 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 29 &&
          m.len[1] == 3 && m.len[2] == 0, "access key response");
    n = unhex("09 96 16 01 a1 63 02 a1 6d 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 22 &&
          m.num[0] == 1 && m.num[1] == 2, "service event");
    n = unhex("04 92 63 c1 00", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 99 &&
          used == 5, "an unknown type is read over, by its length");
    n = unhex("03 92 14 01", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 && used == 4 &&
          e.code == SIGNALR_EREPLY, "a short ack: EREPLY, frame passed");
    n = unhex("02 91 a1", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 && used == 3,
          "not an integer type: EREPLY");
    n = unhex("06 dd ff ff ff ff 03", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 && used == 7 &&
          e.code == SIGNALR_EREPLY,
          "a ping declaring 2^32 items in 6 bytes: EREPLY, nothing allocated");
    n = unhex("ff ff ff ff ff 01", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 && used == 0,
          "a six-byte length prefix breaks the stream");
    n = unhex("80 80 80 80 08", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 && used == 0 &&
          e.code == SIGNALR_ETOOBIG, "a frame of 2^31 bytes: ETOOBIG");
    CHECK(signalr_sp_next(buf, 0, 0, &m, &used, &e) == 0, "no bytes: wait");
}

/* Every pair of a map the reader left raw, as "k=v;" ("k=(nil);"). */
static const char *pairs_all(const char *map, size_t len)
{
    static char out[512];
    signalr_sp_pairs it;
    const char *k, *v;
    size_t kl, vl, o = 0;
    int got;

    out[0] = '\0';
    signalr_sp_pairs_init(&it, map, len);
    while ((got = signalr_sp_pairs_next(&it, &k, &kl, &v, &vl)) == 1)
        o += (size_t)snprintf(out + o, sizeof out - o, "%.*s=%.*s;",
                              (int)kl, k, v ? (int)vl : 5,
                              v ? v : "(nil)");
    if (got < 0)
        snprintf(out + o, sizeof out - o, "ERROR");
    return out;
}

/* What a hub server (a Default connection) reads and writes: vectors
 * built by hand from the reference sheet's field lists and decoded with
 * lua-messagepack to check them. */
static void test_hub_server(void)
{
    char buf[256], *out = NULL;
    size_t n, used;
    signalr_sp_message m;
    signalr_error e;
    signalr_sp_op o;

    CHECK(signalr_sp_encode_handshake(SIGNALR_SP_DEFAULT_CONNECTION, &out,
                                      &n, &e) == SIGNALR_OK, "handshake 0");
    CHECK_STR(hex(out, n), "07 96 01 01 00 a0 00 80",
              "11.1 handshake of a Default connection");
    signalr_free(out);

    /* [4, "c1", claims, headers, "?hub=chat", {1: 2^64-1, 3: "json"}] */
    n = unhex("5a 96 04 a2 63 31 82 aa 61 73 72 73 2e 73 2e 75 69 64 a2 75 "
              "31 a6 6e 61 6d 65 69 64 a2 75 31 83 b1 41 73 72 73 2d 4d 69 "
              "67 72 61 74 65 2d 46 72 6f 6d 91 a2 73 39 a1 58 92 a1 61 a1 "
              "62 a1 45 90 a9 3f 68 75 62 3d 63 68 61 74 82 01 cf ff ff ff "
              "ff ff ff ff ff 03 a4 6a 73 6f 6e", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && used == n &&
          m.type == SIGNALR_SP_OPEN_CONNECTION, "open connection");
    CHECK(m.len[0] == 2 && !memcmp(m.str[0], "c1", 2), "open: the id");
    CHECK(m.len[1] == 9 && !memcmp(m.str[1], "?hub=chat", 9),
          "open: the query string");
    CHECK(m.len[2] == 4 && !memcmp(m.str[2], "json", 4),
          "open: Ext 3, after a uint64 tracing id passed over");
    CHECK_STR(pairs_all(m.map[0], m.map_len[0]), "asrs.s.uid=u1;nameid=u1;",
              "open: the claims");
    CHECK_STR(pairs_all(m.map[1], m.map_len[1]),
              "Asrs-Migrate-From=s9;X=a;X=b;E=(nil);",
              "open: the headers, one pair a value, none for []");
    CHECK(m.map[0] == buf + 6 && m.map_len[0] == 25,
          "open: the claims' bytes in place");

    n = unhex("06 93 04 a2 63 31 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 4 &&
          m.str[1] == NULL && m.str[2] == NULL && m.map_len[0] == 1 &&
          m.map[1] == NULL, "open of 3 items (an older service)");
    CHECK_STR(pairs_all(m.map[1], m.map_len[1]), "", "no headers: no pairs");
    n = unhex("04 93 04 c0 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 &&
          e.code == SIGNALR_EREPLY, "open without an id: EREPLY");
    n = unhex("08 93 04 a2 63 31 81 c0 c0", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 &&
          used == n, "a claim without a type: EREPLY, frame passed");
    n = unhex("0c 94 04 a2 63 31 80 81 a1 58 92 a1", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 0,
          "a frame shorter than its prefix says: wait");
    n = unhex("09 95 04 a2 63 31 80 81 a1 58 c3", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1,
          "a header value that is no string: EREPLY");

    /* the hub-server sheet's section 4 example, both ways */
    CHECK(signalr_sp_encode_connection_data("c1", "{}\x1e", 3, 0, &out, &n,
                                            &e) == SIGNALR_OK, "data");
    CHECK_STR(hex(out, n), "0b 94 06 a2 63 31 c4 03 7b 7d 1e 80",
              "ConnectionData: the handshake answer to c1");
    CHECK(signalr_sp_next(out, n, 0, &m, &used, &e) == 1 &&
          m.type == SIGNALR_SP_CONNECTION_DATA && m.len[1] == 3 &&
          !memcmp(m.str[1], "{}\x1e", 3) && m.num[0] == 0 && m.num[1] == 0,
          "ConnectionData read back, untyped and whole");
    signalr_free(out);
    CHECK(signalr_sp_encode_connection_data("c1", "{}\x1e", 3,
                                            SIGNALR_SP_DATA_HANDSHAKE, &out,
                                            &n, &e) == SIGNALR_OK, "typed");
    CHECK_STR(hex(out, n), "0d 94 06 a2 63 31 c4 03 7b 7d 1e 81 05 01",
              "ConnectionData tagged {5: 1}");
    signalr_free(out);
    CHECK(signalr_sp_encode_connection_data("c1", NULL, 0, 0, &out, &n,
                                            &e) == SIGNALR_OK &&
          n == 9 && !memcmp(out, "\x08\x94\x06\xa2" "c1" "\xc4\x00\x80", 9),
          "an empty payload: bin8 of 0");
    signalr_free(out);
    CHECK(signalr_sp_encode_connection_data(NULL, "x", 1, 0, &out, &n,
                                            &e) == SIGNALR_EINVAL && !out,
          "no connection id: EINVAL");
    CHECK(signalr_sp_encode_connection_data("c1", NULL, 1, 0, &out, &n,
                                            &e) == SIGNALR_EINVAL,
          "no payload for 1 byte: EINVAL");
    CHECK(signalr_sp_encode_connection_data("c1", "x", 1, -1, &out, &n,
                                            &e) == SIGNALR_EINVAL,
          "a negative data type: EINVAL");

    n = unhex("0f 94 06 a2 63 31 c4 03 61 62 63 82 05 02 06 c3", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 &&
          m.num[0] == SIGNALR_SP_DATA_INVOCATION && m.num[1] == 1 &&
          m.len[1] == 3, "ConnectionData {5: 2, 6: true}: a fragment");
    n = unhex("0c 94 06 a2 63 31 c4 00 81 09 92 01 02", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.len[1] == 0 &&
          m.str[1] != NULL && m.num[0] == 0,
          "ConnectionData: an unknown Ext member passed over");
    n = unhex("0a 94 06 a2 63 31 c4 00 81 06 01", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1 &&
          e.code == SIGNALR_EREPLY, "IsPartial not a boolean: EREPLY");
    n = unhex("06 93 06 a2 63 31 c4", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == -1,
          "a payload cut short: EREPLY");

    /* the service closes c1: it migrates to server s2 */
    n = unhex("1c 95 05 a2 63 31 a0 81 af 41 73 72 73 2d 4d 69 67 72 61 74 "
              "65 2d 54 6f 91 a2 73 32 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 && m.type == 5 &&
          m.len[0] == 2 && m.len[1] == 0 && m.map[0] == NULL,
          "close connection with headers");
    CHECK_STR(pairs_all(m.map[1], m.map_len[1]), "Asrs-Migrate-To=s2;",
              "close: the migration header");
    n = unhex("06 93 26 a2 63 31 80", buf);
    CHECK(signalr_sp_next(buf, n, 0, &m, &used, &e) == 1 &&
          m.type == SIGNALR_SP_CONNECTION_RECONNECT && m.len[0] == 2,
          "connection reconnect");

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_SP_CLOSE_CONNECTION;
    o.id = "c1";
    CHECK(signalr_sp_encode_op(&o, &out, &n, &e) == SIGNALR_OK, "close c1");
    CHECK_STR(hex(out, n), "08 95 05 a2 63 31 a0 80 80",
              "a hub server closes c1: no error is \"\"");
    signalr_free(out);

    /* a map the reader never saw: the iterator itself holds */
    CHECK_STR(pairs_all("\x82\xa1k", 3), "ERROR", "a truncated map");
    CHECK_STR(pairs_all("", 0), "ERROR", "no bytes: no map header");
}

/* The server connection's URL and token (request.c). */
static void test_server_token(void)
{
    static const char CS[] = "Endpoint=https://contoso.service.signalr.net;"
        "AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;"
        "ServerEndpoint=https://internal.contoso:8443;Version=1.0;";
    static const char ENTRA[] = "Endpoint=https://contoso.service.signalr.net;"
        "AuthType=azure.msi;Version=1.0;";
    signalr_client_options o;
    signalr_client *c = NULL;
    signalr_error e;
    char *url = NULL, *tok = NULL, *payload = NULL;
    size_t plen = 0;

    memset(&o, 0, sizeof o);
    o.application = "Game";
    CHECK(!signalr_client_new(CS, strlen(CS), &o, &c, &e), "client");
    CHECK(signalr_client_server_token(c, "Chat", "host_1", 60, 1000000,
                                      &url, &tok, &e) == SIGNALR_OK, "token");
    CHECK_STR(url, "https://internal.contoso:8443/server/?hub=game_chat",
              "the URL: ServerEndpoint, the app prefix, lower case");
    CHECK(signalr_jwt_verify(tok, strlen(tok),
                             (const unsigned char *)"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH",
                             44, 1000001, &payload, &plen, &e) == SIGNALR_OK,
          "signed with the AccessKey");
    CHECK(payload && strstr(payload, "\"aud\":\"https://contoso.service.signalr.net/server/?hub=game_chat\""),
          "aud: the Endpoint's host, no port");
    CHECK(payload && strstr(payload, "\"nameid\":\"host_1\"") &&
          strstr(payload, "\"exp\":1000060"), "nameid and the lifetime");
    signalr_free(url);
    signalr_free(tok);
    signalr_free(payload);
    CHECK(signalr_client_server_token(c, "9bad", NULL, 0, 0, &url, NULL, &e) ==
          SIGNALR_EINVAL, "a bad hub: EINVAL");
    signalr_client_free(c);

    CHECK(!signalr_client_new(ENTRA, strlen(ENTRA), NULL, &c, &e), "entra client");
    CHECK(signalr_client_server_token(c, "chat", "s", 0, 0, &url, &tok, &e) ==
          SIGNALR_EINVAL && !url, "Entra ID: no token to sign");
    CHECK(signalr_client_server_token(c, "chat", NULL, 0, 0, &url, NULL, &e) ==
          SIGNALR_OK, "Entra ID: the URL alone");
    CHECK_STR(url, "https://contoso.service.signalr.net/server/?hub=chat",
              "the Endpoint without ServerEndpoint");
    signalr_free(url);
    signalr_client_free(c);
}

int main(void)
{
    test_examples();
    test_ops();
    test_data();
    test_reader();
    test_hub_server();
    test_server_token();
    return t_done("test_svcproto");
}
