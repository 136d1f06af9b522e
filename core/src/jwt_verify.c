/* jwt_verify.c - RS256 JSON Web Token signatures (RFC 7515, RFC 7518
 * section 3.3) checked against a set of RSA public keys: PEM public keys
 * or certificates, and JSON Web Keys (RFC 7517 section 4, RFC 7518
 * section 6.3: the modulus and exponent).  For the Microsoft Entra ID
 * bearer tokens the service puts on upstream requests.
 *
 * Caveats: only the signature and the header's "alg" (and "kid", to pick
 * keys) are checked here; the claims (issuer, audience, times) are the
 * caller's, read from the payload this returns.  OpenSSL 3 API. */
#include "internal.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* A token longer than this is refused before anything is decoded (Entra
 * access tokens are 1-3 KiB; headers are limited to a few KiB anyway). */
#define MAX_TOKEN (16 * 1024)
#define MAX_KEYS 64
#define MAX_KID 256

typedef struct {
    EVP_PKEY *key;
    char *kid; /* NULL: tried for every token */
} sr_key;

struct signalr_keyset {
    sr_key keys[MAX_KEYS];
    size_t n;
};

signalr_keyset *signalr_keyset_new(void)
{
    return calloc(1, sizeof(signalr_keyset));
}

void signalr_keyset_free(signalr_keyset *ks)
{
    size_t i;

    if (!ks)
        return;
    for (i = 0; i < ks->n; i++) {
        EVP_PKEY_free(ks->keys[i].key);
        free(ks->keys[i].kid);
    }
    free(ks);
}

size_t signalr_keyset_count(const signalr_keyset *ks)
{
    return ks ? ks->n : 0;
}

/* Take key (freed on failure) into ks with kid; RSA of 2048 bits or more
 * only (RS256; RFC 7518 section 3.3 requires at least 2048). */
static signalr_err add_key(signalr_keyset *ks, EVP_PKEY *key, const char *kid,
                           signalr_error *err)
{
    char *copy = NULL;

    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        return sr__fail(err, SIGNALR_EINVAL, "the key is not an RSA key "
                        "(RS256 needs RSA)");
    }
    if (EVP_PKEY_get_bits(key) < 2048) {
        EVP_PKEY_free(key);
        return sr__fail(err, SIGNALR_EINVAL, "the RSA key has fewer than "
                        "2048 bits");
    }
    if (ks->n == MAX_KEYS) {
        EVP_PKEY_free(key);
        return sr__fail(err, SIGNALR_EINVAL, "more than %d keys", MAX_KEYS);
    }
    if (kid && !(copy = sr__strndup(kid, strlen(kid)))) {
        EVP_PKEY_free(key);
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    }
    ks->keys[ks->n].key = key;
    ks->keys[ks->n].kid = copy;
    ks->n++;
    return SIGNALR_OK;
}

static signalr_err check_kid(const char *kid, signalr_error *err)
{
    size_t i, n;

    if (!kid)
        return SIGNALR_OK;
    n = strlen(kid);
    if (!n || n > MAX_KID)
        return sr__fail(err, SIGNALR_EINVAL, "kid must be 1-%d characters",
                        MAX_KID);
    for (i = 0; i < n; i++)
        if ((unsigned char)kid[i] < 0x20 || kid[i] == '"' || kid[i] == '\\')
            return sr__fail(err, SIGNALR_EINVAL, "kid must not contain "
                            "quotes, backslashes or control characters");
    return SIGNALR_OK;
}

/* No passphrase: OpenSSL's default would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

signalr_err signalr_keyset_add_pem(signalr_keyset *ks, const char *pem,
                                   size_t len, const char *kid,
                                   signalr_error *err)
{
    EVP_PKEY *key = NULL;
    signalr_err rc;
    BIO *b;

    sr__ok(err);
    if (!ks || !pem)
        return sr__fail(err, SIGNALR_EINVAL, "missing key set or PEM");
    rc = check_kid(kid, err);
    if (rc)
        return rc;
    if (len > 64 * 1024)
        return sr__fail(err, SIGNALR_EINVAL, "the PEM text is over 64 KiB");
    b = BIO_new_mem_buf(pem, (int)len);
    if (!b)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    key = PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
    if (!key) {
        X509 *x;

        (void)BIO_reset(b);
        x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
        if (x) {
            key = X509_get_pubkey(x);
            X509_free(x);
        }
    }
    BIO_free(b);
    ERR_clear_error();
    if (!key)
        return sr__fail(err, SIGNALR_EINVAL, "not a PEM public key (BEGIN "
                        "PUBLIC KEY) or certificate (BEGIN CERTIFICATE)");
    return add_key(ks, key, kid, err);
}

/* A base64url big-endian unsigned integer as a BIGNUM (NULL: malformed). */
static BIGNUM *b64_bn(const char *s, size_t n)
{
    unsigned char *p;
    size_t len;
    BIGNUM *bn = NULL;

    if (!n || n > 2048)
        return NULL;
    p = malloc(n * 3 / 4 + 3);
    if (!p)
        return NULL;
    len = sr__b64url_decode(p, s, n);
    if (len != (size_t)-1 && len > 0)
        bn = BN_bin2bn(p, (int)len, NULL);
    free(p);
    return bn;
}

signalr_err signalr_keyset_add_jwk(signalr_keyset *ks, const char *n,
                                   size_t nlen, const char *e, size_t elen,
                                   const char *kid, signalr_error *err)
{
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    signalr_err rc;

    sr__ok(err);
    if (!ks || !n || !e)
        return sr__fail(err, SIGNALR_EINVAL, "missing key set, n or e");
    rc = check_kid(kid, err);
    if (rc)
        return rc;
    bn = b64_bn(n, nlen);
    be = b64_bn(e, elen);
    if (!bn || !be || BN_is_zero(bn) || BN_is_zero(be) || !BN_is_odd(be)) {
        rc = sr__fail(err, SIGNALR_EINVAL, "the JWK's n or e is not a "
                      "base64url positive integer");
        goto out;
    }
    rc = sr__fail(err, SIGNALR_ECRYPTO, "cannot make an RSA key of the JWK");
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    sr__ok(err);
    rc = add_key(ks, key, kid, err);
    key = NULL;
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return rc;
}

/* The JSON string value v[0..vl) (with its quotes) without escapes, as
 * the key's kid is compared byte for byte; 0 when it is not one. */
static int plain_string(const char *v, size_t vl, const char **s, size_t *n)
{
    if (vl < 2 || v[0] != '"' || v[vl - 1] != '"' ||
        memchr(v + 1, '\\', vl - 2))
        return 0;
    *s = v + 1;
    *n = vl - 2;
    return 1;
}

signalr_err signalr_jwt_verify_rs256(const signalr_keyset *ks,
                                     const char *token, size_t len,
                                     char **payload, size_t *payload_len,
                                     signalr_error *err)
{
    const char *d1, *d2, *v, *kid = NULL;
    char *hdr = NULL, *body = NULL;
    unsigned char *sig = NULL;
    size_t hl, bl, vl, kidlen = 0, sl, i, tried = 0;
    EVP_MD_CTX *md = NULL;
    signalr_err rc = SIGNALR_ETOKEN;
    int ok = 0;

    if (payload)
        *payload = NULL;
    sr__ok(err);
    if (!ks || !payload)
        return sr__fail(err, SIGNALR_EINVAL, "missing key set or output");
    if (!token || !len)
        return sr__fail(err, SIGNALR_ETOKEN, "token is empty");
    if (len > MAX_TOKEN)
        return sr__fail(err, SIGNALR_ETOKEN, "token is over %d bytes",
                        MAX_TOKEN);
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || d1 == token || d2 == d1 + 1 || d2 + 1 == token + len ||
        memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return sr__fail(err, SIGNALR_ETOKEN,
                        "token is not three base64url segments");
    hdr = sr__b64url_decode_dup(token, (size_t)(d1 - token), &hl);
    if (!hdr || !sr__json_is(hdr, hl, '{')) {
        sr__fail(err, SIGNALR_ETOKEN, "the token's header is not a JSON "
                 "object");
        goto out;
    }
    if (sr__json_count(hdr, hl, "alg") != 1 ||
        !sr__json_member(hdr, hl, "alg", &v, &vl) || vl != 7 ||
        memcmp(v, "\"RS256\"", 7)) {
        sr__fail(err, SIGNALR_ETOKEN, "the token's algorithm is not RS256");
        goto out;
    }
    if (sr__json_count(hdr, hl, "kid") > 1) {
        sr__fail(err, SIGNALR_ETOKEN, "the token's header repeats kid");
        goto out;
    }
    if (sr__json_member(hdr, hl, "kid", &v, &vl) &&
        !plain_string(v, vl, &kid, &kidlen)) {
        sr__fail(err, SIGNALR_ETOKEN, "the token's kid is not a plain "
                 "string");
        goto out;
    }
    sl = len - (size_t)(d2 + 1 - token);
    sig = malloc(sl * 3 / 4 + 3);
    if (!sig) {
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        goto out;
    }
    sl = sr__b64url_decode(sig, d2 + 1, sl);
    if (sl == (size_t)-1) {
        sr__fail(err, SIGNALR_ETOKEN, "the signature segment is malformed");
        goto out;
    }
    md = EVP_MD_CTX_new();
    if (!md) {
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < ks->n && !ok; i++) {
        const sr_key *k = &ks->keys[i];

        /* a token naming its key is checked with that key (and keys
         * given without a kid), as a JWKS is meant to be used */
        if (kid && k->kid &&
            (strlen(k->kid) != kidlen || memcmp(k->kid, kid, kidlen)))
            continue;
        tried++;
        if ((size_t)EVP_PKEY_get_size(k->key) != sl)
            continue;
        if (EVP_MD_CTX_reset(md) != 1 ||
            EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->key) != 1)
            continue;
        ok = EVP_DigestVerify(md, sig, sl, (const unsigned char *)token,
                              (size_t)(d2 - token)) == 1;
    }
    ERR_clear_error();
    if (!ok) {
        if (!tried)
            sr__fail(err, SIGNALR_ETOKEN, "no key has the token's kid");
        else
            sr__fail(err, SIGNALR_ETOKEN, "the signature does not verify "
                     "with %s", tried == 1 ? "the key" : "any of the keys");
        goto out;
    }
    body = sr__b64url_decode_dup(d1 + 1, (size_t)(d2 - d1 - 1), &bl);
    if (!body || !sr__json_is(body, bl, '{')) {
        sr__fail(err, SIGNALR_ETOKEN, "the token's payload is not a JSON "
                 "object");
        goto out;
    }
    *payload = body;
    body = NULL;
    if (payload_len)
        *payload_len = bl;
    rc = SIGNALR_OK;
out:
    EVP_MD_CTX_free(md);
    free(sig);
    free(hdr);
    free(body);
    return rc;
}
