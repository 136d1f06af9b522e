/* svcproto.c - the Azure SignalR service protocol of persistent mode
 * (server connections): frames are [varint length][MessagePack array].
 * Writes the messages a management ("Weak") connection sends, with the
 * hub-protocol payloads pre-serialized for JSON and MessagePack clients,
 * and reads the messages the service sends back.
 *
 * The MessagePack here is a handful of header writers and a cursor reader
 * that allocates nothing: a reader that allocated by the counts a message
 * declares would let six bytes from the network ask for gigabytes. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ===== writing ===== */

/* A writer that stores bytes (p != NULL: into a buffer of the right size,
 * or, grow set, one it enlarges) or only counts them (p == NULL). */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    int grow, oom;
} spw;

/* Room for n more bytes (growing writers); 0 when there is none. */
static int w_room(spw *w, size_t n)
{
    if (!w->grow || w->len + n <= w->cap)
        return !w->oom;
    {
        size_t cap = w->cap ? w->cap : 256;
        unsigned char *q;
        while (cap < w->len + n)
            cap *= 2;
        q = realloc(w->p, cap);
        if (!q) {
            w->oom = 1;
            return 0;
        }
        w->p = q;
        w->cap = cap;
    }
    return 1;
}

static void w_raw(spw *w, const void *s, size_t n)
{
    if (w->p || w->grow) {
        if (!w_room(w, n))
            return;
        if (n)
            memcpy(w->p + w->len, s, n);
    }
    w->len += n;
}

static void w_byte(spw *w, unsigned char c) { w_raw(w, &c, 1); }

static void w_be(spw *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    int i;

    for (i = bytes - 1; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    w_raw(w, b, (size_t)bytes);
}

static void w_uint(spw *w, uint64_t v)
{
    if (v < 128) {
        w_byte(w, (unsigned char)v);
    } else if (v <= 0xff) {
        w_byte(w, 0xcc);
        w_be(w, v, 1);
    } else if (v <= 0xffff) {
        w_byte(w, 0xcd);
        w_be(w, v, 2);
    } else if (v <= 0xffffffffu) {
        w_byte(w, 0xce);
        w_be(w, v, 4);
    } else {
        w_byte(w, 0xcf);
        w_be(w, v, 8);
    }
}

static void w_int(spw *w, int64_t v)
{
    if (v >= 0) {
        w_uint(w, (uint64_t)v);
    } else if (v >= -32) {
        w_byte(w, (unsigned char)(0xe0 | (v + 32)));
    } else if (v >= INT8_MIN) {
        w_byte(w, 0xd0);
        w_be(w, (uint64_t)v, 1);
    } else if (v >= INT16_MIN) {
        w_byte(w, 0xd1);
        w_be(w, (uint64_t)v, 2);
    } else if (v >= INT32_MIN) {
        w_byte(w, 0xd2);
        w_be(w, (uint64_t)v, 4);
    } else {
        w_byte(w, 0xd3);
        w_be(w, (uint64_t)v, 8);
    }
}

static void w_head(spw *w, size_t n, unsigned char fix, size_t fixmax,
                   unsigned char c8, unsigned char c16, unsigned char c32)
{
    if (fix && n <= fixmax) {
        w_byte(w, (unsigned char)(fix | n));
    } else if (c8 && n <= 0xff) {
        w_byte(w, c8);
        w_be(w, n, 1);
    } else if (n <= 0xffff) {
        w_byte(w, c16);
        w_be(w, n, 2);
    } else {
        w_byte(w, c32);
        w_be(w, n, 4);
    }
}

static void w_array(spw *w, size_t n) { w_head(w, n, 0x90, 15, 0, 0xdc, 0xdd); }
static void w_map(spw *w, size_t n) { w_head(w, n, 0x80, 15, 0, 0xde, 0xdf); }

/* A string; s == NULL writes nil. */
static void w_str(spw *w, const char *s, size_t n)
{
    if (!s) {
        w_byte(w, 0xc0);
        return;
    }
    w_head(w, n, 0xa0, 31, 0xd9, 0xda, 0xdb);
    w_raw(w, s, n);
}

static void w_strz(spw *w, const char *s) { w_str(w, s, s ? strlen(s) : 0); }

static void w_bin_head(spw *w, size_t n) { w_head(w, n, 0, 0, 0xc4, 0xc5, 0xc6); }

static size_t varint_len(size_t n)
{
    size_t k = 1;

    while (n >= 0x80) {
        n >>= 7;
        k++;
    }
    return k;
}

static void w_varint(spw *w, size_t n)
{
    while (n >= 0x80) {
        w_byte(w, (unsigned char)(n | 0x80));
        n >>= 7;
    }
    w_byte(w, (unsigned char)n);
}

static void w_strings(spw *w, const char *const *list, size_t n)
{
    size_t i;

    w_array(w, n);
    for (i = 0; i < n; i++)
        w_strz(w, list[i]);
}

/* ----- JSON to MessagePack (the arguments of the hub invocation) ----- */

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        int d = sr__hexval(s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decode the JSON string literal s[0..n) (quotes included) into w, or
 * only count when out is NULL; returns the decoded length, (size_t)-1 on
 * a bad escape. */
static size_t json_unescape(const char *s, size_t n, unsigned char *out)
{
    size_t i, len = 0;
    unsigned char tmp[4];

    for (i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t k;

        if (c != '\\') {
            if (out)
                out[len] = c;
            len++;
            continue;
        }
        if (++i + 1 >= n)
            return (size_t)-1;
        switch (s[i]) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (i + 5 > n - 1 || hex4(s + i + 1, &cp))
                return (size_t)-1;
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 7 <= n - 1 &&
                s[i + 1] == '\\' && s[i + 2] == 'u') {
                unsigned lo;
                if (!hex4(s + i + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            break;
        default:
            return (size_t)-1;
        }
        k = utf8_put(tmp, cp);
        if (out)
            memcpy(out + len, tmp, k);
        len += k;
    }
    return len;
}

static int json_to_mp(spw *w, const char *s, size_t n, int depth);

static int json_container(spw *w, const char *s, size_t n, int depth)
{
    size_t pos = 0, count = 0, kl, vl;
    const char *k, *v;
    int obj = s[0] == '{';

    while (sr__json_next(s, n, &pos, &k, &kl, &v, &vl))
        count++;
    if (obj)
        w_map(w, count);
    else
        w_array(w, count);
    pos = 0;
    while (sr__json_next(s, n, &pos, &k, &kl, &v, &vl)) {
        if (obj && json_to_mp(w, k - 1, kl + 2, depth + 1))
            return -1;
        if (json_to_mp(w, v, vl, depth + 1))
            return -1;
    }
    return 0;
}

static int json_number(spw *w, const char *s, size_t n)
{
    char tmp[64];
    size_t i;
    int integral = 1;

    if (n >= sizeof tmp)
        integral = 0; /* too many digits for an int64: a double */
    for (i = 0; i < n && integral; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
            integral = 0;
    if (n < sizeof tmp) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
    }
    if (integral) {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(tmp, &end, 10);
        if (!errno && *end == '\0') {
            w_int(w, v);
            return 0;
        }
    }
    {
        double d;
        uint64_t bits;
        if (n < sizeof tmp) {
            d = strtod(tmp, NULL);
        } else {
            char *big = sr__strndup(s, n);
            if (!big)
                return -1;
            d = strtod(big, NULL);
            free(big);
        }
        memcpy(&bits, &d, sizeof bits);
        w_byte(w, 0xcb);
        w_be(w, bits, 8);
    }
    return 0;
}

/* One JSON value (already validated) as MessagePack. */
static int json_to_mp(spw *w, const char *s, size_t n, int depth)
{
    size_t len;

    if (depth > 600)
        return -1;
    switch (s[0]) {
    case '{':
    case '[':
        return json_container(w, s, n, depth);
    case '"':
        len = json_unescape(s, n, NULL);
        if (len == (size_t)-1)
            return -1;
        w_head(w, len, 0xa0, 31, 0xd9, 0xda, 0xdb);
        if (w->p || w->grow) {
            if (!w_room(w, len))
                return -1;
            json_unescape(s, n, w->p + w->len);
        }
        w->len += len;
        return 0;
    case 't':
        w_byte(w, 0xc3);
        return 0;
    case 'f':
        w_byte(w, 0xc2);
        return 0;
    case 'n':
        w_byte(w, 0xc0);
        return 0;
    default:
        return json_number(w, s, n);
    }
}

/* ----- the hub payloads ----- */

static const char JSON_HEAD[] = "{\"type\":1,\"target\":";
static const char JSON_ARGS[] = ",\"arguments\":";

/* The JSON hub message: {"type":1,"target":...,"arguments":...} + 0x1E. */
static void w_json_payload(spw *w, const char *target_json, size_t tlen,
                           const char *args, size_t alen)
{
    w_raw(w, JSON_HEAD, sizeof JSON_HEAD - 1);
    w_raw(w, target_json, tlen);
    w_raw(w, JSON_ARGS, sizeof JSON_ARGS - 1);
    w_raw(w, args, alen);
    w_raw(w, "}\x1e", 2);
}

/* The MessagePack hub message without its varint prefix:
 * [1, {}, nil, target, arguments, []]. */
static int w_mp_invocation(spw *w, const char *target, const char *args,
                           size_t alen)
{
    w_raw(w, "\x96\x01\x80\xc0", 4);
    w_strz(w, target);
    if (json_to_mp(w, args, alen, 0))
        return -1;
    w_byte(w, 0x90);
    return 0;
}

/* Everything a data message needs, checked once. */
typedef struct {
    const signalr_sp_data *d;
    char *target_json;   /* the target as a JSON string literal */
    size_t target_json_len;
    const char *args;
    size_t args_len;
    size_t json_len;         /* the JSON payload's size */
    unsigned char *mp;       /* the MessagePack payload, without prefix */
    size_t mp_len;
} data_ctx;

static void w_payloads(spw *w, const data_ctx *x)
{
    int n = !!(x->d->protocols & SIGNALR_SP_JSON) +
            !!(x->d->protocols & SIGNALR_SP_MESSAGEPACK);

    w_map(w, (size_t)n);
    if (x->d->protocols & SIGNALR_SP_JSON) {
        w_str(w, "json", 4);
        w_bin_head(w, x->json_len);
        w_json_payload(w, x->target_json, x->target_json_len, x->args,
                       x->args_len);
    }
    if (x->d->protocols & SIGNALR_SP_MESSAGEPACK) {
        w_str(w, "messagepack", 11);
        w_bin_head(w, varint_len(x->mp_len) + x->mp_len);
        w_varint(w, x->mp_len);
        w_raw(w, x->mp, x->mp_len);
    }
}

static void w_data_body(spw *w, const data_ctx *x)
{
    const signalr_sp_data *d = x->d;

    switch (d->type) {
    case SIGNALR_SP_GROUP_BROADCAST:
        w_array(w, 7);
        w_uint(w, (uint64_t)d->type);
        w_strz(w, d->id);
        w_strings(w, d->list, d->count);
        w_payloads(w, x);
        w_map(w, 0);
        w_array(w, 0);  /* excluded users */
        w_str(w, NULL, 0); /* caller user id */
        return;
    case SIGNALR_SP_USER_DATA:
        w_array(w, 4);
        w_uint(w, (uint64_t)d->type);
        w_strz(w, d->id);
        break;
    default: /* 7, 9, 10, 14: a list first */
        w_array(w, 4);
        w_uint(w, (uint64_t)d->type);
        w_strings(w, d->list, d->count);
        break;
    }
    w_payloads(w, x);
    w_map(w, 0);
}

/* Allocate the frame for a body that count() sizes and fill() writes. */
typedef void (*body_fn)(spw *w, const void *ctx);

static signalr_err frame(body_fn fn, const void *ctx, size_t max,
                         char **out, size_t *out_len, signalr_error *err)
{
    spw w = { NULL, 0, 0, 0, 0 };
    size_t body, total;

    fn(&w, ctx);
    body = w.len;
    if (body > max)
        return sr__fail(err, SIGNALR_ETOOBIG, "the message is %zu bytes; "
                        "the limit is %zu", body, max);
    total = varint_len(body) + body;
    w.p = malloc(total + 1);
    if (!w.p)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    w.len = 0;
    w_varint(&w, body);
    fn(&w, ctx);
    w.p[total] = '\0';
    *out = (char *)w.p;
    *out_len = total;
    return SIGNALR_OK;
}

static void data_body_fn(spw *w, const void *ctx)
{
    w_data_body(w, (const data_ctx *)ctx);
}

static signalr_err check_str(const char *what, const char *s,
                             signalr_error *err)
{
    if (!s)
        return sr__fail(err, SIGNALR_EINVAL, "%s is missing", what);
    return SIGNALR_OK;
}

signalr_err signalr_sp_encode_data(const signalr_sp_data *d, char **out,
                                   size_t *out_len, signalr_error *err)
{
    data_ctx x;
    sr__buf tb = { 0 };
    spw cw = { NULL, 0, 0, 0, 0 }, mw = { NULL, 0, 0, 1, 0 };
    size_t i, max;
    signalr_err rc;

    sr__ok(err);
    if (!d || !out || !out_len)
        return sr__fail(err, SIGNALR_EINVAL, "missing message or output");
    *out = NULL;
    *out_len = 0;
    switch (d->type) {
    case SIGNALR_SP_MULTI_CONNECTION_DATA: case SIGNALR_SP_USER_DATA:
    case SIGNALR_SP_MULTI_USER_DATA: case SIGNALR_SP_BROADCAST:
    case SIGNALR_SP_GROUP_BROADCAST: case SIGNALR_SP_MULTI_GROUP_BROADCAST:
        break;
    default:
        return sr__fail(err, SIGNALR_EINVAL, "message type %d carries no "
                        "payloads", d->type);
    }
    if (!(d->protocols & (SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK)))
        return sr__fail(err, SIGNALR_EINVAL, "no client protocol chosen");
    if ((d->type == SIGNALR_SP_USER_DATA ||
         d->type == SIGNALR_SP_GROUP_BROADCAST) &&
        check_str(d->type == SIGNALR_SP_USER_DATA ? "the user id"
                  : "the group name", d->id, err))
        return err ? err->code : SIGNALR_EINVAL;
    if (d->count && !d->list)
        return sr__fail(err, SIGNALR_EINVAL, "the id list is missing");
    for (i = 0; i < d->count; i++)
        if (!d->list[i])
            return sr__fail(err, SIGNALR_EINVAL, "id %zu of the list is "
                            "missing", i + 1);
    if (!d->target || !*d->target)
        return sr__fail(err, SIGNALR_EINVAL, "the target is missing");
    x.d = d;
    x.args = d->arguments ? d->arguments : "[]";
    x.args_len = d->arguments ? d->arguments_len : 2;
    if (sr__check_utf8("the arguments", x.args, x.args_len, err))
        return SIGNALR_EINVAL;
    if (!sr__json_is(x.args, x.args_len, '['))
        return sr__fail(err, SIGNALR_EINVAL, "the arguments are not a "
                        "JSON array");
    while (x.args_len && strchr(" \t\r\n", x.args[x.args_len - 1]))
        x.args_len--;
    while (x.args_len && strchr(" \t\r\n", x.args[0])) {
        x.args++;
        x.args_len--;
    }
    sr__buf_add_json_string(&tb, d->target, strlen(d->target));
    x.target_json = sr__buf_take(&tb, &x.target_json_len);
    if (!x.target_json)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    cw.len = 0;
    w_json_payload(&cw, x.target_json, x.target_json_len, x.args,
                   x.args_len);
    x.json_len = cw.len;
    x.mp = NULL;
    x.mp_len = 0;
    if (d->protocols & SIGNALR_SP_MESSAGEPACK) {
        /* transcoded once, copied into the frame */
        if (w_mp_invocation(&mw, d->target, x.args, x.args_len) || mw.oom) {
            free(x.target_json);
            free(mw.p);
            if (mw.oom)
                return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
            return sr__fail(err, SIGNALR_EINVAL, "the arguments cannot be "
                            "written as MessagePack");
        }
        x.mp = mw.p;
        x.mp_len = mw.len;
    }
    max = d->max_size ? d->max_size : SIGNALR_SP_DEFAULT_MAX;
    rc = frame(data_body_fn, &x, max, out, out_len, err);
    free(x.target_json);
    free(mw.p);
    return rc;
}

static void handshake_fn(spw *w, const void *ctx)
{
    w_array(w, 6);
    w_uint(w, SIGNALR_SP_HANDSHAKE_REQUEST);
    w_uint(w, 1);                         /* protocol version */
    w_uint(w, (uint64_t)*(const int *)ctx); /* connection type */
    w_str(w, "", 0);                      /* target */
    w_uint(w, 0);                         /* migration off */
    w_map(w, 0);
}

signalr_err signalr_sp_encode_handshake(int connection_type, char **out,
                                        size_t *out_len, signalr_error *err)
{
    sr__ok(err);
    if (!out || !out_len || connection_type < 0 || connection_type > 2)
        return sr__fail(err, SIGNALR_EINVAL, "bad connection type or output");
    return frame(handshake_fn, &connection_type, SIZE_MAX, out, out_len,
                 err);
}

typedef struct {
    const char *const *kv;
    size_t n;
} ping_ctx;

static void ping_fn(spw *w, const void *ctx)
{
    const ping_ctx *p = ctx;
    size_t i;

    w_array(w, 1 + p->n);
    w_uint(w, SIGNALR_SP_PING);
    for (i = 0; i < p->n; i++)
        w_strz(w, p->kv[i] ? p->kv[i] : "");
}

signalr_err signalr_sp_encode_ping(const char *const *kv, size_t n,
                                   char **out, size_t *out_len,
                                   signalr_error *err)
{
    ping_ctx p;

    sr__ok(err);
    if (!out || !out_len || (n && !kv) || n % 2)
        return sr__fail(err, SIGNALR_EINVAL, "a ping takes key/value pairs");
    p.kv = kv;
    p.n = n;
    return frame(ping_fn, &p, SIZE_MAX, out, out_len, err);
}

static void op_fn(spw *w, const void *ctx)
{
    const signalr_sp_op *o = ctx;

    switch (o->type) {
    case SIGNALR_SP_CLOSE_CONNECTION:
        w_array(w, 5);
        w_uint(w, (uint64_t)o->type);
        w_strz(w, o->id);
        w_strz(w, o->text ? o->text : "");
        w_map(w, 0); /* headers */
        w_map(w, 0);
        return;
    case SIGNALR_SP_CHECK_GROUP_EXISTENCE:
    case SIGNALR_SP_CHECK_CONNECTION_EXISTENCE:
    case SIGNALR_SP_CHECK_USER_EXISTENCE:
        w_array(w, 4);
        w_uint(w, (uint64_t)o->type);
        w_strz(w, o->id);
        w_uint(w, (uint64_t)o->ack_id);
        w_map(w, 0);
        return;
    case SIGNALR_SP_ACCESS_KEY_REQUEST:
        w_array(w, 4);
        w_uint(w, (uint64_t)o->type);
        w_strz(w, o->id);
        w_strz(w, o->group); /* the kid, or nil */
        w_map(w, 0);
        return;
    case SIGNALR_SP_CLOSE_CONNECTIONS:
        w_array(w, 5);
        w_uint(w, (uint64_t)o->type);
        w_strz(w, o->text ? o->text : "");
        w_uint(w, (uint64_t)o->ack_id);
        w_strings(w, o->list, o->count);
        w_map(w, 0);
        return;
    case SIGNALR_SP_CLOSE_USER_CONNECTIONS:
    case SIGNALR_SP_CLOSE_GROUP_CONNECTIONS:
        w_array(w, 6);
        w_uint(w, (uint64_t)o->type);
        w_strz(w, o->id);
        w_strz(w, o->text ? o->text : "");
        w_uint(w, (uint64_t)o->ack_id);
        w_strings(w, o->list, o->count);
        w_map(w, 0);
        return;
    default: /* 18, 19, 21, 26, 27: id, group (nil: all), ack */
        w_array(w, 5);
        w_uint(w, (uint64_t)o->type);
        w_strz(w, o->id);
        w_strz(w, o->group);
        w_uint(w, (uint64_t)o->ack_id);
        if (o->type == SIGNALR_SP_USER_JOIN_GROUP_WITH_ACK &&
            o->ttl != SIGNALR_TTL_NONE) {
            w_map(w, 1);
            w_uint(w, 2);
            w_int(w, o->ttl);
        } else {
            w_map(w, 0);
        }
        return;
    }
}

signalr_err signalr_sp_encode_op(const signalr_sp_op *o, char **out,
                                 size_t *out_len, signalr_error *err)
{
    size_t i;

    sr__ok(err);
    if (!o || !out || !out_len)
        return sr__fail(err, SIGNALR_EINVAL, "missing message or output");
    *out = NULL;
    *out_len = 0;
    switch (o->type) {
    case SIGNALR_SP_JOIN_GROUP_WITH_ACK:
    case SIGNALR_SP_USER_JOIN_GROUP_WITH_ACK:
    case SIGNALR_SP_CHECK_USER_IN_GROUP:
        if (!o->group)
            return sr__fail(err, SIGNALR_EINVAL, "the group name is "
                            "missing");
        /* fall through */
    case SIGNALR_SP_LEAVE_GROUP_WITH_ACK:
    case SIGNALR_SP_USER_LEAVE_GROUP_WITH_ACK:
    case SIGNALR_SP_CHECK_GROUP_EXISTENCE:
    case SIGNALR_SP_CHECK_CONNECTION_EXISTENCE:
    case SIGNALR_SP_CHECK_USER_EXISTENCE:
    case SIGNALR_SP_CLOSE_CONNECTION:
    case SIGNALR_SP_ACCESS_KEY_REQUEST:
    case SIGNALR_SP_CLOSE_USER_CONNECTIONS:
    case SIGNALR_SP_CLOSE_GROUP_CONNECTIONS:
        if (!o->id)
            return sr__fail(err, SIGNALR_EINVAL, "the %s is missing",
                            o->type == SIGNALR_SP_ACCESS_KEY_REQUEST
                            ? "token" : "id or group name");
        break;
    case SIGNALR_SP_CLOSE_CONNECTIONS:
        break;
    default:
        return sr__fail(err, SIGNALR_EINVAL, "message type %d is not an "
                        "operation", o->type);
    }
    if (o->count && !o->list)
        return sr__fail(err, SIGNALR_EINVAL, "the id list is missing");
    for (i = 0; i < o->count; i++)
        if (!o->list[i])
            return sr__fail(err, SIGNALR_EINVAL, "id %zu of the list is "
                            "missing", i + 1);
    if (o->ack_id < 0 || o->ack_id > 2147483647L)
        return sr__fail(err, SIGNALR_EINVAL, "the ack id must fit in "
                        "an int32");
    return frame(op_fn, o, SIZE_MAX, out, out_len, err);
}

/* ===== reading ===== */

typedef struct {
    const unsigned char *p;
    size_t n, i;
} spr;

static int r_need(spr *r, size_t k) { return r->n - r->i >= k; }

static uint64_t r_be(spr *r, int bytes)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < bytes; i++)
        v = (v << 8) | r->p[r->i++];
    return v;
}

/* The length of a str/bin/array/map header at r (consumed): kind is
 * 's' string, 'b' bin, 'a' array, 'm' map, 'n' nil; -1 when r holds
 * something else or too few bytes. */
static int r_len(spr *r, char kind, size_t *len)
{
    unsigned char c;
    int bytes = 0;

    if (!r_need(r, 1))
        return -1;
    c = r->p[r->i];
    if (kind == 's' && c >= 0xa0 && c <= 0xbf) {
        r->i++;
        *len = c & 0x1f;
        return 0;
    }
    if (kind == 'a' && c >= 0x90 && c <= 0x9f) {
        r->i++;
        *len = c & 0x0f;
        return 0;
    }
    if (kind == 'm' && c >= 0x80 && c <= 0x8f) {
        r->i++;
        *len = c & 0x0f;
        return 0;
    }
    switch (kind) {
    case 's': bytes = c == 0xd9 ? 1 : c == 0xda ? 2 : c == 0xdb ? 4 : 0; break;
    case 'b': bytes = c == 0xc4 ? 1 : c == 0xc5 ? 2 : c == 0xc6 ? 4 : 0; break;
    case 'a': bytes = c == 0xdc ? 2 : c == 0xdd ? 4 : 0; break;
    case 'm': bytes = c == 0xde ? 2 : c == 0xdf ? 4 : 0; break;
    default: break;
    }
    if (!bytes || !r_need(r, 1 + (size_t)bytes))
        return -1;
    r->i++;
    *len = (size_t)r_be(r, bytes);
    return 0;
}

/* An integer of any width into *v. */
static int r_int(spr *r, int64_t *v)
{
    unsigned char c;

    if (!r_need(r, 1))
        return -1;
    c = r->p[r->i];
    if (c <= 0x7f || c >= 0xe0) {
        r->i++;
        *v = c <= 0x7f ? c : (int64_t)(int8_t)c;
        return 0;
    }
    {
        static const int widths[] = { 1, 2, 4, 8 };
        int w, is_signed;
        uint64_t u;

        if (c >= 0xcc && c <= 0xcf) {
            w = widths[c - 0xcc];
            is_signed = 0;
        } else if (c >= 0xd0 && c <= 0xd3) {
            w = widths[c - 0xd0];
            is_signed = 1;
        } else {
            return -1;
        }
        if (!r_need(r, 1 + (size_t)w))
            return -1;
        r->i++;
        u = r_be(r, w);
        if (!is_signed) {
            if (u > INT64_MAX)
                return -1;
            *v = (int64_t)u;
        } else {
            switch (w) {
            case 1: *v = (int8_t)u; break;
            case 2: *v = (int16_t)u; break;
            case 4: *v = (int32_t)u; break;
            default: *v = (int64_t)u; break;
            }
        }
        return 0;
    }
}

/* A string, bin or nil: *s borrowed (NULL for nil). */
static int r_str(spr *r, const char **s, size_t *len)
{
    size_t n;

    if (r_need(r, 1) && r->p[r->i] == 0xc0) {
        r->i++;
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (r_len(r, 's', &n) && r_len(r, 'b', &n))
        return -1;
    if (!r_need(r, n))
        return -1;
    *s = (const char *)r->p + r->i;
    *len = n;
    r->i += n;
    return 0;
}

/* Pass over one value of any type. */
static int r_pass(spr *r, int depth)
{
    unsigned char c;
    size_t n, i, fixed = 0;
    int64_t dummy;
    const char *s;

    if (depth > 64 || !r_need(r, 1))
        return -1;
    c = r->p[r->i];
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
        return r_int(r, &dummy);
    if (c == 0xc0 || c == 0xc2 || c == 0xc3) {
        r->i++;
        return 0;
    }
    if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb) ||
        (c >= 0xc4 && c <= 0xc6))
        return r_str(r, &s, &n);
    if (c == 0xca || c == 0xcb) {
        fixed = c == 0xca ? 5 : 9;
    } else if (c >= 0xd4 && c <= 0xd8) { /* fixext 1..16 */
        static const size_t sz[] = { 1, 2, 4, 8, 16 };
        fixed = 2 + sz[c - 0xd4];
    } else if (c >= 0xc7 && c <= 0xc9) { /* ext 8/16/32 */
        int w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
        if (!r_need(r, 1 + (size_t)w))
            return -1;
        r->i++;
        n = (size_t)r_be(r, w);
        if (!r_need(r, 1) || r->n - r->i - 1 < n)
            return -1;
        r->i += 1 + n;
        return 0;
    }
    if (fixed) {
        if (!r_need(r, fixed))
            return -1;
        r->i += fixed;
        return 0;
    }
    if (!r_len(r, 'a', &n)) {
        for (i = 0; i < n; i++)
            if (r_pass(r, depth + 1))
                return -1;
        return 0;
    }
    if (!r_len(r, 'm', &n)) {
        for (i = 0; i < n; i++)
            if (r_pass(r, depth + 1) || r_pass(r, depth + 1))
                return -1;
        return 0;
    }
    return -1; /* 0xc1, never used */
}

static int r_field_str(spr *r, signalr_sp_message *m, int k)
{
    return r_str(r, &m->str[k], &m->len[k]);
}

static int r_field_int(spr *r, signalr_sp_message *m, int k)
{
    int64_t v;

    if (r_int(r, &v))
        return -1;
    m->num[k] = (long long)v;
    return 0;
}

/* Read the body of one message (the bytes of one frame). */
static int read_message(spr *r, signalr_sp_message *m)
{
    size_t items, i;
    int64_t type;

    if (r_len(r, 'a', &items) || items < 1 || r_int(r, &type))
        return -1;
    if (type < 0 || type > 0x7fffffff)
        return -1;
    m->type = (int)type;
    items--;
    switch (m->type) {
    case SIGNALR_SP_HANDSHAKE_RESPONSE: /* error, ext, connection id */
        if (items < 1 || r_field_str(r, m, 0))
            return -1;
        if (items >= 3 && (r_pass(r, 0) || r_field_str(r, m, 1)))
            return -1;
        return 0;
    case SIGNALR_SP_PING:
        for (i = 0; i < items; i++) {
            const char *s;
            size_t n;
            if (r_str(r, &s, &n))
                return -1;
            if (i < 2 * SIGNALR_SP_MAX_PING) {
                m->ping[i] = s;
                m->ping_len[i] = n;
                m->nping = i + 1;
            }
        }
        m->nping /= 2;
        return 0;
    case SIGNALR_SP_ACK: /* ack id, status, message */
        if (items < 3 || r_field_int(r, m, 0) || r_field_int(r, m, 1) ||
            r_field_str(r, m, 0))
            return -1;
        return 0;
    case SIGNALR_SP_SERVICE_ERROR:
        if (items < 1 || r_field_str(r, m, 0))
            return -1;
        return 0;
    case SIGNALR_SP_SERVICE_EVENT: /* object type, id, kind, message */
        if (items < 4 || r_field_int(r, m, 0) || r_field_str(r, m, 0) ||
            r_field_int(r, m, 1) || r_field_str(r, m, 1))
            return -1;
        return 0;
    case SIGNALR_SP_ACCESS_KEY_RESPONSE: /* kid, key, error type, message */
        if (items < 4 || r_field_str(r, m, 0) || r_field_str(r, m, 1) ||
            r_field_str(r, m, 2) || r_field_str(r, m, 3))
            return -1;
        return 0;
    case SIGNALR_SP_CLOSE_CONNECTION: /* connection id, error */
        if (items < 1 || r_field_str(r, m, 0))
            return -1;
        if (items >= 2 && r_field_str(r, m, 1))
            return -1;
        return 0;
    default:
        return 0; /* known to the service, not to a management connection */
    }
}

int signalr_sp_next(const char *buf, size_t len, size_t max,
                    signalr_sp_message *m, size_t *used, signalr_error *err)
{
    size_t n = 0, k = 0;
    int shift = 0;
    spr r;

    sr__ok(err);
    *used = 0;
    memset(m, 0, sizeof *m);
    for (;;) {
        unsigned char c;
        if (k == len)
            return 0; /* the prefix is not complete yet */
        if (k == 5)
            return sr__fail(err, SIGNALR_EREPLY, "a frame length of more "
                            "than 5 bytes"), -1;
        c = (unsigned char)buf[k++];
        n |= (size_t)(c & 0x7f) << shift;
        shift += 7;
        if (!(c & 0x80))
            break;
    }
    if (n > 0x7fffffffu || (max && n > max))
        return sr__fail(err, SIGNALR_ETOOBIG, "a frame of %zu bytes (the "
                        "limit is %zu)", n, max), -1;
    if (len - k < n)
        return 0;
    *used = k + n;
    r.p = (const unsigned char *)buf + k;
    r.n = n;
    r.i = 0;
    if (read_message(&r, m))
        return sr__fail(err, SIGNALR_EREPLY, "a malformed message of type "
                        "%d", m->type), -1;
    return 1;
}
