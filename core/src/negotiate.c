/* negotiate.c - what clients and server connections connect with: the
 * client URL and access token of negotiate, the server connection's URL
 * and token. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Claim types the service reserves (Azure/azure-signalr
 * ClaimsUtility.BuildJwtClaims, SystemClaims): a custom claim of one of
 * these types is sent as "asrs.u.<type>", so the service reads it as the
 * user's claim instead of its own. */
static const char *const SYSTEM_CLAIMS[] = {
    "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash",
    "jti", "nonce"
};
/* Set by negotiate itself when a user id is given. */
static const char *const USER_CLAIMS[] = {"nameid", "asrs.s.uid"};

static int key_is(const char *k, size_t kl, const char *name)
{
    return kl == strlen(name) && !memcmp(k, name, kl);
}

/* Append the custom claims (a JSON object's text) to b as members, each
 * preceded by a comma: system claim types renamed to asrs.u.<type>; of
 * all "sub" values (repeated members, or the elements of an array value)
 * the first stays "sub" and the others become "asrs.u.sub" (a string, or
 * an array when several), as the service SDK does. */
/* Set by negotiate itself from its flags (the service SDK's
 * ClaimsUtility.BuildJwtClaims writes them so: "true" and "True"). */
static const struct {
    unsigned flag;
    const char *claim, *value, *option;
} FLAG_CLAIMS[] = {
    {SIGNALR_NEGOTIATE_DIAGNOSTIC, "asrs.s.dc", "true", "diagnostic"},
    {SIGNALR_NEGOTIATE_DETAILED_ERRORS, "asrs.s.derror", "True",
     "detailed_errors"},
};
#define NFLAGS (sizeof(FLAG_CLAIMS) / sizeof(*FLAG_CLAIMS))

static signalr_err add_custom_claims(sr__buf *b, const char *obj, size_t len,
                                     int has_user, unsigned flags,
                                     signalr_error *err)
{
    sr__buf subs = {0};
    size_t pos = 0, kl, vl, i, nsub = 0;
    const char *k, *v;

    while (sr__json_next(obj, len, &pos, &k, &kl, &v, &vl)) {
        int renamed = 0;

        for (i = 0; has_user && i < 2; i++)
            if (key_is(k, kl, USER_CLAIMS[i])) {
                sr__buf_free(&subs);
                return sr__fail(err, SIGNALR_EINVAL,
                                "claim '%s' is set by negotiate from "
                                "user_id", USER_CLAIMS[i]);
            }
        for (i = 0; i < NFLAGS; i++)
            if ((flags & FLAG_CLAIMS[i].flag) &&
                key_is(k, kl, FLAG_CLAIMS[i].claim)) {
                sr__buf_free(&subs);
                return sr__fail(err, SIGNALR_EINVAL,
                                "claim '%s' is set by negotiate from %s",
                                FLAG_CLAIMS[i].claim, FLAG_CLAIMS[i].option);
            }
        if (key_is(k, kl, "sub")) {
            size_t ep = 0, el = vl;
            const char *e = v;
            int more = v[0] == '[' ? sr__json_next(v, vl, &ep, NULL, NULL,
                                                   &e, &el)
                                   : 1;

            while (more) {
                if (nsub++ == 0) {
                    sr__buf_adds(b, ",\"sub\":");
                    sr__buf_add(b, e, el);
                } else {
                    sr__buf_add(&subs, ",", 1);
                    sr__buf_add(&subs, e, el);
                }
                more = v[0] == '[' &&
                       sr__json_next(v, vl, &ep, NULL, NULL, &e, &el);
            }
            continue;
        }
        for (i = 0; i < sizeof(SYSTEM_CLAIMS) / sizeof(*SYSTEM_CLAIMS); i++)
            if (key_is(k, kl, SYSTEM_CLAIMS[i]))
                renamed = 1;
        sr__buf_adds(b, renamed ? ",\"asrs.u." : ",\"");
        sr__buf_add(b, k, kl);
        sr__buf_adds(b, "\":");
        sr__buf_add(b, v, vl);
    }
    if (nsub == 2) {
        sr__buf_adds(b, ",\"asrs.u.sub\":");
        sr__buf_add(b, subs.p + 1, subs.len - 1);
    } else if (nsub > 2) {
        sr__buf_adds(b, ",\"asrs.u.sub\":[");
        sr__buf_add(b, subs.p + 1, subs.len - 1);
        sr__buf_add(b, "]", 1);
    }
    if (subs.oom)
        b->oom = 1;
    sr__buf_free(&subs);
    return SIGNALR_OK;
}

signalr_err signalr_client_negotiate(signalr_client *c, const char *hub,
                                     const char *user_id,
                                     const char *extra_claims, long lifetime,
                                     time_t now, char **url, char **token,
                                     signalr_error *err)
{
    return signalr_client_negotiate_with(c, hub, user_id, extra_claims, 0,
                                         lifetime, now, url, token, err);
}

signalr_err signalr_client_negotiate_with(signalr_client *c, const char *hub,
                                          const char *user_id,
                                          const char *extra_claims,
                                          unsigned flags, long lifetime,
                                          time_t now, char **url,
                                          char **token, signalr_error *err)
{
    size_t i;

    sr__buf b = {0}, claims = {0};
    char *lhub, *aud, *extra;
    size_t n, toklen = 0;
    signalr_err rc;

    *url = *token = NULL;
    sr__ok(err);
    if (!hub)
        return sr__fail(err, SIGNALR_EINVAL, "hub name is missing");
    rc = signalr_validate_hub(hub, strlen(hub), err);
    if (!rc && user_id)
        rc = signalr_validate_id("user id", user_id, strlen(user_id), err);
    if (rc)
        return rc;
    if (!signalr_connstr_has_key(c->cs) && !c->temp_key)
        return sr__fail(err, SIGNALR_EINVAL,
                        "negotiate needs an AccessKey to sign client tokens "
                        "(AuthType=%s has none: fetch a temporary key with "
                        "the ACCESS_KEY operation and "
                        "signalr_client_set_access_key())",
                        signalr_connstr_auth_type(c->cs));
    if (extra_claims) {
        size_t el = strlen(extra_claims);

        if (!sr__json_is(extra_claims, el, '{'))
            return sr__fail(err, SIGNALR_EINVAL,
                            "claims must be a JSON object");
    }
    lhub = sr__strdup(hub);
    if (!lhub)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    sr__lower(lhub);
    /* Service hub identity: lower(app)_lower(hub) when an app is set. */
    sr__buf_adds(&b, "/client/?hub=");
    if (c->application) {
        sr__buf_adds(&b, c->application);
        sr__buf_add(&b, "_", 1);
    }
    sr__buf_adds(&b, lhub);
    free(lhub);
    aud = sr__buf_take(&b, &n);
    if (!aud)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    sr__buf_adds(&b, signalr_connstr_client_endpoint(c->cs));
    sr__buf_add(&b, aud, n);
    *url = sr__buf_take(&b, NULL);
    sr__buf_adds(&b, signalr_connstr_audience_base(c->cs));
    sr__buf_add(&b, aud, n);
    free(aud);
    aud = sr__buf_take(&b, NULL);

    sr__buf_addf(&claims, "\"nbf\":%ld", (long)now);
    if (user_id) {
        sr__buf_adds(&claims, ",\"nameid\":");
        sr__buf_add_json_string(&claims, user_id, strlen(user_id));
        sr__buf_adds(&claims, ",\"asrs.s.uid\":");
        sr__buf_add_json_string(&claims, user_id, strlen(user_id));
    }
    for (i = 0; i < NFLAGS; i++)
        if (flags & FLAG_CLAIMS[i].flag)
            sr__buf_addf(&claims, ",\"%s\":\"%s\"", FLAG_CLAIMS[i].claim,
                         FLAG_CLAIMS[i].value);
    rc = SIGNALR_OK;
    if (extra_claims)
        rc = add_custom_claims(&claims, extra_claims, strlen(extra_claims),
                               user_id != NULL, flags, err);
    if (rc) {
        sr__buf_free(&claims);
        free(aud);
        free(*url);
        *url = NULL;
        return rc;
    }
    extra = sr__buf_take(&claims, &n);
    if (!*url || !aud || !extra) {
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    } else {
        rc = sr__sign_claims(c, aud, now,
                             lifetime > 0 ? lifetime : SR__DEFAULT_LIFETIME,
                             extra, n, token, &toklen, err);
    }
    free(aud);
    free(extra);
    if (!rc && toklen > SIGNALR_MAX_CLIENT_TOKEN)
        rc = sr__fail(err, SIGNALR_ETOOBIG,
                      "client token is %lu characters, the service accepts "
                      "at most %d: use fewer or shorter claims",
                      (unsigned long)toklen, SIGNALR_MAX_CLIENT_TOKEN);
    if (rc) {
        free(*url);
        free(*token);
        *url = *token = NULL;
    }
    return rc;
}

signalr_err signalr_client_server_token(signalr_client *c, const char *hub,
                                        const char *server_id, long lifetime,
                                        time_t now, char **url, char **token,
                                        signalr_error *err)
{
    sr__buf b = {0};
    char *path, *aud, *extra;
    size_t n, pn, toklen = 0;
    signalr_err rc;

    sr__ok(err);
    if (!url)
        return sr__fail(err, SIGNALR_EINVAL, "missing output");
    *url = NULL;
    if (token)
        *token = NULL;
    if (!hub)
        return sr__fail(err, SIGNALR_EINVAL, "hub name is missing");
    rc = signalr_validate_hub(hub, strlen(hub), err);
    if (!rc && token && server_id)
        rc = signalr_validate_id("server id", server_id, strlen(server_id),
                                 err);
    if (rc)
        return rc;
    if (token && !signalr_connstr_has_key(c->cs) && !c->temp_key)
        return sr__fail(err, SIGNALR_EINVAL, "a server token is signed with "
                        "an AccessKey; with Microsoft Entra ID the bearer "
                        "is the identity's own token");
    sr__buf_adds(&b, "/server/?hub=");
    if (c->application) {
        sr__buf_adds(&b, c->application);
        sr__buf_add(&b, "_", 1);
    }
    n = b.len;
    sr__buf_adds(&b, hub);
    if (b.p)
        sr__lower(b.p + n);
    path = sr__buf_take(&b, &pn);
    if (!path)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    sr__buf_adds(&b, signalr_connstr_server_endpoint(c->cs));
    sr__buf_add(&b, path, pn);
    *url = sr__buf_take(&b, NULL);
    if (!*url) {
        free(path);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    if (!token) {
        free(path);
        return SIGNALR_OK;
    }
    /* aud: the Endpoint's scheme and host (never ServerEndpoint's, no
     * port), as the service SDK's token provider builds it */
    sr__buf_adds(&b, signalr_connstr_audience_base(c->cs));
    sr__buf_add(&b, path, pn);
    free(path);
    aud = sr__buf_take(&b, NULL);
    sr__buf_addf(&b, "\"nbf\":%ld", (long)now);
    if (server_id) {
        sr__buf_adds(&b, ",\"nameid\":");
        sr__buf_add_json_string(&b, server_id, strlen(server_id));
    }
    extra = sr__buf_take(&b, &n);
    if (!aud || !extra)
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    else
        rc = sr__sign_claims(c, aud, now,
                             lifetime > 0 ? lifetime : SR__DEFAULT_LIFETIME,
                             extra, n, token, &toklen, err);
    free(aud);
    free(extra);
    if (rc) {
        free(*url);
        *url = NULL;
    }
    return rc;
}
