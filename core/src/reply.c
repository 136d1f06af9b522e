/* reply.c - turn an HTTP reply into an operation's result. */
#include "ops.h"

#include <stdio.h>
#include <string.h>

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "Bad Request (the service rejected an argument)";
    case 401: return "Unauthorized (check the AccessKey of the connection "
                     "string and that the token's audience matches)";
    case 403: return "Forbidden (the credentials lack permission)";
    case 404: return "Not Found (check the endpoint, hub and ids)";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large (the service accepts 1 MB)";
    case 429: return "Too Many Requests (quota or rate limit reached)";
    case 431: return "Request Header Fields Too Large (16 KB at most)";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: break;
    }
    if (status >= 500)
        return "server error";
    if (status >= 400)
        return "client error";
    return "unexpected status";
}

/* Copy a JSON string value (quotes included in v) into dst, undoing the
 * simple escapes; \u sequences are kept as written. */
static void copy_json_string(char *dst, size_t cap, const char *v, size_t n)
{
    size_t i, o = 0;

    for (i = 1; i + 1 < n && o + 1 < cap; i++) {
        char ch = v[i];

        if (ch == '\\' && i + 2 < n) {
            ch = v[++i];
            if (ch == 'n' || ch == 'r' || ch == 't')
                ch = ' ';
            else if (ch == 'u')
                ch = '?', i += 4;
        }
        dst[o++] = ch;
    }
    dst[o] = '\0';
}

/* The service's own words: ErrorDetail.message, else the body's text. */
static void service_message(const signalr_reply *r, char *dst, size_t cap,
                            char *code, size_t codecap)
{
    const char *v;
    size_t i, n, vl;

    dst[0] = '\0';
    if (!r->body || !r->body_len)
        return;
    if (sr__json_is(r->body, r->body_len, '{')) {
        if (!code[0] && sr__json_member(r->body, r->body_len, "code", &v,
                                        &vl) && v[0] == '"')
            copy_json_string(code, codecap, v, vl);
        if (sr__json_member(r->body, r->body_len, "message", &v, &vl) &&
            v[0] == '"') {
            copy_json_string(dst, cap, v, vl);
            return;
        }
    }
    n = r->body_len < cap - 1 ? r->body_len : cap - 1;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)r->body[i];

        dst[i] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
    }
    dst[n] = '\0';
    while (n && dst[n - 1] == ' ')
        dst[--n] = '\0';
}

/* ASCII case-insensitive equality: the service SDK compares
 * x-ms-error-code values with StringComparison.OrdinalIgnoreCase. */
static int same_code(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;

        if (x >= 'A' && x <= 'Z')
            x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z')
            y += 'a' - 'A';
        if (x != y)
            return 0;
    }
    return *a == *b;
}

signalr_err signalr_reply_read(signalr_op op, const signalr_reply *r,
                               int *value, signalr_error *err)
{
    const sr__op_row *row = sr__op(op);
    const char *code = r->error_code && r->error_code[0] ? r->error_code
                                                         : NULL;
    char said[256], scode[sizeof(err->service_code)];

    *value = 0;
    sr__ok(err);
    if (!row)
        return sr__fail(err, SIGNALR_EINVAL, "unknown operation");
    if (r->status >= 200 && r->status <= 299) {
        *value = 1;
        return SIGNALR_OK;
    }
    /* 404 answers a check (and "already gone" for close) only when the
     * service names that reason in x-ms-error-code, as the service SDK
     * decides (RestHubLifetimeManager.FilterExpectedResponse): a bare 404
     * comes from a wrong endpoint or a proxy, and is an error. */
    if (r->status == 404 && row->notfound_code && code &&
        same_code(code, row->notfound_code)) {
        *value = (row->flags & F_CHECK) ? 0 : 1;
        return SIGNALR_OK;
    }
    snprintf(scode, sizeof(scode), "%s", code ? code : "");
    service_message(r, said, sizeof(said), scode, sizeof(scode));
    sr__fail(err, SIGNALR_ESTATUS, "HTTP %d %s%s%s", r->status,
             status_text(r->status), said[0] ? ": " : "", said);
    if (err) {
        err->sent = 1;
        err->status = r->status;
        memcpy(err->service_code, scode, sizeof(scode));
    }
    return SIGNALR_ESTATUS;
}
