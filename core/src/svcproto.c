/* svcproto.c - the Azure SignalR service protocol of persistent mode
 * (server connections): frames are [varint length][MessagePack array].
 * Writes the messages a management ("Weak") connection sends, with the
 * hub-protocol payloads pre-serialized for JSON and MessagePack clients,
 * and reads the messages the service sends back.  The MessagePack itself
 * is mpack.c's; the arguments' transcoding json_mpack.c's. */
#include "mpack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ===== writing ===== */

static void w_strings(sr__mpw *w, const char *const *list, size_t n)
{
    size_t i;

    sr__mpw_array(w, n);
    for (i = 0; i < n; i++)
        sr__mpw_strz(w, list[i]);
}

/* ----- the hub payloads ----- */

static const char JSON_HEAD[] = "{\"type\":1,\"target\":";
static const char JSON_ARGS[] = ",\"arguments\":";

/* The JSON hub message: {"type":1,"target":...,"arguments":...} + 0x1E.
 * target_json NULL: the target (tlen bytes) needs no escape, only its
 * quotes. */
static void w_json_payload(sr__mpw *w, const char *target, const char *target_json,
                           size_t tlen, const char *args, size_t alen)
{
    sr__mpw_raw(w, JSON_HEAD, sizeof JSON_HEAD - 1);
    if (target_json) {
        sr__mpw_raw(w, target_json, tlen);
    } else {
        sr__mpw_byte(w, '"');
        sr__mpw_raw(w, target, tlen);
        sr__mpw_byte(w, '"');
    }
    sr__mpw_raw(w, JSON_ARGS, sizeof JSON_ARGS - 1);
    sr__mpw_raw(w, args, alen);
    sr__mpw_raw(w, "}\x1e", 2);
}

/* The MessagePack hub message without its varint prefix:
 * [1, {}, nil, target, arguments, []]; the arguments args[0..alen) are
 * JSON to transcode, or (mp) MessagePack already, copied as they are.
 * -1 when the JSON cannot be transcoded. */
static int w_mp_invocation(sr__mpw *w, const char *target, const char *args,
                           size_t alen, int mp)
{
    sr__mpw_raw(w, "\x96\x01\x80\xc0", 4);
    sr__mpw_strz(w, target);
    if (mp)
        sr__mpw_raw(w, args, alen);
    else if (sr__json_to_mp(w, args, alen, 0))
        return -1;
    sr__mpw_byte(w, 0x90);
    return 0;
}

/* Its length around arguments of alen bytes of MessagePack. */
static size_t w_mp_invocation_len(const char *target, size_t alen)
{
    size_t t = strlen(target);

    return 4 + sr__mp_str_head_len(t) + t + alen + 1;
}

/* Everything a data message needs, checked once. */
typedef struct {
    const signalr_sp_data *d;
    char *target_json;   /* the target as a JSON string literal (NULL:
                          * the target itself needs no escape) */
    size_t target_len;   /* target_json's length, else the target's */
    const char *args;
    size_t args_len;
    size_t json_len;         /* the JSON payload's size */
    unsigned char *mp;       /* the MessagePack payload, without prefix */
    size_t mp_len;
    const char *args_mp;     /* or: the arguments as MessagePack (the
                              * payload is written around them) */
} data_ctx;

static void w_payloads(sr__mpw *w, const data_ctx *x)
{
    int n = !!(x->d->protocols & SIGNALR_SP_JSON) +
            !!(x->d->protocols & SIGNALR_SP_MESSAGEPACK);

    sr__mpw_map(w, (size_t)n);
    if (x->d->protocols & SIGNALR_SP_JSON) {
        sr__mpw_str(w, "json", 4);
        sr__mpw_bin_head(w, x->json_len);
        w_json_payload(w, x->d->target, x->target_json, x->target_len,
                       x->args, x->args_len);
    }
    if (x->d->protocols & SIGNALR_SP_MESSAGEPACK) {
        sr__mpw_str(w, "messagepack", 11);
        sr__mpw_bin_head(w, sr__varint_len(x->mp_len) + x->mp_len);
        sr__mpw_varint(w, x->mp_len);
        if (x->args_mp)
            w_mp_invocation(w, x->d->target, x->args_mp,
                            x->d->arguments_mp_len, 1);
        else
            sr__mpw_raw(w, x->mp, x->mp_len);
    }
}

static void w_data_body(sr__mpw *w, const data_ctx *x)
{
    const signalr_sp_data *d = x->d;

    switch (d->type) {
    case SIGNALR_SP_GROUP_BROADCAST:
        sr__mpw_array(w, 7);
        sr__mpw_uint(w, (uint64_t)d->type);
        sr__mpw_strz(w, d->id);
        w_strings(w, d->list, d->count);
        w_payloads(w, x);
        sr__mpw_map(w, 0);
        sr__mpw_array(w, 0);  /* excluded users */
        sr__mpw_str(w, NULL, 0); /* caller user id */
        return;
    case SIGNALR_SP_USER_DATA:
        sr__mpw_array(w, 4);
        sr__mpw_uint(w, (uint64_t)d->type);
        sr__mpw_strz(w, d->id);
        break;
    default: /* 7, 9, 10, 14: a list first */
        sr__mpw_array(w, 4);
        sr__mpw_uint(w, (uint64_t)d->type);
        w_strings(w, d->list, d->count);
        break;
    }
    w_payloads(w, x);
    sr__mpw_map(w, 0);
}


static void data_body_fn(sr__mpw *w, const void *ctx)
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
    sr__mpw mw = { NULL, 0, 0, 1, 0 };
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
    if (!d->arguments || !d->arguments_checked) {
        if (sr__check_utf8("the arguments", x.args, x.args_len, err))
            return SIGNALR_EINVAL;
        if (!sr__json_is(x.args, x.args_len, '['))
            return sr__json_too_deep(x.args, x.args_len)
                       ? sr__fail(err, SIGNALR_EINVAL, "the arguments nest "
                                  "more than %d arrays and objects deep (the "
                                  "list itself is one)", SR__JSON_MAX_DEPTH)
                       : sr__fail(err, SIGNALR_EINVAL, "the arguments are "
                                  "not a JSON array");
        while (x.args_len && strchr(" \t\r\n", x.args[x.args_len - 1]))
            x.args_len--;
        while (x.args_len && strchr(" \t\r\n", x.args[0])) {
            x.args++;
            x.args_len--;
        }
    }
    x.target_len = strlen(d->target);
    x.target_json = NULL;
    for (i = 0; i < x.target_len; i++) {
        unsigned char ch = (unsigned char)d->target[i];

        if (ch < 0x20 || ch == '"' || ch == '\\')
            break;
    }
    if (i < x.target_len) {
        sr__buf_add_json_string(&tb, d->target, x.target_len);
        x.target_json = sr__buf_take(&tb, &x.target_len);
        if (!x.target_json)
            return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    /* the JSON payload's size, as w_json_payload writes it */
    x.json_len = sizeof JSON_HEAD - 1 + x.target_len + (x.target_json ? 0 : 2) +
                 sizeof JSON_ARGS - 1 + x.args_len + 2;
    x.mp = NULL;
    x.mp_len = 0;
    x.args_mp = NULL;
    if ((d->protocols & SIGNALR_SP_MESSAGEPACK) && d->arguments &&
        d->arguments_mp) {
        /* the caller's MessagePack, written straight into the frame */
        x.args_mp = d->arguments_mp;
        x.mp_len = w_mp_invocation_len(d->target, d->arguments_mp_len);
    } else if (d->protocols & SIGNALR_SP_MESSAGEPACK) {
        /* transcoded once, copied into the frame */
        if (w_mp_invocation(&mw, d->target, x.args, x.args_len, 0) || mw.oom) {
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
    rc = sr__mp_frame(data_body_fn, &x, max, out, out_len, err);
    free(x.target_json);
    free(mw.p);
    return rc;
}

static void handshake_fn(sr__mpw *w, const void *ctx)
{
    sr__mpw_array(w, 6);
    sr__mpw_uint(w, SIGNALR_SP_HANDSHAKE_REQUEST);
    sr__mpw_uint(w, 1);                         /* protocol version */
    sr__mpw_uint(w, (uint64_t)*(const int *)ctx); /* connection type */
    sr__mpw_str(w, "", 0);                      /* target */
    sr__mpw_uint(w, 0);                         /* migration off */
    sr__mpw_map(w, 0);
}

signalr_err signalr_sp_encode_handshake(int connection_type, char **out,
                                        size_t *out_len, signalr_error *err)
{
    sr__ok(err);
    if (!out || !out_len || connection_type < 0 || connection_type > 2)
        return sr__fail(err, SIGNALR_EINVAL, "bad connection type or output");
    return sr__mp_frame(handshake_fn, &connection_type, SIZE_MAX, out,
                        out_len, err);
}

typedef struct {
    const char *const *kv;
    size_t n;
} ping_ctx;

static void ping_fn(sr__mpw *w, const void *ctx)
{
    const ping_ctx *p = ctx;
    size_t i;

    sr__mpw_array(w, 1 + p->n);
    sr__mpw_uint(w, SIGNALR_SP_PING);
    for (i = 0; i < p->n; i++)
        sr__mpw_strz(w, p->kv[i] ? p->kv[i] : "");
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
    return sr__mp_frame(ping_fn, &p, SIZE_MAX, out, out_len, err);
}

static void op_fn(sr__mpw *w, const void *ctx)
{
    const signalr_sp_op *o = ctx;

    switch (o->type) {
    case SIGNALR_SP_CLOSE_CONNECTION:
        /* ServiceProtocol.cs writes ErrorMessage as it is, and
         * CloseConnectionMessage makes a null one "" */
        sr__mpw_array(w, 5);
        sr__mpw_uint(w, (uint64_t)o->type);
        sr__mpw_strz(w, o->id);
        sr__mpw_strz(w, o->text ? o->text : "");
        sr__mpw_map(w, 0); /* headers */
        sr__mpw_map(w, 0);
        return;
    case SIGNALR_SP_CHECK_GROUP_EXISTENCE:
    case SIGNALR_SP_CHECK_CONNECTION_EXISTENCE:
    case SIGNALR_SP_CHECK_USER_EXISTENCE:
        sr__mpw_array(w, 4);
        sr__mpw_uint(w, (uint64_t)o->type);
        sr__mpw_strz(w, o->id);
        sr__mpw_uint(w, (uint64_t)o->ack_id);
        sr__mpw_map(w, 0);
        return;
    case SIGNALR_SP_ACCESS_KEY_REQUEST:
        sr__mpw_array(w, 4);
        sr__mpw_uint(w, (uint64_t)o->type);
        sr__mpw_strz(w, o->id);
        sr__mpw_strz(w, o->group); /* the kid, or nil */
        sr__mpw_map(w, 0);
        return;
    /* 31-33: Reason as it is, nil when none is given (the official
     * writer's CloseWithAckMessage.Reason has no default) */
    case SIGNALR_SP_CLOSE_CONNECTIONS:
        sr__mpw_array(w, 5);
        sr__mpw_uint(w, (uint64_t)o->type);
        sr__mpw_strz(w, o->text);
        sr__mpw_uint(w, (uint64_t)o->ack_id);
        w_strings(w, o->list, o->count);
        sr__mpw_map(w, 0);
        return;
    case SIGNALR_SP_CLOSE_USER_CONNECTIONS:
    case SIGNALR_SP_CLOSE_GROUP_CONNECTIONS:
        sr__mpw_array(w, 6);
        sr__mpw_uint(w, (uint64_t)o->type);
        sr__mpw_strz(w, o->id);
        sr__mpw_strz(w, o->text);
        sr__mpw_uint(w, (uint64_t)o->ack_id);
        w_strings(w, o->list, o->count);
        sr__mpw_map(w, 0);
        return;
    default: /* 18, 19, 21, 26, 27: id, group (nil: all), ack */
        sr__mpw_array(w, 5);
        sr__mpw_uint(w, (uint64_t)o->type);
        sr__mpw_strz(w, o->id);
        sr__mpw_strz(w, o->group);
        sr__mpw_uint(w, (uint64_t)o->ack_id);
        if (o->type == SIGNALR_SP_USER_JOIN_GROUP_WITH_ACK &&
            o->ttl != SIGNALR_TTL_NONE) {
            sr__mpw_map(w, 1);
            sr__mpw_uint(w, 2);
            sr__mpw_int(w, o->ttl);
        } else {
            sr__mpw_map(w, 0);
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
    return sr__mp_frame(op_fn, o, SIZE_MAX, out, out_len, err);
}

/* ===== reading ===== */

static int r_field_str(sr__mpr *r, signalr_sp_message *m, int k)
{
    return sr__mpr_str(r, &m->str[k], &m->len[k]);
}

static int r_field_int(sr__mpr *r, signalr_sp_message *m, int k)
{
    int64_t v;

    if (sr__mpr_int(r, &v))
        return -1;
    m->num[k] = (long long)v;
    return 0;
}

/* A claims or headers map: its bytes in m->map[k], once every pair
 * reads. */
static int r_field_map(sr__mpr *r, signalr_sp_message *m, int k)
{
    signalr_sp_pairs it;
    const char *key, *val;
    size_t kl, vl;
    int got;

    signalr_sp_pairs_init(&it, (const char *)r->p + r->i, r->n - r->i);
    do
        got = signalr_sp_pairs_next(&it, &key, &kl, &val, &vl);
    while (got == 1);
    if (got < 0)
        return -1;
    m->map[k] = (const char *)r->p + r->i;
    m->map_len[k] = it.i;
    r->i += it.i;
    return 0;
}

/* The extension map: the members a hub server needs (3 Protocol of 4, 5
 * DataMessageType and 6 IsPartial of 6), typed as the service writes
 * them; any other member's value is passed over whatever it is (the
 * reference sheet's gotcha: old SDK readers did not). */
static int r_ext(sr__mpr *r, signalr_sp_message *m)
{
    size_t n, i;

    if (sr__mpr_len(r, 'm', &n))
        return -1;
    for (i = 0; i < n; i++) {
        int64_t key, v;
        int b;

        if (sr__mpr_int(r, &key))
            return -1;
        if (key == 3 && m->type == SIGNALR_SP_OPEN_CONNECTION) {
            if (r_field_str(r, m, 2))
                return -1;
        } else if (key == 5 && m->type == SIGNALR_SP_CONNECTION_DATA) {
            if (sr__mpr_int(r, &v) || v < INT32_MIN || v > INT32_MAX)
                return -1;
            m->num[0] = (long long)v;
        } else if (key == 6 && m->type == SIGNALR_SP_CONNECTION_DATA) {
            if (sr__mpr_bool(r, &b))
                return -1;
            m->num[1] = b;
        } else if (sr__mpr_pass(r, 0)) {
            return -1;
        }
    }
    return 0;
}

/* Read the body of one message (the bytes of one frame). */
static int read_message(sr__mpr *r, signalr_sp_message *m)
{
    size_t items, i;
    int64_t type;

    if (sr__mpr_len(r, 'a', &items) || items < 1 || sr__mpr_int(r, &type))
        return -1;
    if (type < 0 || type > 0x7fffffff)
        return -1;
    m->type = (int)type;
    items--;
    switch (m->type) {
    case SIGNALR_SP_HANDSHAKE_RESPONSE: /* error, ext, connection id */
        if (items < 1 || r_field_str(r, m, 0))
            return -1;
        if (items >= 3 && (sr__mpr_pass(r, 0) || r_field_str(r, m, 1)))
            return -1;
        return 0;
    case SIGNALR_SP_PING:
        for (i = 0; i < items; i++) {
            const char *s;
            size_t n;
            if (sr__mpr_str(r, &s, &n))
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
    case SIGNALR_SP_CLOSE_CONNECTION: /* id, error, headers, ext */
        if (items < 1 || r_field_str(r, m, 0))
            return -1;
        if (items >= 2 && r_field_str(r, m, 1))
            return -1;
        if (items >= 3 && r_field_map(r, m, 1))
            return -1;
        if (items >= 4 && r_ext(r, m))
            return -1;
        return 0;
    case SIGNALR_SP_OPEN_CONNECTION: /* id, claims, headers, query, ext */
        if (items < 2 || r_field_str(r, m, 0) || !m->str[0] ||
            r_field_map(r, m, 0))
            return -1;
        /* an older service wrote [4, id, claims] */
        if (items >= 4 && (r_field_map(r, m, 1) || r_field_str(r, m, 1)))
            return -1;
        if (items >= 5 && r_ext(r, m))
            return -1;
        return 0;
    case SIGNALR_SP_CONNECTION_DATA: /* id, payload, ext */
        if (items < 2 || r_field_str(r, m, 0) || !m->str[0] ||
            r_field_str(r, m, 1))
            return -1;
        if (items >= 3 && r_ext(r, m))
            return -1;
        return 0;
    case SIGNALR_SP_CONNECTION_RECONNECT: /* id, ext */
        if (items < 1 || r_field_str(r, m, 0) || !m->str[0])
            return -1;
        if (items >= 2 && r_ext(r, m))
            return -1;
        return 0;
    default:
        return 0; /* known to the service, not to a management connection */
    }
}

int signalr_sp_next(const char *buf, size_t len, size_t max,
                    signalr_sp_message *m, size_t *used, signalr_error *err)
{
    uint64_t n = 0;
    size_t k = 0;
    sr__mpr r;
    int got;

    sr__ok(err);
    *used = 0;
    memset(m, 0, sizeof *m);
    got = sr__varint_read((const unsigned char *)buf, len, &n, &k);
    if (got == 0)
        return 0; /* the prefix is not complete yet */
    if (got < 0)
        return sr__fail(err, SIGNALR_EREPLY, "a frame length of more "
                        "than 5 bytes"), -1;
    if (n > 0x7fffffffu || (max && n > max))
        return sr__fail(err, SIGNALR_ETOOBIG, "a frame of %llu bytes (the "
                        "limit is %zu)", (unsigned long long)n, max), -1;
    if (len - k < n)
        return 0;
    *used = k + (size_t)n;
    r.p = (const unsigned char *)buf + k;
    r.n = (size_t)n;
    r.i = 0;
    if (read_message(&r, m))
        return sr__fail(err, SIGNALR_EREPLY, "a malformed message of type "
                        "%d", m->type), -1;
    return 1;
}

void signalr_sp_pairs_init(signalr_sp_pairs *it, const char *map, size_t len)
{
    memset(it, 0, sizeof *it);
    it->p = map;
    it->n = map ? len : 0;
}

int signalr_sp_pairs_next(signalr_sp_pairs *it, const char **key,
                          size_t *klen, const char **val, size_t *vlen)
{
    sr__mpr r;
    const char *k;
    size_t kl, nv;

    r.p = (const unsigned char *)it->p;
    r.n = it->n;
    r.i = it->i;
    if (!it->p)
        return 0;
    /* the map's header before the first pair (it takes a byte at least) */
    if (r.i == 0 && sr__mpr_len(&r, 'm', &it->pairs))
        goto bad;
    for (;;) {
        if (it->values) { /* the next value of a header */
            it->values--;
            if (sr__mpr_str(&r, val, vlen))
                goto bad;
            *key = it->key;
            *klen = it->key_len;
            it->i = r.i;
            return 1;
        }
        if (!it->pairs) {
            it->i = r.i;
            return 0;
        }
        it->pairs--;
        if (sr__mpr_str(&r, &k, &kl) || !k)
            goto bad;
        if (r.i < r.n && ((r.p[r.i] >= 0x90 && r.p[r.i] <= 0x9f) ||
                          r.p[r.i] == 0xdc || r.p[r.i] == 0xdd)) {
            if (sr__mpr_len(&r, 'a', &nv))
                goto bad;
            if (nv) {
                it->values = nv;
                it->key = k;
                it->key_len = kl;
                continue;
            }
            *val = NULL; /* a header without a value */
            *vlen = 0;
        } else if (sr__mpr_str(&r, val, vlen)) {
            goto bad;
        }
        *key = k;
        *klen = kl;
        it->i = r.i;
        return 1;
    }
bad:
    it->pairs = it->values = 0;
    it->p = NULL;
    return -1;
}

typedef struct {
    const char *id;
    const char *payload;
    size_t len;
    int data_type;
} cdata_ctx;

static void cdata_fn(sr__mpw *w, const void *ctx)
{
    const cdata_ctx *c = ctx;

    sr__mpw_array(w, 4);
    sr__mpw_uint(w, SIGNALR_SP_CONNECTION_DATA);
    sr__mpw_strz(w, c->id);
    sr__mpw_bin_head(w, c->len);
    sr__mpw_raw(w, c->payload, c->len);
    if (c->data_type) {
        sr__mpw_map(w, 1);
        sr__mpw_uint(w, 5); /* DataMessageType */
        sr__mpw_uint(w, (uint64_t)c->data_type);
    } else {
        sr__mpw_map(w, 0);
    }
}

signalr_err signalr_sp_encode_connection_data(const char *connection_id,
                                              const char *payload,
                                              size_t len, int data_type,
                                              char **out, size_t *out_len,
                                              signalr_error *err)
{
    cdata_ctx c;

    sr__ok(err);
    if (!out || !out_len)
        return sr__fail(err, SIGNALR_EINVAL, "missing output");
    *out = NULL;
    *out_len = 0;
    if (!connection_id || !*connection_id)
        return sr__fail(err, SIGNALR_EINVAL, "the connection id is missing");
    if (!payload && len)
        return sr__fail(err, SIGNALR_EINVAL, "the payload is missing");
    if (data_type < 0)
        return sr__fail(err, SIGNALR_EINVAL, "a negative data type");
    c.id = connection_id;
    c.payload = payload;
    c.len = len;
    c.data_type = data_type;
    /* the varint prefix says at most 2^31 - 1 */
    return sr__mp_frame(cdata_fn, &c, 0x7fffffff, out, out_len, err);
}
