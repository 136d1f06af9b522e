/* hubproto.c - the SignalR hub protocol as a hub server speaks it
 * (dotnet/aspnetcore src/SignalR/docs/specs/HubProtocol.md; the rules of
 * ASP.NET Core's JsonHubProtocol and MessagePackHubProtocol): a reader of
 * one client's bytes, fed as they come, and the writers of what a hub
 * sends.
 *
 * Caveats: values reach the caller as JSON text in both protocols; a
 * MessagePack invocation whose arguments JSON cannot carry (NaN, an
 * extension type, a map key that is not a string, text that is not
 * UTF-8) is given with its arguments absent and why in error (elsewhere
 * in a message such a value is an error), and binary becomes a base64
 * string (json_mpack.c).  A JSON record must be exactly one object, where
 * ASP.NET Core ignores what follows the object.  A message nests at most
 * SIGNALR_HUB_MAX_DEPTH deep in either protocol.  Invalid UTF-8, and
 * \u escapes of lone surrogates, are errors in every string (but for a
 * MessagePack invocation's arguments, as above). */
#include "mpack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RS 0x1e          /* the JSON record separator */
#define KEEP_MAX 16384   /* larger buffers are freed once unused */

struct signalr_hub_reader {
    int protocols;       /* what a handshake may choose */
    int proto;           /* 0 until the handshake, then SIGNALR_HUB_* */
    int stopped;         /* after an error */
    int started;         /* bytes were given */
    size_t max;
    unsigned char *pend; /* the first part of a message */
    size_t plen, pcap;
    int pend_used;       /* pend held the message last returned */
    sr__buf out;         /* what that message decoded to */
};

/* A string or JSON text of the message being read: borrowed (p) or at
 * off in the reader's out buffer (p NULL), which may still move. */
typedef struct {
    const char *p;
    size_t off, len;
    int set;
} span;

typedef struct {
    int64_t type, seq;
    int has_type, has_seq, has_args, allow_reconnect, version;
    span id, target, error, args, ids, headers, item, result, protocol;
} parsed;

/* ===== the reader: framing ===== */

signalr_err signalr_hub_reader_new(signalr_hub_reader **out, int protocols,
                                   size_t max_message, signalr_error *err)
{
    signalr_hub_reader *r;

    sr__ok(err);
    if (!out)
        return sr__fail(err, SIGNALR_EINVAL, "missing output");
    *out = NULL;
    if (protocols & ~(SIGNALR_HUB_JSON | SIGNALR_HUB_MESSAGEPACK))
        return sr__fail(err, SIGNALR_EINVAL, "unknown protocols %d",
                        protocols);
    r = calloc(1, sizeof *r);
    if (!r)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    r->protocols = protocols ? protocols
                             : SIGNALR_HUB_JSON | SIGNALR_HUB_MESSAGEPACK;
    r->max = max_message ? max_message : SIGNALR_HUB_DEFAULT_MAX;
    *out = r;
    return SIGNALR_OK;
}

void signalr_hub_reader_free(signalr_hub_reader *r)
{
    if (!r)
        return;
    free(r->pend);
    sr__buf_free(&r->out);
    free(r);
}

signalr_err signalr_hub_reader_set_protocol(signalr_hub_reader *r,
                                            int protocol, signalr_error *err)
{
    sr__ok(err);
    if (!r || (protocol != SIGNALR_HUB_JSON &&
               protocol != SIGNALR_HUB_MESSAGEPACK))
        return sr__fail(err, SIGNALR_EINVAL, "unknown protocol %d",
                        protocol);
    if (r->started)
        return sr__fail(err, SIGNALR_EINVAL, "the reader has read bytes");
    r->proto = protocol;
    return SIGNALR_OK;
}

int signalr_hub_reader_protocol(const signalr_hub_reader *r)
{
    return r ? r->proto : 0;
}

/* Keep n more bytes of a message not complete yet (the framing keeps
 * plen + n <= max). */
static int keep(signalr_hub_reader *r, const unsigned char *d, size_t n)
{
    if (r->plen + n > r->pcap) {
        size_t cap = r->pcap ? r->pcap : 256;
        unsigned char *p;
        while (cap < r->plen + n)
            cap *= 2;
        if (cap > r->max) /* a length prefix may pass a tiny max */
            cap = r->max > r->plen + n ? r->max : r->plen + n;
        p = realloc(r->pend, cap);
        if (!p)
            return -1;
        r->pend = p;
        r->pcap = cap;
    }
    if (n)
        memcpy(r->pend + r->plen, d, n);
    r->plen += n;
    return 0;
}

static int too_big(const signalr_hub_reader *r, signalr_error *err)
{
    /* ASP.NET Core's words (HubConnectionHandler) */
    sr__fail(err, SIGNALR_ETOOBIG, "The maximum message size of %zuB was "
             "exceeded.", r->max);
    return -1;
}

static int oom(signalr_error *err)
{
    sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    return -1;
}

/* A JSON record: 1 with *msg, *n the record without its separator and
 * *used the bytes taken; 0 when d ran out (all kept); -1 on an error.
 * The record and its separator fit in max bytes. */
static int next_record(signalr_hub_reader *r, const unsigned char *d,
                       size_t len, size_t *used, const unsigned char **msg,
                       size_t *n, signalr_error *err)
{
    size_t room = r->max - r->plen, look = len < room ? len : room;
    const unsigned char *e = memchr(d, RS, look);

    if (e) {
        size_t k = (size_t)(e - d);
        *used = k + 1;
        if (!r->plen) { /* the whole record is in d: read it there */
            *msg = d;
            *n = k;
            return 1;
        }
        if (keep(r, d, k))
            return oom(err);
        *msg = r->pend;
        *n = r->plen;
        r->pend_used = 1;
        return 1;
    }
    if (r->plen + len >= r->max)
        return too_big(r, err);
    if (keep(r, d, len))
        return oom(err);
    *used = len;
    return 0;
}

/* A MessagePack message ([varint length][body]): as next_record, with
 * *msg, *n the body. */
static int next_frame(signalr_hub_reader *r, const unsigned char *d,
                      size_t len, size_t *used, const unsigned char **msg,
                      size_t *n, signalr_error *err)
{
    uint64_t body = 0;
    size_t k = 0, take = 0, total, need;
    int got;

    if (!r->plen) {
        got = sr__varint_read(d, len, &body, &k);
        if (got == 1 && k + body <= r->max && len - k >= body) {
            /* the whole message is in d: read it there */
            *msg = d + k;
            *n = (size_t)body;
            *used = k + (size_t)body;
            return 1;
        }
    }
    /* the prefix, a byte at a time, into pend */
    for (;;) {
        got = sr__varint_read(r->pend, r->plen, &body, &k);
        if (got)
            break;
        if (take == len) {
            *used = len;
            return 0;
        }
        if (keep(r, d + take, 1))
            return oom(err);
        take++;
    }
    if (got < 0)
        return sr__fail(err, SIGNALR_EPROTOCOL, "a message length of more "
                        "than 5 bytes"), -1;
    if (body > 0x7fffffffu || body > r->max || k + body > r->max)
        return too_big(r, err);
    total = k + (size_t)body;
    need = total - r->plen;
    if (len - take < need) {
        if (keep(r, d + take, len - take))
            return oom(err);
        *used = len;
        return 0;
    }
    if (keep(r, d + take, need))
        return oom(err);
    *used = take + need;
    *msg = r->pend + k;
    *n = (size_t)body;
    r->pend_used = 1;
    return 1;
}

/* Forget the message last returned. */
static void release(signalr_hub_reader *r)
{
    if (r->pend_used) {
        r->pend_used = 0;
        r->plen = 0;
        if (r->pcap > KEEP_MAX) {
            free(r->pend);
            r->pend = NULL;
            r->pcap = 0;
        }
    }
    if (r->out.cap > KEEP_MAX)
        sr__buf_free(&r->out);
    r->out.len = 0;
}

/* ===== the reader: shared helpers ===== */

static int bad(signalr_error *err, const char *what)
{
    sr__fail(err, SIGNALR_EPROTOCOL, "%s", what);
    return -1;
}

static void set_borrowed(span *s, const char *p, size_t len)
{
    s->p = p;
    s->off = 0;
    s->len = len;
    s->set = 1;
}

/* Text appended to the reader's out buffer from off on. */
static void set_out(const signalr_hub_reader *r, span *s, size_t off)
{
    s->p = NULL;
    s->off = off;
    s->len = r->out.len - off;
    s->set = 1;
}

static const char *span_ptr(const signalr_hub_reader *r, const span *s)
{
    if (!s->set)
        return NULL;
    return s->p ? s->p : r->out.p + s->off;
}

/* ===== the reader: JSON ===== */

/* The deepest nesting in the JSON text s (valid JSON), or -1 when a \u
 * escape leaves a lone surrogate (no UTF-8 form). */
static int json_scan(const char *s, size_t n)
{
    size_t i;
    int depth = 0, deepest = 0, in_str = 0;

    for (i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '"') {
                in_str = 0;
            } else if (c == '\\' && s[i + 1] == 'u') {
                unsigned cp = 0, lo = 0;
                size_t k;
                for (k = 2; k < 6; k++)
                    cp = cp * 16 + (unsigned)sr__hexval(s[i + k]);
                i += 5;
                if (cp >= 0xdc00 && cp < 0xe000)
                    return -1;
                if (cp >= 0xd800 && cp < 0xdc00) {
                    if (n - i < 7 || s[i + 1] != '\\' || s[i + 2] != 'u')
                        return -1;
                    for (k = 3; k < 7; k++) {
                        int h = sr__hexval(s[i + k]);
                        if (h < 0)
                            return -1;
                        lo = lo * 16 + (unsigned)h;
                    }
                    if (lo < 0xdc00 || lo >= 0xe000)
                        return -1;
                    i += 6;
                }
            } else if (c == '\\') {
                i++;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
}

/* Is the raw member name k[0..kl) (escapes possible) the name want? */
static int key_is(const char *k, size_t kl, const char *want)
{
    size_t wl = strlen(want);
    unsigned char tmp[128];
    char lit[130];

    if (!memchr(k, '\\', kl))
        return kl == wl && !memcmp(k, want, wl);
    if (kl + 2 > sizeof lit)
        return 0;
    lit[0] = '"';
    memcpy(lit + 1, k, kl);
    lit[kl + 1] = '"';
    return sr__json_unescape(lit, kl + 2, tmp) == wl && !memcmp(tmp, want, wl);
}

/* A JSON string value into s: borrowed when it has no escape, else
 * decoded into the out buffer.  -1 when v is not a string. */
static int json_str(signalr_hub_reader *r, const char *v, size_t vl,
                    span *s)
{
    size_t off = r->out.len, len;

    if (v[0] != '"')
        return -1;
    if (!memchr(v, '\\', vl)) {
        set_borrowed(s, v + 1, vl - 2);
        return 0;
    }
    len = sr__json_unescape(v, vl, NULL);
    if (len == (size_t)-1)
        return -1;
    /* room first (the decoded text is never longer), then decode there */
    sr__buf_add(&r->out, v, len);
    if (r->out.oom)
        return 0; /* the caller checks oom */
    sr__json_unescape(v, vl, (unsigned char *)r->out.p + off);
    set_out(r, s, off);
    return 0;
}

/* An integer literal in [lo, hi] (no fraction or exponent, as .NET's
 * GetInt32 and GetInt64 want). */
static int json_int(const char *v, size_t vl, int64_t lo, int64_t hi,
                    int64_t *out)
{
    char tmp[24];
    char *end;
    long long x;
    size_t i;

    if (vl == 0 || vl >= sizeof tmp)
        return -1;
    for (i = 0; i < vl; i++)
        if (!(v[i] >= '0' && v[i] <= '9') && !(i == 0 && v[i] == '-'))
            return -1;
    memcpy(tmp, v, vl);
    tmp[vl] = '\0';
    errno = 0;
    x = strtoll(tmp, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int is_empty(const char *v, size_t vl)
{
    size_t pos = 0, kl, l;
    const char *k, *x;

    return !sr__json_next(v, vl, &pos, &k, &kl, &x, &l);
}

/* A JSON record that must be one object: UTF-8, syntax, depth. */
static int json_object(const char *rec, size_t n, const char *what,
                       signalr_error *err)
{
    int depth;

    if (sr__utf8_bad(rec, n))
        return sr__fail(err, SIGNALR_EPROTOCOL, "the %s is not valid "
                        "UTF-8", what), -1;
    if (!sr__json_is(rec, n, '{'))
        return sr__fail(err, SIGNALR_EPROTOCOL, "the %s is not a JSON "
                        "object", what), -1;
    depth = json_scan(rec, n);
    if (depth < 0)
        return sr__fail(err, SIGNALR_EPROTOCOL, "the %s holds a lone "
                        "surrogate", what), -1;
    if (depth > SIGNALR_HUB_MAX_DEPTH)
        return sr__fail(err, SIGNALR_EPROTOCOL, "the %s nests deeper "
                        "than %d", what, SIGNALR_HUB_MAX_DEPTH), -1;
    return 0;
}

/* One member of a hub message object. */
static int json_member(signalr_hub_reader *r, const char *k, size_t kl,
                       const char *v, size_t vl, parsed *x,
                       signalr_error *err)
{
    if (key_is(k, kl, "type")) {
        if (json_int(v, vl, INT32_MIN, INT32_MAX, &x->type))
            return bad(err, "Expected 'type' to be of type Number.");
        x->has_type = 1;
    } else if (key_is(k, kl, "invocationId")) {
        if (json_str(r, v, vl, &x->id))
            return bad(err, "Expected 'invocationId' to be of type "
                       "String.");
    } else if (key_is(k, kl, "target")) {
        if (json_str(r, v, vl, &x->target))
            return bad(err, "Expected 'target' to be of type String.");
    } else if (key_is(k, kl, "error")) {
        if (json_str(r, v, vl, &x->error))
            return bad(err, "Expected 'error' to be of type String.");
    } else if (key_is(k, kl, "allowReconnect")) {
        if (v[0] != 't' && v[0] != 'f')
            return bad(err, "Expected 'allowReconnect' to be true or "
                       "false.");
        x->allow_reconnect = v[0] == 't';
    } else if (key_is(k, kl, "arguments")) {
        if (v[0] != '[')
            return bad(err, "Expected 'arguments' to be of type Array.");
        set_borrowed(&x->args, v, vl);
        x->has_args = 1;
    } else if (key_is(k, kl, "item")) {
        set_borrowed(&x->item, v, vl);
    } else if (key_is(k, kl, "result")) {
        set_borrowed(&x->result, v, vl);
    } else if (key_is(k, kl, "streamIds")) {
        size_t pos = 0, il, ikl;
        const char *it, *ik;
        if (v[0] != '[')
            return bad(err, "Expected 'streamIds' to be of type Array.");
        while (sr__json_next(v, vl, &pos, &ik, &ikl, &it, &il))
            if (it[0] != '"')
                return bad(err, "Expected 'streamIds' to hold strings.");
        x->ids.set = 0;
        if (!is_empty(v, vl))
            set_borrowed(&x->ids, v, vl);
    } else if (key_is(k, kl, "headers")) {
        size_t pos = 0, il, ikl;
        const char *it, *ik;
        if (v[0] != '{')
            return bad(err, "Expected 'headers' to be of type Object.");
        while (sr__json_next(v, vl, &pos, &ik, &ikl, &it, &il))
            if (it[0] != '"')
                return bad(err, "Expected header values to be of type "
                           "String.");
        x->headers.set = 0;
        if (!is_empty(v, vl))
            set_borrowed(&x->headers, v, vl);
    } else if (key_is(k, kl, "sequenceId")) {
        if (json_int(v, vl, INT64_MIN, INT64_MAX, &x->seq))
            return bad(err, "Expected 'sequenceId' to be of type "
                       "Number.");
        x->has_seq = 1;
    }
    return 0; /* other members are passed over */
}

/* 1: a message in x; 0: a type this reader does not know (passed
 * over); -1 on an error. */
static int read_json(signalr_hub_reader *r, const char *rec, size_t n,
                     parsed *x, signalr_error *err)
{
    size_t pos = 0, kl, vl;
    const char *k, *v;

    if (json_object(rec, n, "message", err))
        return -1;
    while (sr__json_next(rec, n, &pos, &k, &kl, &v, &vl))
        if (json_member(r, k, kl, v, vl, x, err))
            return -1;
    if (r->out.oom)
        return oom(err);
    if (!x->has_type)
        return bad(err, "Missing required property 'type'.");
    switch (x->type) {
    case SIGNALR_HUB_INVOCATION:
    case SIGNALR_HUB_STREAM_INVOCATION:
        if (!x->target.set || !x->target.len)
            return bad(err, "Missing required property 'target'.");
        if (!x->has_args)
            return bad(err, "Missing required property 'arguments'.");
        break;
    case SIGNALR_HUB_STREAM_ITEM:
        if (!x->item.set)
            return bad(err, "Missing required property 'item'.");
        break;
    case SIGNALR_HUB_COMPLETION:
        if (x->error.set && x->result.set)
            return bad(err, "The 'error' and 'result' properties are "
                       "mutually exclusive.");
        break;
    case SIGNALR_HUB_ACK:
    case SIGNALR_HUB_SEQUENCE:
        if (!x->has_seq)
            return bad(err, "Missing required property 'sequenceId'.");
        break;
    case SIGNALR_HUB_CANCEL_INVOCATION:
    case SIGNALR_HUB_PING:
    case SIGNALR_HUB_CLOSE:
        break;
    default:
        return 0;
    }
    if (x->type >= SIGNALR_HUB_STREAM_ITEM &&
        x->type <= SIGNALR_HUB_CANCEL_INVOCATION &&
        (!x->id.set || !x->id.len))
        return bad(err, "Missing required property 'invocationId'.");
    return 1;
}

/* ASCII case-insensitive equality (.NET resolves protocol names so). */
static int name_is(const span *s, const char *p, const char *want)
{
    size_t i, n = strlen(want);

    if (s->len != n)
        return 0;
    for (i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != want[i])
            return 0;
    }
    return 1;
}

/* {"protocol":"json","version":1}: members besides these two are passed
 * over (HandshakeProtocol.TryParseRequestMessage); versions 1 and 2 are
 * accepted. */
static int read_handshake(signalr_hub_reader *r, const char *rec,
                          size_t n, parsed *x, signalr_error *err)
{
    size_t pos = 0, kl, vl;
    const char *k, *v, *name;
    int64_t version = 0;
    int has_version = 0, proto = 0;

    if (json_object(rec, n, "handshake request", err))
        return -1;
    while (sr__json_next(rec, n, &pos, &k, &kl, &v, &vl)) {
        if (key_is(k, kl, "protocol")) {
            if (json_str(r, v, vl, &x->protocol))
                return bad(err, "Expected 'protocol' to be of type "
                           "String.");
        } else if (key_is(k, kl, "version")) {
            if (v[0] == 'n') {
                has_version = 0; /* null: as if absent */
            } else if (json_int(v, vl, INT32_MIN, INT32_MAX, &version)) {
                return bad(err, "Expected 'version' to be of type "
                           "Number.");
            } else {
                has_version = 1;
            }
        }
    }
    if (r->out.oom)
        return oom(err);
    if (!x->protocol.set)
        return bad(err, "Missing required property 'protocol'.");
    if (!has_version)
        return bad(err, "Missing required property 'version'.");
    name = span_ptr(r, &x->protocol);
    if (name_is(&x->protocol, name, "json"))
        proto = SIGNALR_HUB_JSON;
    else if (name_is(&x->protocol, name, "messagepack"))
        proto = SIGNALR_HUB_MESSAGEPACK;
    /* ASP.NET Core's texts: the client shows them to its user */
    if (!(proto & r->protocols))
        return sr__fail(err, SIGNALR_EPROTOCOL, "The protocol '%.*s' is "
                        "not supported.", (int)x->protocol.len, name), -1;
    if (version < 1 || version > 2)
        return sr__fail(err, SIGNALR_EPROTOCOL, "The server does not "
                        "support version %lld of the '%.*s' protocol.",
                        (long long)version, (int)x->protocol.len, name), -1;
    x->type = SIGNALR_HUB_HANDSHAKE;
    x->version = (int)version;
    r->proto = proto;
    return 1;
}

/* ===== the reader: MessagePack ===== */

static int is_array(const sr__mpr *rd)
{
    unsigned char c;

    if (rd->i >= rd->n)
        return 0;
    c = rd->p[rd->i];
    return (c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd;
}

/* A string (str format, not bin) or, when nil_ok, nil (s left unset);
 * valid UTF-8.  field names it in the message, as .NET does. */
static int mp_text(sr__mpr *rd, span *s, int nil_ok, const char *field,
                   signalr_error *err)
{
    size_t n;

    if (nil_ok && rd->i < rd->n && rd->p[rd->i] == 0xc0) {
        rd->i++;
        s->set = 0;
        return 0;
    }
    if (sr__mpr_len(rd, 's', &n) || rd->n - rd->i < n)
        return sr__fail(err, SIGNALR_EPROTOCOL, "Reading '%s' as String "
                        "failed.", field), -1;
    if (sr__utf8_bad((const char *)rd->p + rd->i, n))
        return sr__fail(err, SIGNALR_EPROTOCOL, "'%s' is not valid UTF-8",
                        field), -1;
    set_borrowed(s, (const char *)rd->p + rd->i, n);
    rd->i += n;
    return 0;
}

/* A string that must be there and not empty: field as mp_text, what
 * names it in the message for a nil or "". */
static int mp_text_req(sr__mpr *rd, span *s, const char *field,
                       const char *what, signalr_error *err)
{
    if (mp_text(rd, s, 1, field, err))
        return -1;
    if (!s->set || !s->len)
        return sr__fail(err, SIGNALR_EPROTOCOL, "Null or empty %s.", what),
               -1;
    return 0;
}

/* One value as JSON text in the out buffer. */
static int mp_json(signalr_hub_reader *r, sr__mpr *rd, span *s,
                   signalr_error *err)
{
    size_t off = r->out.len;

    /* inside the message's own array: one level used */
    if (sr__mp_to_json(rd, &r->out, SIGNALR_HUB_MAX_DEPTH - 1, err))
        return -1;
    set_out(r, s, off);
    return 0;
}

/* Headers: a map of strings to strings, as a JSON object (unset when
 * empty). */
static int mp_headers(signalr_hub_reader *r, sr__mpr *rd, parsed *x,
                      signalr_error *err)
{
    size_t n, i, off = r->out.len;

    if (sr__mpr_len(rd, 'm', &n))
        return bad(err, "Reading map length for 'headers' failed.");
    if (!n)
        return 0;
    sr__buf_add(&r->out, "{", 1);
    for (i = 0; i < n; i++) {
        span k, v;
        if (mp_text_req(rd, &k, "headers", "key in header", err) ||
            mp_text_req(rd, &v, "headers", "value in header", err))
            return -1;
        if (i)
            sr__buf_add(&r->out, ",", 1);
        sr__buf_add_json_string(&r->out, k.p, k.len);
        sr__buf_add(&r->out, ":", 1);
        sr__buf_add_json_string(&r->out, v.p, v.len);
    }
    sr__buf_add(&r->out, "}", 1);
    set_out(r, &x->headers, off);
    return 0;
}

/* Stream ids: an array of strings, as a JSON array (unset when empty). */
static int mp_stream_ids(signalr_hub_reader *r, sr__mpr *rd, parsed *x,
                         signalr_error *err)
{
    size_t n, i, off = r->out.len;

    if (sr__mpr_len(rd, 'a', &n))
        return bad(err, "Reading array length for 'streamIds' failed.");
    if (!n)
        return 0;
    sr__buf_add(&r->out, "[", 1);
    for (i = 0; i < n; i++) {
        span id;
        if (mp_text_req(rd, &id, "streamIds", "value in streamIds received",
                        err))
            return -1;
        if (i)
            sr__buf_add(&r->out, ",", 1);
        sr__buf_add_json_string(&r->out, id.p, id.len);
    }
    sr__buf_add(&r->out, "]", 1);
    set_out(r, &x->ids, off);
    return 0;
}

/* Invocation and StreamInvocation: [t, headers, id, target, arguments,
 * streamIds] (older clients send no streamIds). */
static int mp_invocation(signalr_hub_reader *r, sr__mpr *rd, size_t items,
                         parsed *x, signalr_error *err)
{
    if (items < 5)
        return bad(err, "An invocation of fewer than 5 items.");
    if (mp_headers(r, rd, x, err))
        return -1;
    if (x->type == SIGNALR_HUB_INVOCATION) {
        if (mp_text(rd, &x->id, 1, "invocationId", err))
            return -1;
    } else if (mp_text_req(rd, &x->id, "invocationId", "invocation ID for "
                           "StreamInvocation message", err)) {
        return -1;
    }
    if (mp_text_req(rd, &x->target, "target",
                    x->type == SIGNALR_HUB_INVOCATION
                    ? "target for Invocation message"
                    : "target for StreamInvocation message", err))
        return -1;
    if (!is_array(rd))
        return bad(err, "Reading array length for 'arguments' failed.");
    {
        size_t at = rd->i, off = r->out.len;
        signalr_error why;

        sr__ok(&why);
        if (mp_json(r, rd, &x->args, &why)) {
            /* well-formed MessagePack that JSON cannot carry (NaN or an
             * infinity, an extension type, a map key that is not a
             * string, text that is not UTF-8): the invocation still, its
             * arguments absent and why in error, for the hub to answer
             * as a failure to bind them (the connection lives on, as in
             * ASP.NET Core); bytes that are not MessagePack stop the
             * reader as before */
            rd->i = at;
            r->out.len = off;
            x->args.set = 0;
            /* (the pass allows every depth the conversion does, and one
             * empty container more: too deep is told by the message) */
            if (!strncmp(why.msg, SR__MP_TOO_DEEP, sizeof SR__MP_TOO_DEEP - 1)
                || sr__mpr_pass(rd, 1)) {
                if (err)
                    *err = why;
                return -1;
            }
            sr__buf_adds(&r->out, why.msg);
            set_out(r, &x->error, off);
        }
    }
    if (items > 5 && mp_stream_ids(r, rd, x, err))
        return -1;
    return 0;
}

/* Completion: [3, headers, id, kind, error or result]: kind 1 error, 2
 * void, 3 result. */
static int mp_completion(signalr_hub_reader *r, sr__mpr *rd, size_t items,
                         parsed *x, signalr_error *err)
{
    int64_t kind;

    if (items < 4)
        return bad(err, "A completion of fewer than 4 items.");
    if (mp_headers(r, rd, x, err) ||
        mp_text_req(rd, &x->id, "invocationId", "invocation ID for "
                    "Completion message", err))
        return -1;
    if (sr__mpr_int(rd, &kind))
        return bad(err, "Reading 'resultKind' as Int32 failed.");
    if (kind == 2)
        return 0;
    if (kind != 1 && kind != 3)
        return bad(err, "Invalid invocation result kind.");
    if (items < 5)
        return bad(err, "A completion without its error or result.");
    if (kind == 1) /* a nil error is a void completion, as in .NET */
        return mp_text(rd, &x->error, 1, "error", err);
    return mp_json(r, rd, &x->result, err);
}

/* 1: a message in x; 0: a type this reader does not know; -1. */
static int read_mp(signalr_hub_reader *r, const unsigned char *b, size_t n,
                   parsed *x, signalr_error *err)
{
    sr__mpr rd;
    size_t items;
    int b_reconnect;

    rd.p = b;
    rd.n = n;
    rd.i = 0;
    if (sr__mpr_len(&rd, 'a', &items))
        return bad(err, "A message that is not a MessagePack array.");
    if (items < 1 || sr__mpr_int(&rd, &x->type) || x->type < INT32_MIN ||
        x->type > INT32_MAX)
        return bad(err, "Reading 'messageType' as Int32 failed.");
    switch (x->type) {
    case SIGNALR_HUB_INVOCATION:
    case SIGNALR_HUB_STREAM_INVOCATION:
        return mp_invocation(r, &rd, items, x, err) ? -1 : 1;
    case SIGNALR_HUB_STREAM_ITEM:
        if (items < 4)
            return bad(err, "A stream item of fewer than 4 items.");
        if (mp_headers(r, &rd, x, err) ||
            mp_text_req(&rd, &x->id, "invocationId", "invocation ID for "
                        "StreamItem message", err) ||
            mp_json(r, &rd, &x->item, err))
            return -1;
        return 1;
    case SIGNALR_HUB_COMPLETION:
        return mp_completion(r, &rd, items, x, err) ? -1 : 1;
    case SIGNALR_HUB_CANCEL_INVOCATION:
        if (items < 3)
            return bad(err, "A cancel invocation of fewer than 3 items.");
        if (mp_headers(r, &rd, x, err) ||
            mp_text_req(&rd, &x->id, "invocationId", "invocation ID for "
                        "CancelInvocation message", err))
            return -1;
        return 1;
    case SIGNALR_HUB_PING:
        return 1;
    case SIGNALR_HUB_CLOSE: /* [7, error or nil, allowReconnect] */
        if (items < 2)
            return bad(err, "A close without its error.");
        if (mp_text(&rd, &x->error, 1, "error", err))
            return -1;
        if (items > 2) {
            if (sr__mpr_bool(&rd, &b_reconnect))
                return bad(err, "Reading 'allowReconnect' as Boolean "
                           "failed.");
            x->allow_reconnect = b_reconnect;
        }
        return 1;
    case SIGNALR_HUB_ACK:
    case SIGNALR_HUB_SEQUENCE:
        if (items < 2 || sr__mpr_int(&rd, &x->seq))
            return bad(err, "Reading 'sequenceId' as Int64 failed.");
        return 1;
    default:
        return 0; /* "old clients can ignore them" */
    }
}

/* ===== the reader: the message ===== */

static void put(const signalr_hub_reader *r, const span *s, const char **p,
                size_t *len)
{
    *p = span_ptr(r, s);
    *len = s->set ? s->len : 0;
}

static void fill(const signalr_hub_reader *r, const parsed *x,
                 signalr_hub_message *m)
{
    m->type = (int)x->type;
    switch (m->type) {
    case SIGNALR_HUB_HANDSHAKE:
        put(r, &x->protocol, &m->protocol, &m->protocol_len);
        m->version = x->version;
        return;
    case SIGNALR_HUB_INVOCATION:
    case SIGNALR_HUB_STREAM_INVOCATION:
        if (x->id.set && x->id.len) /* "" is no id: no answer wanted */
            put(r, &x->id, &m->invocation_id, &m->invocation_id_len);
        put(r, &x->target, &m->target, &m->target_len);
        put(r, &x->args, &m->arguments, &m->arguments_len);
        if (!x->args.set) /* (a JSON invocation's own "error" is no such) */
            put(r, &x->error, &m->error, &m->error_len);
        put(r, &x->ids, &m->stream_ids, &m->stream_ids_len);
        break;
    case SIGNALR_HUB_STREAM_ITEM:
        put(r, &x->id, &m->invocation_id, &m->invocation_id_len);
        put(r, &x->item, &m->item, &m->item_len);
        break;
    case SIGNALR_HUB_COMPLETION:
        put(r, &x->id, &m->invocation_id, &m->invocation_id_len);
        put(r, &x->error, &m->error, &m->error_len);
        put(r, &x->result, &m->result, &m->result_len);
        break;
    case SIGNALR_HUB_CANCEL_INVOCATION:
        put(r, &x->id, &m->invocation_id, &m->invocation_id_len);
        break;
    case SIGNALR_HUB_CLOSE:
        put(r, &x->error, &m->error, &m->error_len);
        m->allow_reconnect = x->allow_reconnect;
        return;
    case SIGNALR_HUB_ACK:
    case SIGNALR_HUB_SEQUENCE:
        m->sequence_id = (long long)x->seq;
        return;
    default: /* ping */
        return;
    }
    put(r, &x->headers, &m->headers, &m->headers_len);
}

int signalr_hub_next(signalr_hub_reader *r, const char *data, size_t len,
                     size_t *used, signalr_hub_message *m,
                     signalr_error *err)
{
    const unsigned char *d = (const unsigned char *)data;
    size_t took = 0;

    sr__ok(err);
    if (used)
        *used = 0;
    if (m)
        memset(m, 0, sizeof *m);
    if (!r || !used || !m || (!data && len))
        return sr__fail(err, SIGNALR_EINVAL, "missing reader, bytes or "
                        "output"), -1;
    if (r->stopped)
        return sr__fail(err, SIGNALR_EINVAL, "the reader stopped at an "
                        "earlier error"), -1;
    r->started = 1;
    for (;;) {
        const unsigned char *msg = NULL;
        size_t n = 0, u = 0;
        parsed x;
        int got;

        release(r);
        if (took == len)
            return 0; /* a message needs new bytes to complete */
        if (r->proto == SIGNALR_HUB_MESSAGEPACK)
            got = next_frame(r, d + took, len - took, &u, &msg, &n, err);
        else
            got = next_record(r, d + took, len - took, &u, &msg, &n, err);
        took += u;
        *used = took;
        if (got < 0)
            r->stopped = 1;
        if (got <= 0)
            return got;
        memset(&x, 0, sizeof x);
        if (!r->proto)
            got = read_handshake(r, (const char *)msg, n, &x, err);
        else if (r->proto == SIGNALR_HUB_JSON)
            got = read_json(r, (const char *)msg, n, &x, err);
        else
            got = read_mp(r, msg, n, &x, err);
        if (got >= 0 && r->out.oom)
            got = oom(err);
        if (got < 0) {
            r->stopped = 1;
            return -1;
        }
        if (got == 1) {
            fill(r, &x, m);
            return 1;
        }
        /* a type this reader does not know: the next message */
    }
}

/* ===== the writers ===== */

/* A message a hub sends. */
typedef struct {
    int type;
    const char *id;
    const char *target;
    const char *error;
    const char *json;   /* arguments, item or result; NULL: none */
    size_t json_len;
    int allow_reconnect;
} out_msg;

static signalr_err check_text(const char *what, const char *s,
                              signalr_error *err)
{
    if (s && sr__utf8_bad(s, strlen(s)))
        return sr__fail(err, SIGNALR_EINVAL, "the %s is not valid UTF-8",
                        what);
    return SIGNALR_OK;
}

/* One JSON value given by the caller: trimmed, UTF-8, valid. */
static signalr_err check_json(const char *what, const char **s, size_t *n,
                              char open, signalr_error *err)
{
    while (*n && strchr(" \t\r\n", (*s)[*n - 1]))
        (*n)--;
    while (*n && strchr(" \t\r\n", (*s)[0])) {
        (*s)++;
        (*n)--;
    }
    if (sr__utf8_bad(*s, *n))
        return sr__fail(err, SIGNALR_EINVAL, "the %s is not valid UTF-8 "
                        "(byte %zu): JSON carries text only", what,
                        sr__utf8_bad(*s, *n));
    if (!sr__json_valid(*s, *n) || (open && (*s)[0] != open))
        return sr__fail(err, SIGNALR_EINVAL, "the %s is not %s", what,
                        open ? "a JSON array" : "one JSON value");
    return SIGNALR_OK;
}

static void json_key_str(sr__buf *b, const char *key, const char *s)
{
    sr__buf_adds(b, key);
    sr__buf_add_json_string(b, s, strlen(s));
}

static signalr_err write_json(const out_msg *o, char **out, size_t *out_len,
                              signalr_error *err)
{
    sr__buf b = { NULL, 0, 0, 0 };

    sr__buf_addf(&b, "{\"type\":%d", o->type);
    switch (o->type) {
    case SIGNALR_HUB_INVOCATION:
        if (o->id && *o->id)
            json_key_str(&b, ",\"invocationId\":", o->id);
        json_key_str(&b, ",\"target\":", o->target);
        sr__buf_adds(&b, ",\"arguments\":");
        sr__buf_add(&b, o->json, o->json_len);
        break;
    case SIGNALR_HUB_STREAM_ITEM:
        json_key_str(&b, ",\"invocationId\":", o->id);
        sr__buf_adds(&b, ",\"item\":");
        sr__buf_add(&b, o->json, o->json_len);
        break;
    case SIGNALR_HUB_COMPLETION:
        json_key_str(&b, ",\"invocationId\":", o->id);
        if (o->error) {
            json_key_str(&b, ",\"error\":", o->error);
        } else if (o->json) {
            sr__buf_adds(&b, ",\"result\":");
            sr__buf_add(&b, o->json, o->json_len);
        }
        break;
    case SIGNALR_HUB_CLOSE:
        if (o->error)
            json_key_str(&b, ",\"error\":", o->error);
        if (o->allow_reconnect)
            sr__buf_adds(&b, ",\"allowReconnect\":true");
        break;
    default: /* ping */
        break;
    }
    sr__buf_add(&b, "}\x1e", 2);
    *out = sr__buf_take(&b, out_len);
    if (!*out)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    return SIGNALR_OK;
}

/* A value given as JSON, transcoded. */
static signalr_err mp_value(sr__mpw *w, const char *what, const char *s,
                            size_t n, signalr_error *err)
{
    if (!sr__json_to_mp(w, s, n, 0))
        return SIGNALR_OK;
    if (w->oom)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    return sr__fail(err, SIGNALR_EINVAL, "the %s cannot be written as "
                    "MessagePack", what);
}

/* The arrays as ASP.NET Core's MessagePackHubProtocolWorker writes them;
 * headers always an empty map. */
static signalr_err write_mp(const out_msg *o, char **out, size_t *out_len,
                            signalr_error *err)
{
    sr__mpw w = { NULL, 0, 0, 1, 0 };
    signalr_err rc = SIGNALR_OK;
    unsigned char *p;
    size_t k;

    switch (o->type) {
    case SIGNALR_HUB_INVOCATION:
        sr__mpw_array(&w, 6);
        sr__mpw_uint(&w, SIGNALR_HUB_INVOCATION);
        sr__mpw_map(&w, 0);
        sr__mpw_strz(&w, o->id && *o->id ? o->id : NULL);
        sr__mpw_strz(&w, o->target);
        rc = mp_value(&w, "arguments", o->json, o->json_len, err);
        sr__mpw_array(&w, 0); /* stream ids */
        break;
    case SIGNALR_HUB_STREAM_ITEM:
        sr__mpw_array(&w, 4);
        sr__mpw_uint(&w, SIGNALR_HUB_STREAM_ITEM);
        sr__mpw_map(&w, 0);
        sr__mpw_strz(&w, o->id);
        rc = mp_value(&w, "item", o->json, o->json_len, err);
        break;
    case SIGNALR_HUB_COMPLETION:
        sr__mpw_array(&w, o->error || o->json ? 5 : 4);
        sr__mpw_uint(&w, SIGNALR_HUB_COMPLETION);
        sr__mpw_map(&w, 0);
        sr__mpw_strz(&w, o->id);
        if (o->error) {
            sr__mpw_uint(&w, 1);
            sr__mpw_strz(&w, o->error);
        } else if (o->json) {
            sr__mpw_uint(&w, 3);
            rc = mp_value(&w, "result", o->json, o->json_len, err);
        } else {
            sr__mpw_uint(&w, 2);
        }
        break;
    case SIGNALR_HUB_CLOSE:
        sr__mpw_array(&w, 3);
        sr__mpw_uint(&w, SIGNALR_HUB_CLOSE);
        sr__mpw_strz(&w, o->error && *o->error ? o->error : NULL);
        sr__mpw_bool(&w, o->allow_reconnect);
        break;
    default: /* ping */
        sr__mpw_array(&w, 1);
        sr__mpw_uint(&w, SIGNALR_HUB_PING);
        break;
    }
    if (!rc && w.oom)
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    if (rc) {
        free(w.p);
        return rc;
    }
    k = sr__varint_len(w.len);
    p = malloc(k + w.len + 1);
    if (!p) {
        free(w.p);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    {
        sr__mpw pre = { NULL, 0, 0, 0, 0 };
        pre.p = p;
        sr__mpw_varint(&pre, w.len);
    }
    memcpy(p + k, w.p, w.len);
    p[k + w.len] = '\0';
    *out_len = k + w.len;
    *out = (char *)p;
    free(w.p);
    return SIGNALR_OK;
}

static signalr_err encode(int protocol, out_msg *o, char **out,
                          size_t *out_len, signalr_error *err)
{
    const char *what = o->type == SIGNALR_HUB_INVOCATION ? "arguments' text"
                       : o->type == SIGNALR_HUB_STREAM_ITEM ? "item"
                       : "result";

    sr__ok(err);
    if (!out || !out_len)
        return sr__fail(err, SIGNALR_EINVAL, "missing output");
    *out = NULL;
    *out_len = 0;
    if (protocol != SIGNALR_HUB_JSON && protocol != SIGNALR_HUB_MESSAGEPACK)
        return sr__fail(err, SIGNALR_EINVAL, "unknown protocol %d",
                        protocol);
    if ((o->type == SIGNALR_HUB_STREAM_ITEM ||
         o->type == SIGNALR_HUB_COMPLETION) && (!o->id || !*o->id))
        return sr__fail(err, SIGNALR_EINVAL, "the invocation id is "
                        "missing");
    if (o->type == SIGNALR_HUB_INVOCATION && (!o->target || !*o->target))
        return sr__fail(err, SIGNALR_EINVAL, "the target is missing");
    if (check_text("invocation id", o->id, err) ||
        check_text("target", o->target, err) ||
        check_text("error", o->error, err))
        return SIGNALR_EINVAL;
    if (o->json && check_json(what, &o->json, &o->json_len,
                              o->type == SIGNALR_HUB_INVOCATION ? '[' : 0,
                              err))
        return SIGNALR_EINVAL;
    if (protocol == SIGNALR_HUB_JSON)
        return write_json(o, out, out_len, err);
    return write_mp(o, out, out_len, err);
}

signalr_err signalr_hub_encode_handshake_response(const char *error,
                                                  char **out,
                                                  size_t *out_len,
                                                  signalr_error *err)
{
    sr__buf b = { NULL, 0, 0, 0 };

    sr__ok(err);
    if (!out || !out_len)
        return sr__fail(err, SIGNALR_EINVAL, "missing output");
    *out = NULL;
    *out_len = 0;
    if (check_text("error", error, err))
        return SIGNALR_EINVAL;
    if (error && *error) /* "" is no error, as ASP.NET Core writes it */
        json_key_str(&b, "{\"error\":", error);
    else
        sr__buf_add(&b, "{", 1);
    sr__buf_add(&b, "}\x1e", 2);
    *out = sr__buf_take(&b, out_len);
    if (!*out)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    return SIGNALR_OK;
}

signalr_err signalr_hub_encode_completion(int protocol,
                                          const char *invocation_id,
                                          const char *result_json,
                                          size_t result_len,
                                          const char *error, char **out,
                                          size_t *out_len,
                                          signalr_error *err)
{
    out_msg o;

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_HUB_COMPLETION;
    o.id = invocation_id;
    o.error = error;
    if (!error) {
        o.json = result_json;
        o.json_len = result_len;
    }
    return encode(protocol, &o, out, out_len, err);
}

signalr_err signalr_hub_encode_stream_item(int protocol,
                                           const char *invocation_id,
                                           const char *item_json,
                                           size_t item_len, char **out,
                                           size_t *out_len,
                                           signalr_error *err)
{
    out_msg o;

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_HUB_STREAM_ITEM;
    o.id = invocation_id;
    o.json = item_json ? item_json : "null";
    o.json_len = item_json ? item_len : 4;
    return encode(protocol, &o, out, out_len, err);
}

signalr_err signalr_hub_encode_invocation(int protocol,
                                          const char *invocation_id,
                                          const char *target,
                                          const char *args_json,
                                          size_t args_len, char **out,
                                          size_t *out_len,
                                          signalr_error *err)
{
    out_msg o;

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_HUB_INVOCATION;
    o.id = invocation_id;
    o.target = target;
    o.json = args_json ? args_json : "[]";
    o.json_len = args_json ? args_len : 2;
    return encode(protocol, &o, out, out_len, err);
}

signalr_err signalr_hub_encode_ping(int protocol, char **out,
                                    size_t *out_len, signalr_error *err)
{
    out_msg o;

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_HUB_PING;
    return encode(protocol, &o, out, out_len, err);
}

signalr_err signalr_hub_encode_close(int protocol, const char *error,
                                     int allow_reconnect, char **out,
                                     size_t *out_len, signalr_error *err)
{
    out_msg o;

    memset(&o, 0, sizeof o);
    o.type = SIGNALR_HUB_CLOSE;
    o.error = error;
    o.allow_reconnect = !!allow_reconnect;
    return encode(protocol, &o, out, out_len, err);
}
