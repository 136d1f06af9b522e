/* jwt.c - HS256 JSON Web Tokens (RFC 7519, RFC 7515 section 3 and A.1),
 * and RS256 client assertions for Microsoft Entra ID certificate
 * credentials.  The only file that calls OpenSSL (besides wiping secrets
 * with OPENSSL_cleanse). */
#include "internal.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* base64url of {"alg":"HS256","typ":"JWT"} */
static const char HEADER_B64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

signalr_err sr__hmac_sha256(const unsigned char *key, size_t keylen,
                            const char *data, size_t n,
                            unsigned char out[32])
{
    unsigned int outlen = 0;
    static const unsigned char empty[1] = {0};

    /* HMAC() rejects a NULL key even with length 0. */
    if (!HMAC(EVP_sha256(), keylen ? key : empty, (int)keylen,
              (const unsigned char *)data, n, out, &outlen) ||
        outlen != 32)
        return SIGNALR_ECRYPTO;
    return SIGNALR_OK;
}

signalr_err signalr_jwt_sign(const char *payload_json, size_t payload_len,
                             const unsigned char *key, size_t keylen,
                             char **out, size_t *outlen, signalr_error *err)
{
    return signalr_jwt_sign_kid(payload_json, payload_len, key, keylen, NULL,
                                out, outlen, err);
}

signalr_err signalr_jwt_sign_kid(const char *payload_json, size_t payload_len,
                                 const unsigned char *key, size_t keylen,
                                 const char *kid, char **out, size_t *outlen,
                                 signalr_error *err)
{
    size_t hlen = sizeof(HEADER_B64) - 1, klen = kid ? strlen(kid) : 0;
    size_t plen = (payload_len + 2) / 3 * 4;
    size_t cap, n, i;
    unsigned char mac[32];
    char hdr[200];
    char *tok;

    *out = NULL;
    sr__ok(err);
    if (!payload_json || !sr__json_is(payload_json, payload_len, '{'))
        return sr__fail(err, SIGNALR_EINVAL,
                        "JWT payload must be a JSON object");
    if (kid && (!klen || klen > 128))
        return sr__fail(err, SIGNALR_EINVAL, "kid must be 1-128 characters");
    for (i = 0; i < klen; i++)
        if ((unsigned char)kid[i] < 0x20 || kid[i] == '"' || kid[i] == '\\' ||
            kid[i] == 0x7f)
            return sr__fail(err, SIGNALR_EINVAL,
                            "kid must not contain quotes, backslashes or "
                            "control characters");
    if (kid)
        hlen = (size_t)snprintf(hdr, sizeof(hdr),
                                "{\"alg\":\"HS256\",\"typ\":\"JWT\","
                                "\"kid\":\"%s\"}", kid);
    cap = (kid ? (hlen + 2) / 3 * 4 : hlen) + 1 + plen + 1 + 43 + 1;
    tok = malloc(cap);
    if (!tok)
        return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
    if (kid) {
        n = sr__b64url_encode(tok, (const unsigned char *)hdr, hlen);
    } else {
        memcpy(tok, HEADER_B64, hlen);
        n = hlen;
    }
    tok[n++] = '.';
    n += sr__b64url_encode(tok + n, (const unsigned char *)payload_json,
                           payload_len);
    if (sr__hmac_sha256(key, keylen, tok, n, mac)) {
        free(tok);
        return sr__fail(err, SIGNALR_ECRYPTO, "HMAC-SHA256 failed");
    }
    tok[n++] = '.';
    n += sr__b64url_encode(tok + n, mac, sizeof(mac));
    OPENSSL_cleanse(mac, sizeof(mac));
    *out = tok;
    if (outlen)
        *outlen = n;
    return SIGNALR_OK;
}

signalr_err signalr_jwt_verify(const char *token, size_t len,
                               const unsigned char *key, size_t keylen,
                               time_t now, char **payload,
                               size_t *payload_len, signalr_error *err)
{
    const char *d1, *d2, *v;
    unsigned char mac[32], got[48];
    char *hdr = NULL, *body = NULL;
    size_t hl, bl, gl, vl;
    signalr_err rc = SIGNALR_ETOKEN;

    *payload = NULL;
    sr__ok(err);
    if (!token || !len)
        return sr__fail(err, SIGNALR_ETOKEN, "token is empty");
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return sr__fail(err, SIGNALR_ETOKEN,
                        "token is not three base64url segments");
    gl = len - (size_t)(d2 + 1 - token);
    if (gl > 44 ||
        sr__b64url_decode(got, d2 + 1, gl) != sizeof(mac))
        return sr__fail(err, SIGNALR_ETOKEN, "signature segment is malformed");
    if (sr__hmac_sha256(key, keylen, token, (size_t)(d2 - token), mac))
        return sr__fail(err, SIGNALR_ECRYPTO, "HMAC-SHA256 failed");
    if (CRYPTO_memcmp(mac, got, sizeof(mac)))
        return sr__fail(err, SIGNALR_ETOKEN,
                        "signature does not match the access key");
    hdr = sr__b64url_decode_dup(token, (size_t)(d1 - token), &hl);
    body = sr__b64url_decode_dup(d1 + 1, (size_t)(d2 - d1 - 1), &bl);
    if (!hdr || !body || !sr__json_is(hdr, hl, '{') ||
        !sr__json_is(body, bl, '{')) {
        sr__fail(err, SIGNALR_ETOKEN, "header or payload is not JSON");
        goto out;
    }
    if (!sr__json_member(hdr, hl, "alg", &v, &vl) || vl != 7 ||
        memcmp(v, "\"HS256\"", 7)) {
        sr__fail(err, SIGNALR_ETOKEN, "algorithm is not HS256");
        goto out;
    }
    if (now > 0) {
        char num[32];
        char *endp;
        double exp;

        if (sr__json_count(body, bl, "exp") > 1) {
            sr__fail(err, SIGNALR_ETOKEN, "claim 'exp' is repeated");
            goto out;
        }
        if (!sr__json_member(body, bl, "exp", &v, &vl)) {
            sr__fail(err, SIGNALR_ETOKEN, "claim 'exp' is missing");
            goto out;
        }
        /* the payload is valid JSON, so a value starting with '-' or a
         * digit is an RFC 8259 number (no hex, nan or inf) */
        if (vl >= sizeof(num) || !(v[0] == '-' || (v[0] >= '0' &&
                                                   v[0] <= '9'))) {
            sr__fail(err, SIGNALR_ETOKEN, "claim 'exp' is not a number");
            goto out;
        }
        memcpy(num, v, vl);
        num[vl] = '\0';
        exp = strtod(num, &endp);
        if (endp == num || *endp || !(exp > -1e300 && exp < 1e300)) {
            sr__fail(err, SIGNALR_ETOKEN,
                     "claim 'exp' is not a finite number");
            goto out;
        }
        if (exp <= (double)now) {
            sr__fail(err, SIGNALR_ETOKEN, "token has expired");
            goto out;
        }
    }
    *payload = body;
    body = NULL;
    if (payload_len)
        *payload_len = bl;
    rc = SIGNALR_OK;
out:
    free(hdr);
    free(body);
    return rc;
}

/* ===== RS256 client assertions (certificate credentials) ===== */

/* The password of an encrypted PEM key (u: the NUL-terminated password,
 * or NULL: none, so OpenSSL does not prompt on the terminal). */
static int pem_password(char *buf, int size, int rwflag, void *u)
{
    size_t n;

    (void)rwflag;
    if (!u || size <= 0)
        return 0;
    n = strlen((const char *)u);
    if (n > (size_t)size)
        return 0;
    memcpy(buf, u, n);
    return (int)n;
}

/* Read key and certificate from a PKCS#12 (PFX) file already open in b.
 * 1: it is one (read, or a message in err); 0: it is not PKCS#12. */
static int read_pkcs12(BIO *b, const char *password, EVP_PKEY **key,
                       X509 **cert, signalr_err *rc, signalr_error *err)
{
    PKCS12 *p12 = d2i_PKCS12_bio(b, NULL);
    STACK_OF(X509) *ca = NULL;

    if (!p12)
        return 0;
    /* no password given: the empty one (PKCS12_parse tries "" and none) */
    if (!PKCS12_verify_mac(p12, password ? password : "", -1) &&
        !(!password && PKCS12_verify_mac(p12, NULL, 0))) {
        PKCS12_free(p12);
        *rc = sr__fail(err, SIGNALR_EINVAL,
                       password ? "cannot open the PKCS#12 (PFX) certificate "
                                  "file: the password is wrong (it is not "
                                  "shown)"
                                : "cannot open the PKCS#12 (PFX) certificate "
                                  "file: it has a password and none was "
                                  "given");
        return 1;
    }
    if (!PKCS12_parse(p12, password ? password : "", key, cert, &ca)) {
        *key = NULL;
        *cert = NULL;
    }
    sk_X509_pop_free(ca, X509_free);
    PKCS12_free(p12);
    *rc = SIGNALR_OK;
    if (!*key || !*cert || X509_check_private_key(*cert, *key) != 1) {
        EVP_PKEY_free(*key);
        X509_free(*cert);
        *key = NULL;
        *cert = NULL;
        *rc = sr__fail(err, SIGNALR_EINVAL,
                       "the PKCS#12 (PFX) certificate file needs a private "
                       "key and the certificate that matches it");
    }
    return 1;
}

/* Read the private key and the certificate of a PEM file (the first of
 * each; the key may be encrypted with password) or of a PKCS#12 (PFX)
 * file (password: its password, NULL: none or the empty one).
 * The messages never show path: it comes from a setting documented as a
 * file name (ClientCert, ClientCertPath, AZURE_CLIENT_CERTIFICATE_PATH),
 * and what is given there by mistake may be the key itself (a PEM pasted
 * in place of its file's name) or another secret.  The caller names the
 * setting.  Nor the password. */
static signalr_err read_cert(const char *path, const char *password,
                             EVP_PKEY **key, X509 **cert, signalr_error *err)
{
    signalr_err rc = SIGNALR_OK;
    BIO *b;

    *key = NULL;
    *cert = NULL;
    if (strstr(path, "-----BEGIN"))
        return sr__fail(err, SIGNALR_EINVAL,
                        "cannot read the certificate file (the value is PEM "
                        "text, not a file name: save it to a file and give "
                        "that file's name; the value is not shown)");
    b = BIO_new_file(path, "rb");
    if (!b) {
        ERR_clear_error();
        return sr__fail(err, SIGNALR_EINVAL,
                        "cannot read the certificate file (its name is not "
                        "shown)");
    }
    if (read_pkcs12(b, password, key, cert, &rc, err)) {
        BIO_free(b);
        ERR_clear_error();
        return rc;
    }
    (void)BIO_reset(b);
    *key = PEM_read_bio_PrivateKey(b, NULL, pem_password, (void *)password);
    (void)BIO_reset(b);
    *cert = PEM_read_bio_X509(b, NULL, pem_password, NULL);
    BIO_free(b);
    ERR_clear_error();
    if (*key && *cert && X509_check_private_key(*cert, *key) == 1)
        return SIGNALR_OK;
    EVP_PKEY_free(*key);
    X509_free(*cert);
    *key = NULL;
    *cert = NULL;
    ERR_clear_error();
    return sr__fail(err, SIGNALR_EINVAL,
                    "the certificate file needs a private key and the "
                    "certificate that matches it: PEM (the key encrypted "
                    "only with the password given) or PKCS#12 (PFX)");
}

signalr_err signalr_jwt_sign_rs256(const char *payload_json,
                                   size_t payload_len, const char *pem_path,
                                   char **out, size_t *outlen,
                                   signalr_error *err)
{
    return signalr_jwt_sign_rs256_cert(payload_json, payload_len, pem_path,
                                       NULL, out, outlen, err);
}

signalr_err signalr_jwt_sign_rs256_cert(const char *payload_json,
                                        size_t payload_len, const char *path,
                                        const char *password, char **out,
                                        size_t *outlen, signalr_error *err)
{
    unsigned char sha1[20], sha256[32], *sig = NULL;
    char t1[32], t256[48], hdr[200];
    unsigned int dl = 0;
    size_t hl, siglen = 0, n, cap;
    EVP_PKEY *key;
    X509 *cert;
    EVP_MD_CTX *md = NULL;
    signalr_err rc;
    char *tok = NULL;

    *out = NULL;
    sr__ok(err);
    if (!payload_json || !sr__json_is(payload_json, payload_len, '{'))
        return sr__fail(err, SIGNALR_EINVAL,
                        "JWT payload must be a JSON object");
    if (!path)
        return sr__fail(err, SIGNALR_EINVAL, "no certificate file");
    rc = read_cert(path, password, &key, &cert, err);
    if (rc)
        return rc;
    rc = sr__fail(err, SIGNALR_ECRYPTO, "RS256 signing failed");
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        rc = sr__fail(err, SIGNALR_EINVAL,
                      "the certificate's key must be RSA (RS256)");
        goto done;
    }
    /* x5t: SHA-1 thumbprint of the DER certificate; x5t#S256: SHA-256 */
    if (!X509_digest(cert, EVP_sha1(), sha1, &dl) || dl != 20 ||
        !X509_digest(cert, EVP_sha256(), sha256, &dl) || dl != 32)
        goto done;
    t1[sr__b64url_encode(t1, sha1, 20)] = '\0';
    t256[sr__b64url_encode(t256, sha256, 32)] = '\0';
    hl = (size_t)snprintf(hdr, sizeof(hdr),
                          "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t\":\"%s\","
                          "\"x5t#S256\":\"%s\"}", t1, t256);
    cap = (hl + 2) / 3 * 4 + 1 + (payload_len + 2) / 3 * 4 + 1 +
          ((size_t)EVP_PKEY_get_size(key) + 2) / 3 * 4 + 1;
    tok = malloc(cap);
    md = EVP_MD_CTX_new();
    if (!tok || !md) {
        rc = sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        goto done;
    }
    n = sr__b64url_encode(tok, (const unsigned char *)hdr, hl);
    tok[n++] = '.';
    n += sr__b64url_encode(tok + n, (const unsigned char *)payload_json,
                           payload_len);
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (unsigned char *)tok, n) != 1)
        goto done;
    sig = malloc(siglen);
    if (!sig || EVP_DigestSign(md, sig, &siglen, (unsigned char *)tok, n) != 1)
        goto done;
    tok[n++] = '.';
    n += sr__b64url_encode(tok + n, sig, siglen);
    tok[n] = '\0';
    *out = tok;
    tok = NULL;
    if (outlen)
        *outlen = n;
    rc = SIGNALR_OK;
    sr__ok(err);
done:
    ERR_clear_error();
    free(sig);
    free(tok);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    X509_free(cert);
    return rc;
}
