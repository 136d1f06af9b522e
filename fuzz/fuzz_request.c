/* fuzz_request.c - the request builder with arbitrary names, ids,
 * arguments and numbers, every operation, both route families: it builds
 * or refuses, and what it builds has an escaped path and no raw control
 * bytes in any header. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CS "Endpoint=http://localhost;Port=8888;AccessKey=" \
           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"

static int clean(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* fields separated by NUL bytes: hub, user, group, connection,
     * target, arguments, reason, excluded, continuation token, numbers */
    char *buf = malloc(size + 1), *f[10] = {0};
    const char *ex[1];
    size_t i, nf = 0;
    int v1;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    f[nf++] = buf;
    for (i = 0; i < size && nf < 10; i++)
        if (!buf[i])
            f[nf++] = buf + i + 1;
    for (v1 = 0; v1 < 2; v1++) {
        signalr_client_options o;
        signalr_client *c;
        signalr_error e;
        int op;

        memset(&o, 0, sizeof(o));
        o.api_version = v1 ? "v1" : "2024-12-01";
        o.application = nf > 9 && f[9][0] ? f[9] : NULL;
        if (signalr_client_new(CS, strlen(CS), &o, &c, &e))
            continue;
        for (op = 0; op < SIGNALR_OP_MAX; op++) {
            signalr_params p;
            signalr_request r;

            memset(&p, 0, sizeof(p));
            p.hub = f[0];
            p.user = f[1];
            p.group = f[2];
            p.connection = f[3];
            p.target = f[4];
            p.arguments = f[5];
            p.arguments_len = f[5] ? strlen(f[5]) : 0;
            p.reason = f[6];
            if (f[7]) {
                ex[0] = f[7];
                p.excluded = ex;
                p.excluded_count = 1;
            }
            p.continuation_token = f[8];
            p.ttl = size > 1 ? (long)(int8_t)data[size - 1] : SIGNALR_TTL_NONE;
            p.minutes_to_expire = size > 2 ? (int8_t)data[size - 2] : 0;
            p.top = size > 3 ? (int8_t)data[size - 3] : 0;
            p.max_page_size = size > 4 ? (uint8_t)data[size - 4] : 0;
            if (signalr_request_build(c, (signalr_op)op, &p, 1700000000, &r,
                                      &e))
                continue;
            if (!clean(r.path) || !clean(r.url) || !clean(r.authorization) ||
                strchr(r.path, ' ') ||
                (r.body && !sr__json_valid(r.body, r.body_len)))
                abort();
            signalr_request_clear(&r);
        }
        signalr_client_free(c);
    }
    free(buf);
    return 0;
}
