/* test_jwt_verify.c - RS256 verification against key sets: PEM public
 * keys, certificates' keys and JWKs (by kid); refusals of tampered,
 * mis-keyed and malformed tokens; bad keys; NULL handling. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "internal.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

/* An RS256 token of header and payload (JSON text) signed with k. */
static char *sign(EVP_PKEY *k, const char *hdr, const char *payload)
{
    size_t hl = strlen(hdr), pl = strlen(payload), n, sl = 0;
    char *tok = malloc((hl + pl) * 2 + 1024);
    unsigned char sig[512];
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    n = sr__b64url_encode(tok, (const unsigned char *)hdr, hl);
    tok[n++] = '.';
    n += sr__b64url_encode(tok + n, (const unsigned char *)payload, pl);
    sl = sizeof(sig);
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k);
    EVP_DigestSign(md, sig, &sl, (unsigned char *)tok, n);
    tok[n++] = '.';
    n += sr__b64url_encode(tok + n, sig, sl);
    tok[n] = '\0';
    EVP_MD_CTX_free(md);
    return tok;
}

static char *pub_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p, *out;
    long n;

    PEM_write_bio_PUBKEY(b, k);
    n = BIO_get_mem_data(b, &p);
    out = sr__strndup(p, (size_t)n);
    BIO_free(b);
    return out;
}

/* The base64url n and e of k's public key. */
static void jwk(EVP_PKEY *k, char *n, char *e)
{
    BIGNUM *bn = NULL, *be = NULL;
    unsigned char buf[600];
    int len;

    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &bn);
    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &be);
    len = BN_bn2bin(bn, buf);
    n[sr__b64url_encode(n, buf, (size_t)len)] = '\0';
    len = BN_bn2bin(be, buf);
    e[sr__b64url_encode(e, buf, (size_t)len)] = '\0';
    BN_free(bn);
    BN_free(be);
}

static const char *PAYLOAD = "{\"iss\":\"i\",\"aud\":\"a\",\"exp\":2000000000}";

static int verifies(const signalr_keyset *ks, const char *tok,
                    const char *want_msg)
{
    char *payload = NULL;
    size_t pl = 0;
    signalr_error e;
    signalr_err rc = signalr_jwt_verify_rs256(ks, tok, strlen(tok), &payload,
                                              &pl, &e);

    if (rc == SIGNALR_OK) {
        int same = pl == strlen(PAYLOAD) && !strcmp(payload, PAYLOAD);
        signalr_free(payload);
        return same;
    }
    if (payload)
        return 0; /* nothing is returned on failure */
    if (want_msg && !strstr(e.msg, want_msg)) {
        fprintf(stderr, "  msg: %s (want %s)\n", e.msg, want_msg);
        return -2;
    }
    return rc == SIGNALR_ETOKEN ? -1 : -3;
}

int main(void)
{
    EVP_PKEY *k1 = EVP_RSA_gen(2048), *k2 = EVP_RSA_gen(2048);
    EVP_PKEY *small = EVP_RSA_gen(1024);
    signalr_keyset *pem = signalr_keyset_new(), *jw = signalr_keyset_new();
    char *p1 = pub_pem(k1), *p2 = pub_pem(k2), *ps = pub_pem(small);
    char n1[400], e1[16], n2[400], e2[16];
    char *t_plain, *t_one, *t_two, *t_three, *bad;
    signalr_error e;
    size_t i;

    CHECK(pem && jw && signalr_keyset_count(pem) == 0, "new, empty");
    CHECK(!signalr_keyset_add_pem(pem, p2, strlen(p2), NULL, &e), e.msg);
    CHECK(!signalr_keyset_add_pem(pem, p1, strlen(p1), NULL, &e), e.msg);
    CHECK(signalr_keyset_count(pem) == 2, "two keys");
    jwk(k1, n1, e1);
    jwk(k2, n2, e2);
    CHECK(!signalr_keyset_add_jwk(jw, n1, strlen(n1), e1, strlen(e1), "one",
                                  &e), e.msg);
    CHECK(!signalr_keyset_add_jwk(jw, n2, strlen(n2), e2, strlen(e2), "two",
                                  &e), e.msg);

    t_plain = sign(k1, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", PAYLOAD);
    t_one = sign(k1, "{\"alg\":\"RS256\",\"kid\":\"one\"}", PAYLOAD);
    t_two = sign(k1, "{\"alg\":\"RS256\",\"kid\":\"two\"}", PAYLOAD);
    t_three = sign(k1, "{\"alg\":\"RS256\",\"kid\":\"three\"}", PAYLOAD);

    /* accepted: PEM keys (every key is tried), JWK by kid */
    CHECK(verifies(pem, t_plain, NULL) == 1, "PEM, no kid");
    CHECK(verifies(pem, t_one, NULL) == 1, "PEM keys have no kid: tried");
    CHECK(verifies(jw, t_plain, NULL) == 1, "JWKs, token without kid");
    CHECK(verifies(jw, t_one, NULL) == 1, "JWK by kid");
    /* refused */
    CHECK(verifies(jw, t_two, "does not verify with the key") == -1,
          "kid names the other key: only it is tried");
    CHECK(verifies(jw, t_three, "no key has the token's kid") == -1,
          "unknown kid");
    bad = sign(k2, "{\"alg\":\"RS256\"}", PAYLOAD);
    {
        signalr_keyset *only1 = signalr_keyset_new();
        signalr_keyset_add_pem(only1, p1, strlen(p1), NULL, NULL);
        CHECK(verifies(only1, bad, "does not verify with the key") == -1,
              "another key's signature");
        free(bad);
        bad = sign(k1, "{\"alg\":\"RS256\"}", "{\"x\":1}");
        /* swap in the payload of t_plain: the signature no longer holds */
        {
            char *d = strchr(t_plain, '.'), *d2 = strchr(d + 1, '.');
            char *b1 = strchr(bad, '.');
            char *mix = malloc(strlen(t_plain) + strlen(bad));
            sprintf(mix, "%.*s%.*s%s", (int)(b1 - bad), bad,
                    (int)(d2 - d), d, strrchr(bad, '.'));
            CHECK(verifies(only1, mix, "does not verify") == -1,
                  "tampered payload");
            free(mix);
        }
        signalr_keyset_free(only1);
    }
    free(bad);
    bad = sign(k1, "{\"alg\":\"HS256\"}", PAYLOAD);
    CHECK(verifies(pem, bad, "not RS256") == -1, "HS256 header");
    free(bad);
    bad = sign(k1, "{\"alg\":\"RS256\",\"alg\":\"none\"}", PAYLOAD);
    CHECK(verifies(pem, bad, "not RS256") == -1, "repeated alg");
    free(bad);
    bad = sign(k1, "[1]", PAYLOAD);
    CHECK(verifies(pem, bad, "header is not a JSON object") == -1, "array");
    free(bad);
    bad = sign(k1, "{\"alg\":\"RS256\"}", "[1]");
    CHECK(verifies(pem, bad, "payload is not a JSON object") == -1,
          "signed array payload");
    free(bad);
    bad = sign(k1, "{\"alg\":\"RS256\",\"kid\":\"o\\u006ee\"}", PAYLOAD);
    CHECK(verifies(jw, bad, "kid is not a plain string") == -1, "escaped kid");
    free(bad);
    {
        static const char *const malformed[] = {
            "", "a", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.", "e30.e30.!!!",
        };
        for (i = 0; i < sizeof(malformed) / sizeof(*malformed); i++)
            CHECK(verifies(pem, malformed[i], NULL) == -1, malformed[i]);
    }
    /* bad keys */
    CHECK(signalr_keyset_add_pem(pem, "nope", 4, NULL, &e) == SIGNALR_EINVAL &&
              strstr(e.msg, "not a PEM public key"), e.msg);
    CHECK(signalr_keyset_add_pem(pem, ps, strlen(ps), NULL, &e) ==
              SIGNALR_EINVAL && strstr(e.msg, "2048"), e.msg);
    CHECK(signalr_keyset_add_jwk(jw, "!!", 2, "AQAB", 4, NULL, &e) ==
              SIGNALR_EINVAL, e.msg);
    CHECK(signalr_keyset_add_jwk(jw, n1, strlen(n1), "AA", 2, NULL, &e) ==
              SIGNALR_EINVAL, "e = 0");
    CHECK(signalr_keyset_add_pem(pem, p1, strlen(p1), "a\"b", &e) ==
              SIGNALR_EINVAL, "quote in kid");
    CHECK(signalr_keyset_count(pem) == 2, "failed adds add nothing");
    /* NULLs */
    CHECK(signalr_jwt_verify_rs256(NULL, "a", 1, &bad, NULL, &e) ==
              SIGNALR_EINVAL, "NULL key set");
    CHECK(signalr_jwt_verify_rs256(pem, t_plain, strlen(t_plain), &bad, NULL,
                                   NULL) == SIGNALR_OK, "NULL err");
    signalr_free(bad);
    signalr_keyset_free(NULL);
    CHECK(signalr_keyset_count(NULL) == 0, "count of NULL");

    free(t_plain);
    free(t_one);
    free(t_two);
    free(t_three);
    free(p1);
    free(p2);
    free(ps);
    signalr_keyset_free(pem);
    signalr_keyset_free(jw);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(small);
    return t_done("test_jwt_verify");
}
