/* connstr.c - Azure SignalR connection strings, parsed by the rules of the
 * service SDK's ConnectionStringParser (see the REST reference, 3.5).
 *
 * Caveats: unknown keys are ignored like the SDK does.  Entra ID modes
 * (AuthType=azure, azure.msi, azure.app, aad) keep ClientId, TenantId,
 * ClientSecret and ClientCert (or ClientCertPath, the documented spelling);
 * acquiring tokens with them is the Lua layer's job (signalr.auth). */
#include "internal.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct signalr_connstr {
    char *endpoint;        /* scheme://host[:port] */
    char *client_endpoint; /* NULL: endpoint */
    char *server_endpoint; /* NULL: endpoint */
    char *audience_base;   /* scheme://host */
    char *version;
    char *auth_type;       /* lower-cased, "" for access keys */
    char *key;             /* NULL for Entra ID */
    size_t keylen;
    char *client_id, *tenant_id, *client_cert; /* Entra ID, NULL: absent */
    char *secret;          /* ClientSecret, NULL: absent */
    size_t secretlen;
};

enum { K_ENDPOINT, K_ACCESSKEY, K_VERSION, K_PORT, K_CLIENTENDPOINT,
       K_SERVERENDPOINT, K_AUTHTYPE, K_CLIENTID, K_TENANTID,
       K_CLIENTSECRET, K_CLIENTCERT, K_CLIENTCERTPATH, K_COUNT };

static const char *const KEYS[K_COUNT] = {
    "Endpoint", "AccessKey", "Version", "Port", "ClientEndpoint",
    "ServerEndpoint", "AuthType", "ClientId", "TenantId", "ClientSecret",
    "ClientCert", "ClientCertPath"
};

typedef struct {
    const char *s;
    size_t n;
} span;

static span trim(const char *s, size_t n)
{
    span r;

    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    r.s = s;
    r.n = n;
    return r;
}

static int ieq(span a, const char *b)
{
    size_t i, n = strlen(b);

    if (a.n != n)
        return 0;
    for (i = 0; i < n; i++)
        if (tolower((unsigned char)a.s[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Split an absolute http(s) URL into scheme, host (with brackets for IPv6)
 * and port (-1 when absent).  Path must be empty or "/"s (trimmed). */
typedef struct {
    int https;
    span host;
    long port;
} url_parts;

static int split_url(span v, url_parts *u)
{
    const char *p, *end = v.s + v.n, *h;
    size_t rest;

    while (end > v.s && end[-1] == '/')
        end--;
    if (v.n >= 8 && !strncmp(v.s, "https://", 8)) {
        u->https = 1;
        p = v.s + 8;
    } else if (v.n >= 7 && !strncmp(v.s, "http://", 7)) {
        u->https = 0;
        p = v.s + 7;
    } else {
        return 0;
    }
    if (p >= end)
        return 0;
    h = p;
    /* RFC 3986 host: an IP literal of hex digits, ':' and '.' in brackets,
     * or a reg-name of unreserved characters (a name, an IPv4 address).
     * Anything else would only fail later, at send time. */
    if (*p == '[') {
        for (p++; p < end && *p != ']'; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return 0;
        if (p == end || p == h + 1)
            return 0;
        p++;
    } else {
        while (p < end && (isalnum((unsigned char)*p) || *p == '-' ||
                           *p == '.' || *p == '_' || *p == '~'))
            p++;
    }
    u->host.s = h;
    u->host.n = (size_t)(p - h);
    if (!u->host.n)
        return 0;
    u->port = -1;
    if (p < end && *p == ':') {
        long port = 0;

        p++;
        if (p == end || !isdigit((unsigned char)*p))
            return 0;
        while (p < end && isdigit((unsigned char)*p) && port <= 65535)
            port = port * 10 + (*p++ - '0');
        if (port < 1 || port > 65535)
            return 0;
        u->port = port;
    }
    rest = (size_t)(end - p);
    /* A path would be silently dropped by every request: reject it. */
    if (rest)
        return 0;
    for (h = u->host.s; h < u->host.s + u->host.n; h++)
        if (isspace((unsigned char)*h) || *h == '%')
            return 0;
    return 1;
}

static char *make_endpoint(const url_parts *u, long port)
{
    sr__buf b = {0};

    sr__buf_adds(&b, u->https ? "https://" : "http://");
    sr__buf_add(&b, u->host.s, u->host.n);
    if (port > 0)
        sr__buf_addf(&b, ":%ld", port);
    return sr__buf_take(&b, NULL);
}

static int version_ok(span v)
{
    size_t i;

    /* ^1\.\d+(?:[\w-.]+)?$ */
    if (v.n < 3 || v.s[0] != '1' || v.s[1] != '.' ||
        !isdigit((unsigned char)v.s[2]))
        return 0;
    for (i = 3; i < v.n; i++)
        if (!isalnum((unsigned char)v.s[i]) && v.s[i] != '_' &&
            v.s[i] != '-' && v.s[i] != '.')
            return 0;
    return 1;
}

void signalr_connstr_free(signalr_connstr *cs)
{
    if (!cs)
        return;
    free(cs->endpoint);
    free(cs->client_endpoint);
    free(cs->server_endpoint);
    free(cs->audience_base);
    free(cs->version);
    free(cs->auth_type);
    if (cs->key) {
        OPENSSL_cleanse(cs->key, cs->keylen);
        free(cs->key);
    }
    if (cs->secret) {
        OPENSSL_cleanse(cs->secret, cs->secretlen);
        free(cs->secret);
    }
    free(cs->client_id);
    free(cs->tenant_id);
    free(cs->client_cert);
    free(cs);
}

static signalr_err parse_parts(const char *s, size_t len, span vals[K_COUNT],
                               signalr_error *err)
{
    const char *p = s, *end = s + len;
    int parts = 0;

    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        const char *eq;
        span key;
        int k;

        if (stop > p)
            parts++;
        eq = memchr(p, '=', (size_t)(stop - p));
        if (eq) {
            key = trim(p, (size_t)(eq - p));
            for (k = 0; k < K_COUNT; k++) {
                if (!ieq(key, KEYS[k]))
                    continue;
                if (vals[k].s)
                    return sr__fail(err, SIGNALR_ECONNSTR,
                                    "duplicate key '%s'", KEYS[k]);
                vals[k] = trim(eq + 1, (size_t)(stop - eq - 1));
                /* Mark "present but empty" with a non-NULL pointer. */
                break;
            }
        }
        p = semi ? semi + 1 : end;
    }
    if (parts < 2 || !vals[K_ENDPOINT].s)
        return sr__fail(err, SIGNALR_ECONNSTR,
                        "missing required key 'Endpoint'");
    return SIGNALR_OK;
}

/* Copy the Entra ID keys that are present and not empty; 0 on OOM. */
static int keep_entra(signalr_connstr *cs, const span vals[K_COUNT])
{
    const span *id = &vals[K_CLIENTID], *t = &vals[K_TENANTID],
               *sec = &vals[K_CLIENTSECRET], *cert = &vals[K_CLIENTCERT];

    if (id->n && !(cs->client_id = sr__strndup(id->s, id->n)))
        return 0;
    if (t->n && !(cs->tenant_id = sr__strndup(t->s, t->n)))
        return 0;
    if (cert->n && !(cs->client_cert = sr__strndup(cert->s, cert->n)))
        return 0;
    if (sec->n) {
        if (!(cs->secret = sr__strndup(sec->s, sec->n)))
            return 0;
        cs->secretlen = sec->n;
    }
    return 1;
}

signalr_err signalr_connstr_parse(const char *s, size_t len,
                                  signalr_connstr **out, signalr_error *err)
{
    span vals[K_COUNT];
    url_parts ep, cep, sep;
    signalr_connstr *cs;
    signalr_err rc;
    long port = -1;
    int k;

    *out = NULL;
    sr__ok(err);
    if (!s)
        return sr__fail(err, SIGNALR_ECONNSTR, "connection string is NULL");
    if (memchr(s, '\0', len))
        return sr__fail(err, SIGNALR_ECONNSTR,
                        "connection string contains a NUL byte");
    for (k = 0; k < K_COUNT; k++) {
        vals[k].s = NULL;
        vals[k].n = 0;
    }
    rc = parse_parts(s, len, vals, err);
    if (rc)
        return rc;
    if (!split_url(vals[K_ENDPOINT], &ep))
        return sr__fail(err, SIGNALR_ECONNSTR,
                        "invalid value for 'Endpoint': it must be an "
                        "absolute http or https URL without a path");
    if (vals[K_PORT].s) {
        span v = vals[K_PORT];
        size_t i;

        port = 0;
        for (i = 0; i < v.n && port <= 65535; i++) {
            if (!isdigit((unsigned char)v.s[i])) {
                port = -1;
                break;
            }
            port = port * 10 + (v.s[i] - '0');
        }
        if (!v.n || port < 1 || port > 65535)
            return sr__fail(err, SIGNALR_ECONNSTR,
                            "invalid value for 'Port': it must be an "
                            "integer from 1 to 65535");
    }
    if (vals[K_VERSION].s && !version_ok(vals[K_VERSION])) {
        span v = vals[K_VERSION];
        size_t i, plain = v.n <= 16;

        /* Echo the value only when it is plainly a version: with a ';'
         * missing it runs into the next part, which may be the key. */
        for (i = 0; plain && i < v.n; i++)
            plain = isalnum((unsigned char)v.s[i]) || strchr("._-", v.s[i]);
        if (!plain)
            return sr__fail(err, SIGNALR_ECONNSTR,
                            "unsupported 'Version' (value not shown: it is "
                            "not a version number; is a ';' missing after "
                            "it?): only 1.x is supported");
        return sr__fail(err, SIGNALR_ECONNSTR,
                        "unsupported 'Version' %.*s: only 1.x is supported",
                        (int)v.n, v.s);
    }
    if (vals[K_CLIENTENDPOINT].s && !split_url(vals[K_CLIENTENDPOINT], &cep))
        return sr__fail(err, SIGNALR_ECONNSTR,
                        "invalid value for 'ClientEndpoint': it must be an "
                        "absolute http or https URL without a path");
    if (vals[K_SERVERENDPOINT].s && !split_url(vals[K_SERVERENDPOINT], &sep))
        return sr__fail(err, SIGNALR_ECONNSTR,
                        "invalid value for 'ServerEndpoint': it must be an "
                        "absolute http or https URL without a path");

    cs = calloc(1, sizeof(*cs));
    if (!cs)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    if (vals[K_AUTHTYPE].s && vals[K_AUTHTYPE].n) {
        span a = vals[K_AUTHTYPE];

        if (ieq(a, "aad") || ieq(a, "azure") || ieq(a, "azure.msi") ||
            ieq(a, "azure.app")) {
            size_t i;

            cs->auth_type = sr__strndup(a.s, a.n);
            for (i = 0; cs->auth_type && i < a.n; i++)
                cs->auth_type[i] = (char)tolower((unsigned char)a.s[i]);
            if (vals[K_CLIENTCERT].s && vals[K_CLIENTCERTPATH].s) {
                signalr_connstr_free(cs);
                return sr__fail(err, SIGNALR_ECONNSTR,
                                "give 'ClientCert' or 'ClientCertPath', "
                                "not both");
            }
            if (!vals[K_CLIENTCERT].s)
                vals[K_CLIENTCERT] = vals[K_CLIENTCERTPATH];
            if (ieq(a, "azure.app") && cs->auth_type) {
                const char *miss = !vals[K_CLIENTID].n ? "ClientId"
                                 : !vals[K_TENANTID].n ? "TenantId"
                                 : (!vals[K_CLIENTSECRET].n &&
                                    !vals[K_CLIENTCERT].n)
                                       ? "ClientSecret' or 'ClientCert"
                                       : NULL;
                if (miss) {
                    signalr_connstr_free(cs);
                    return sr__fail(err, SIGNALR_ECONNSTR,
                                    "missing required key '%s' for "
                                    "AuthType=azure.app", miss);
                }
            }
        }
    }
    if (cs->auth_type && !keep_entra(cs, vals)) {
        signalr_connstr_free(cs);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    if (!cs->auth_type) {
        cs->auth_type = sr__strdup("");
        if (!vals[K_ACCESSKEY].s) {
            signalr_connstr_free(cs);
            return sr__fail(err, SIGNALR_ECONNSTR,
                            "missing required key 'AccessKey'");
        }
        if (!vals[K_ACCESSKEY].n) {
            signalr_connstr_free(cs);
            return sr__fail(err, SIGNALR_ECONNSTR,
                            "key 'AccessKey' is empty");
        }
        cs->key = sr__strndup(vals[K_ACCESSKEY].s, vals[K_ACCESSKEY].n);
        cs->keylen = vals[K_ACCESSKEY].n;
    }
    cs->endpoint = make_endpoint(&ep, port > 0 ? port : ep.port);
    {
        url_parts base = ep;
        cs->audience_base = make_endpoint(&base, -1);
    }
    if (vals[K_CLIENTENDPOINT].s)
        cs->client_endpoint = make_endpoint(&cep, cep.port);
    if (vals[K_SERVERENDPOINT].s)
        cs->server_endpoint = make_endpoint(&sep, sep.port);
    cs->version = vals[K_VERSION].s
                      ? sr__strndup(vals[K_VERSION].s, vals[K_VERSION].n)
                      : sr__strdup("1.0");
    if (!cs->endpoint || !cs->audience_base || !cs->version ||
        !cs->auth_type || (!cs->key && !cs->auth_type[0]) ||
        (vals[K_CLIENTENDPOINT].s && !cs->client_endpoint) ||
        (vals[K_SERVERENDPOINT].s && !cs->server_endpoint)) {
        signalr_connstr_free(cs);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    *out = cs;
    return SIGNALR_OK;
}

const char *signalr_connstr_endpoint(const signalr_connstr *cs)
{
    return cs->endpoint;
}

const char *signalr_connstr_client_endpoint(const signalr_connstr *cs)
{
    return cs->client_endpoint ? cs->client_endpoint : cs->endpoint;
}

const char *signalr_connstr_server_endpoint(const signalr_connstr *cs)
{
    return cs->server_endpoint ? cs->server_endpoint : cs->endpoint;
}

const char *signalr_connstr_audience_base(const signalr_connstr *cs)
{
    return cs->audience_base;
}

const char *signalr_connstr_version(const signalr_connstr *cs)
{
    return cs->version;
}

const char *signalr_connstr_auth_type(const signalr_connstr *cs)
{
    return cs->auth_type;
}

int signalr_connstr_has_key(const signalr_connstr *cs)
{
    return cs->key != NULL;
}

const char *signalr_connstr_client_id(const signalr_connstr *cs)
{
    return cs->client_id;
}

const char *signalr_connstr_tenant_id(const signalr_connstr *cs)
{
    return cs->tenant_id;
}

const char *signalr_connstr_client_cert(const signalr_connstr *cs)
{
    return cs->client_cert;
}

const char *signalr_connstr_client_secret(const signalr_connstr *cs,
                                          size_t *len)
{
    if (len)
        *len = cs->secretlen;
    return cs->secret;
}

const char *sr__connstr_key(const signalr_connstr *cs, size_t *len)
{
    *len = cs->keylen;
    return cs->key;
}
