/* test_jwt.c - HS256 signing and verification (RFC 7515 A.1). */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>

/* RFC 7515 appendix A.1 */
static const char A1_INPUT[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    "."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
    "LmNvbS9pc19yb290Ijp0cnVlfQ";
static const char A1_KEY[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgU"
    "uTwjAzZr1Z9CAow";
static const char A1_SIG[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

int main(void)
{
    unsigned char key[128], mac[32];
    char sig[64], token[512], *out, *payload;
    size_t keylen, n;
    signalr_error e;

    /* exp must be one finite JSON number: each of these is refused */
    {
        static const char *const bad_exp[] = {
            "{\"exp\":nan}", "{\"exp\":inf}", "{\"exp\":1e999}",
            "{\"exp\":0x7fffffff}", "{\"exp\":\"99999999999\"}",
            "{\"exp\":1,\"exp\":99999999999}", "{\"exp\":-1e999}",
            "{\"aud\":\"x\"}",
        };
        size_t k;

        for (k = 0; k < sizeof(bad_exp) / sizeof(*bad_exp); k++) {
            char *tok = NULL, *pl = NULL;
            /* sign what sign accepts; build the rest by hand */
            signalr_err src = signalr_jwt_sign(bad_exp[k], strlen(bad_exp[k]),
                                               (const unsigned char *)"k", 1,
                                               &tok, NULL, &e);

            if (src) {
                CHECK(src == SIGNALR_EINVAL, "sign refuses invalid JSON");
                continue;
            }
            CHECK(signalr_jwt_verify(tok, strlen(tok),
                                     (const unsigned char *)"k", 1, 1000,
                                     &pl, NULL, &e) == SIGNALR_ETOKEN,
                  bad_exp[k]);
            CHECK(pl == NULL, "no payload on failure");
            signalr_free(tok);
        }
        CHECK(signalr_jwt_sign("{\"a\":1]", 8, (const unsigned char *)"k", 1,
                               &out, NULL, &e) == SIGNALR_EINVAL,
              "sign: {\"a\":1] refused");
    }
    keylen = sr__b64url_decode(key, A1_KEY, strlen(A1_KEY));
    CHECK(keylen == 64, "A.1 key decodes to 64 bytes");
    CHECK(!sr__hmac_sha256(key, keylen, A1_INPUT, strlen(A1_INPUT), mac),
          "hmac");
    sr__b64url_encode(sig, mac, 32);
    CHECK_STR(sig, A1_SIG, "RFC 7515 A.1 signature");

    snprintf(token, sizeof(token), "%s.%s", A1_INPUT, A1_SIG);
    CHECK(!signalr_jwt_verify(token, strlen(token), key, keylen, 0,
                              &payload, &n, &e), "A.1 verifies");
    CHECK(payload && strstr(payload, "\"iss\":\"joe\""), "A.1 payload");
    signalr_free(payload);
    CHECK(signalr_jwt_verify(token, strlen(token), key, keylen, 1300819381,
                             &payload, NULL, &e) == SIGNALR_ETOKEN,
          "A.1 is expired one second after exp");
    CHECK_STR(e.msg, "token has expired", "expired message");
    CHECK(!signalr_jwt_verify(token, strlen(token), key, keylen, 1300819379,
                              &payload, NULL, &e), "A.1 valid before exp");
    signalr_free(payload);

    /* sign + verify round trip with a connection-string key (UTF-8 bytes
     * as written, not base64-decoded) */
    {
        const char *k = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
        const char *p = "{\"aud\":\"http://localhost/api/hubs/chat\","
                        "\"exp\":2000000000}";

        CHECK(!signalr_jwt_sign(p, strlen(p), (const unsigned char *)k,
                                strlen(k), &out, &n, &e), "sign");
        CHECK(n == strlen(out), "length out");
        CHECK(!strncmp(out, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37),
              "fixed header");
        CHECK(!signalr_jwt_verify(out, n, (const unsigned char *)k,
                                  strlen(k), 1999999999, &payload, NULL, &e),
              "round trip");
        CHECK_STR(payload, p, "payload back");
        signalr_free(payload);
        CHECK(signalr_jwt_verify(out, n, (const unsigned char *)"wrong", 5,
                                 0, &payload, NULL, &e) == SIGNALR_ETOKEN,
              "wrong key");
        CHECK_STR(e.msg, "signature does not match the access key",
                  "wrong key message");
        out[n - 1] = out[n - 1] == 'A' ? 'B' : 'A';
        CHECK(signalr_jwt_verify(out, n, (const unsigned char *)k, strlen(k),
                                 0, &payload, NULL, &e) == SIGNALR_ETOKEN,
              "tampered signature");
        signalr_free(out);
    }
    CHECK(signalr_jwt_sign("[1]", 3, (const unsigned char *)"k", 1, &out,
                           NULL, &e) == SIGNALR_EINVAL && !out,
          "payload must be an object");
    CHECK(signalr_jwt_verify("a.b", 3, (const unsigned char *)"k", 1, 0,
                             &payload, NULL, &e) == SIGNALR_ETOKEN,
          "two segments");
    CHECK(signalr_jwt_verify("", 0, (const unsigned char *)"k", 1, 0,
                             &payload, NULL, &e) == SIGNALR_ETOKEN, "empty");
    CHECK(signalr_jwt_verify("a.b.c.d", 7, (const unsigned char *)"k", 1, 0,
                             &payload, NULL, &e) == SIGNALR_ETOKEN,
          "four segments");
    /* alg none with a valid-looking HS256 signature over it is refused */
    {
        const char *p = "{\"exp\":1}";
        unsigned char m[32];
        char t[256], s2[64];
        size_t o;

        o = (size_t)sprintf(t, "eyJhbGciOiJub25lIn0.");  /* {"alg":"none"} */
        o += sr__b64url_encode(t + o, (const unsigned char *)p, strlen(p));
        sr__hmac_sha256((const unsigned char *)"k", 1, t, o, m);
        sr__b64url_encode(s2, m, 32);
        sprintf(t + o, ".%s", s2);
        CHECK(signalr_jwt_verify(t, strlen(t), (const unsigned char *)"k", 1,
                                 0, &payload, NULL, &e) == SIGNALR_ETOKEN,
              "alg none refused");
        CHECK_STR(e.msg, "algorithm is not HS256", "alg message");
    }
    return t_done("test_jwt");
}
