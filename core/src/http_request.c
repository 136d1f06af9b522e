/* http_request.c - requests that are not SignalR operations (identity
 * endpoints and the like): method, absolute URL, headers and body checked
 * and split the way transports send them. */
#include "internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

signalr_err signalr_request_http(const char *method, const char *url,
                                 const char *const *headers, size_t nheaders,
                                 const char *body, size_t body_len,
                                 const char *content_type,
                                 signalr_request *r, signalr_error *err)
{
    static const char *const METHODS[] = {"GET", "POST", "PUT", "DELETE",
                                          "HEAD"};
    const char *h, *p, *end;
    sr__buf b = {0};
    size_t i, hn;
    long port = -1;
    int literal = 0; /* [IPv6] */

    memset(r, 0, sizeof(*r));
    sr__ok(err);
    for (i = 0; method && i < sizeof(METHODS) / sizeof(*METHODS); i++)
        if (!strcmp(method, METHODS[i]))
            r->method = METHODS[i];
    if (!r->method)
        return sr__fail(err, SIGNALR_EINVAL,
                        "method must be GET, POST, PUT, DELETE or HEAD");
    if (!url)
        return sr__fail(err, SIGNALR_EINVAL, "url is missing");
    r->tls = !strncmp(url, "https://", 8);
    if (!r->tls && strncmp(url, "http://", 7))
        return sr__fail(err, SIGNALR_EINVAL,
                        "url must be an absolute http or https URL");
    h = url + (r->tls ? 8 : 7);
    for (p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
            *p == '#')
            return sr__fail(err, SIGNALR_EINVAL,
                            "url must not contain spaces, control bytes, "
                            "non-ASCII bytes or a fragment");
    end = h + strcspn(h, "/?");
    if (memchr(h, '@', (size_t)(end - h)))
        return sr__fail(err, SIGNALR_EINVAL, "url must not carry user info");
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));

        if (!close || close == h + 1)
            return sr__fail(err, SIGNALR_EINVAL, "url has a malformed host");
        hn = (size_t)(close - h - 1);
        p = close + 1;
        h++;
        literal = 1;
    } else {
        p = memchr(h, ':', (size_t)(end - h));
        if (!p)
            p = end;
        hn = (size_t)(p - h);
    }
    if (!hn)
        return sr__fail(err, SIGNALR_EINVAL, "url has no host");
    /* RFC 3986: an IP literal of hex digits, ':' and '.', or a reg-name
     * of unreserved characters (names, IPv4 addresses) */
    for (i = 0; i < hn; i++) {
        int ch = (unsigned char)h[i];

        if (literal ? !(isxdigit(ch) || ch == ':' || ch == '.')
                         : !(isalnum(ch) || ch == '-' || ch == '.' ||
                             ch == '_' || ch == '~'))
            return sr__fail(err, SIGNALR_EINVAL,
                            "url has a malformed host");
    }
    if (p < end) {
        if (*p != ':' || p + 1 == end)
            return sr__fail(err, SIGNALR_EINVAL, "url has a malformed port");
        for (port = 0, p++; p < end && port <= 65535; p++) {
            if (!isdigit((unsigned char)*p))
                return sr__fail(err, SIGNALR_EINVAL,
                                "url has a malformed port");
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return sr__fail(err, SIGNALR_EINVAL,
                            "url port must be 1-65535");
    }
    for (i = 0; i < nheaders; i++) {
        const char *name = headers[2 * i], *value = headers[2 * i + 1];

        if (!name || !*name || !value)
            return sr__fail(err, SIGNALR_EINVAL, "header %lu is incomplete",
                            (unsigned long)i + 1);
        for (p = name; *p; p++)
            if (!is_tchar((unsigned char)*p))
                return sr__fail(err, SIGNALR_EINVAL,
                                "header name '%.40s' is not an HTTP token",
                                name);
        for (p = value; *p; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                return sr__fail(err, SIGNALR_EINVAL,
                                "header '%.40s' has a control character in "
                                "its value", name);
    }
    if (content_type && strpbrk(content_type, "\r\n"))
        return sr__fail(err, SIGNALR_EINVAL,
                        "content type contains a line break");
    r->op = SIGNALR_OP_MAX;
    r->idempotent = 1;
    r->port = port > 0 ? (int)port : (r->tls ? 443 : 80);
    r->user_agent = "lua-signalr/" SIGNALR_VERSION;
    r->host = sr__strndup(h, hn);
    r->url = sr__strdup(url);
    r->path = sr__strdup(*end ? end : "/");
    if (r->path && r->path[0] == '?') { /* "http://h?x" asks for "/?x" */
        sr__buf_adds(&b, "/");
        sr__buf_adds(&b, r->path);
        free(r->path);
        r->path = sr__buf_take(&b, NULL);
    }
    for (i = 0; i < nheaders; i++) {
        sr__buf_adds(&b, headers[2 * i]);
        sr__buf_add(&b, ": ", 2);
        sr__buf_adds(&b, headers[2 * i + 1]);
        sr__buf_add(&b, "\r\n", 2);
    }
    if (nheaders)
        r->headers = sr__buf_take(&b, NULL);
    if (body) {
        r->body = sr__strndup(body, body_len);
        r->body_len = body_len;
        r->content_type = content_type ? content_type
                                       : "application/octet-stream";
    }
    if (!r->host || !r->url || !r->path || (nheaders && !r->headers) ||
        (body && !r->body)) {
        sr__buf_free(&b);
        signalr_request_clear(r);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    return SIGNALR_OK;
}
