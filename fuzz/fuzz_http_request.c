/* fuzz_http_request.c - signalr_request_http() on arbitrary URLs, header
 * pairs and bodies.  Invariants: a built request has a host without
 * brackets, a port 1-65535, a path starting with '/', and no CR or LF
 * outside the header lines' own terminators. */
#include "signalr.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the input: url \0 name \0 value \0 body */
    char *buf = malloc(size + 4), *parts[4];
    const char *hdrs[2];
    signalr_request r;
    signalr_error e;
    size_t i, k = 0, at = 0;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    memset(buf + size, 0, 4);
    for (i = 0; i < 4; i++) {
        parts[i] = buf + at;
        at += strlen(buf + at) + 1;
        if (at > size + 3)
            at = size + 3;
    }
    hdrs[0] = parts[1];
    hdrs[1] = parts[2];
    if (!signalr_request_http(size % 2 ? "POST" : "GET", parts[0], hdrs,
                              parts[1][0] ? 1 : 0, parts[3], strlen(parts[3]),
                              NULL, &r, &e)) {
        assert(r.host && r.host[0] && !strpbrk(r.host, "[]"));
        assert(r.port >= 1 && r.port <= 65535);
        assert(r.path && r.path[0] == '/');
        assert(!strpbrk(r.path, "\r\n") && !strpbrk(r.url, "\r\n"));
        if (r.headers) {
            const char *p = r.headers;

            /* exactly one line, ending in CRLF */
            assert(strlen(p) >= 2 && !strcmp(p + strlen(p) - 2, "\r\n"));
            assert(strcspn(p, "\r\n") == strlen(p) - 2);
            k++;
        }
        signalr_request_clear(&r);
    } else {
        assert(e.code == SIGNALR_EINVAL && e.msg[0]);
    }
    (void)k;
    free(buf);
    return 0;
}
