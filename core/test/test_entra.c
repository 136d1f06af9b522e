/* test_entra.c - what the core gives Microsoft Entra ID clients: the
 * connection string's identity keys, HS256 with a kid, temporary access
 * keys for negotiate, the access_key operation, identity requests. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "internal.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#define APP "Endpoint=https://x.service.signalr.net;AuthType=azure.app;" \
            "ClientId=cid;TenantId=tid;ClientSecret=s3cr3t;Version=1.0;"

static int has(const char *s, const char *part)
{
    return s && strstr(s, part) != NULL;
}

/* Write a fresh RSA key and its self-signed certificate to path (both,
 * or only the certificate); returns the key (the caller frees it). */
static EVP_PKEY *make_pem(const char *path, int with_key)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    FILE *f = fopen(path, "w");

    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"app", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, k, EVP_sha256());
    if (with_key)
        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    PEM_write_X509(f, x);
    fclose(f);
    X509_free(x);
    return k;
}

/* RS256 client assertions: the signature verifies with the key, the
 * header names the certificate by its thumbprints, bad files are EINVAL. */
static void test_rs256(void)
{
    char path[] = "/tmp/signalr-test-XXXXXX", *tok, *hdr;
    int fd = mkstemp(path);
    EVP_PKEY *k;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[512];
    const char *d1, *d2;
    size_t n, hl, sl;
    signalr_error e;

    close(fd);
    k = make_pem(path, 1);
    CHECK(!signalr_jwt_sign_rs256("{\"iss\":\"a\"}", 11, path, &tok, &n, &e),
          e.msg);
    d1 = strchr(tok, '.');
    d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    CHECK(d2 && n == strlen(tok), "three segments");
    hdr = malloc((size_t)(d1 - tok));
    hl = sr__b64url_decode((unsigned char *)hdr, tok, (size_t)(d1 - tok));
    hdr[hl] = '\0';
    CHECK(has(hdr, "\"alg\":\"RS256\"") && has(hdr, "\"x5t\":\"") &&
              has(hdr, "\"x5t#S256\":\""), hdr);
    sl = sr__b64url_decode(sig, d2 + 1, strlen(d2 + 1));
    CHECK(sl == 256, "a 2048-bit signature");
    CHECK(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
              EVP_DigestVerify(md, sig, sl, (const unsigned char *)tok,
                               (size_t)(d2 - tok)) == 1,
          "the signature verifies with the certificate's key");
    free(hdr);
    signalr_free(tok);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    /* a certificate without its key, a missing file, a bad payload */
    EVP_PKEY_free(make_pem(path, 0));
    CHECK(signalr_jwt_sign_rs256("{}", 2, path, &tok, NULL, &e) == SIGNALR_EINVAL,
          "no key");
    CHECK(has(e.msg, "needs a private key and the certificate"), e.msg);
    CHECK(!has(e.msg, path), "the file's name is not shown");
    unlink(path);
    CHECK(signalr_jwt_sign_rs256("{}", 2, path, &tok, NULL, &e) == SIGNALR_EINVAL,
          "no file");
    CHECK(has(e.msg, "cannot read the certificate file"), e.msg);
    CHECK(!has(e.msg, path), "the file's name is not shown");
    CHECK(signalr_jwt_sign_rs256("[]", 2, path, &tok, NULL, &e) == SIGNALR_EINVAL,
          "payload not an object");
}

/* PKCS#12 (PFX) files, with a password and without, and an encrypted PEM
 * key: signed with the file's key; a wrong or missing password is EINVAL
 * saying so, without the password or the file's name. */
static void test_pfx(void)
{
    char path[] = "/tmp/signalr-test-XXXXXX", pem[] = "/tmp/signalr-test-XXXXXX";
    static const char *const pws[] = {"pfx-Secret-42", NULL};
    int fd = mkstemp(path), fd2 = mkstemp(pem);
    EVP_PKEY *k;
    X509 *x;
    FILE *f;
    char *tok = NULL;
    signalr_error e;
    size_t i;

    close(fd);
    close(fd2);
    k = make_pem(pem, 1);
    f = fopen(pem, "r");
    x = PEM_read_X509(f, NULL, NULL, NULL); /* skips the key before it */
    fclose(f);
    for (i = 0; i < 2; i++) {
        PKCS12 *p12 = PKCS12_create(pws[i], "app", k, x, NULL, 0, 0, 0, 0, 0);

        f = fopen(path, "wb");
        i2d_PKCS12_fp(f, p12);
        fclose(f);
        PKCS12_free(p12);
        CHECK(!signalr_jwt_sign_rs256_cert("{\"a\":1}", 7, path, pws[i], &tok,
                                           NULL, &e), e.msg);
        CHECK(tok && has(tok, "."), "a PFX signs");
        signalr_free(tok);
        tok = NULL;
    }
    /* the last file has no password; the first again, with a wrong one */
    {
        PKCS12 *p12 = PKCS12_create(pws[0], "app", k, x, NULL, 0, 0, 0, 0, 0);
        f = fopen(path, "wb");
        i2d_PKCS12_fp(f, p12);
        fclose(f);
        PKCS12_free(p12);
    }
    CHECK(signalr_jwt_sign_rs256_cert("{}", 2, path, "wrong-Pass-77", &tok,
                                      NULL, &e) == SIGNALR_EINVAL &&
              has(e.msg, "the password is wrong") &&
              !has(e.msg, "wrong-Pass-77") && !has(e.msg, path), e.msg);
    CHECK(signalr_jwt_sign_rs256("{}", 2, path, &tok, NULL, &e) ==
              SIGNALR_EINVAL && has(e.msg, "none was given"), e.msg);
    /* an encrypted PEM key */
    f = fopen(pem, "w");
    PEM_write_PrivateKey(f, k, EVP_aes_256_cbc(), NULL, 0, NULL,
                         (void *)"pem-Pass-9");
    PEM_write_X509(f, x);
    fclose(f);
    CHECK(!signalr_jwt_sign_rs256_cert("{}", 2, pem, "pem-Pass-9", &tok, NULL,
                                       &e), e.msg);
    signalr_free(tok);
    tok = NULL;
    CHECK(signalr_jwt_sign_rs256_cert("{}", 2, pem, "nope", &tok, NULL, &e) ==
              SIGNALR_EINVAL && !has(e.msg, "nope"), e.msg);
    CHECK(signalr_jwt_sign_rs256("{}", 2, pem, &tok, NULL, &e) ==
              SIGNALR_EINVAL, "encrypted key without a password");
    unlink(path);
    unlink(pem);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* The certificate setting (ClientCert, ClientCertPath) names a file; a PEM
 * pasted there instead is refused without a byte of it in the message. */
static void test_rs256_pem_as_path(void)
{
    static const char pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
        "-----END PRIVATE KEY-----\n"
        "-----BEGIN CERTIFICATE-----\n"
        "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n"
        "-----END CERTIFICATE-----\n";
    char *tok = NULL;
    signalr_error e;

    CHECK(signalr_jwt_sign_rs256("{}", 2, pem, &tok, NULL, &e) == SIGNALR_EINVAL,
          "a PEM is not a file name");
    CHECK(tok == NULL, "no token");
    /* (the checks' own texts: a message that shows the PEM is not printed) */
    CHECK(!has(e.msg, "BEGIN") && !has(e.msg, "PRIVATE KEY") &&
              !has(e.msg, "MIIEvQIBADAN") && !has(e.msg, "MIIDdzCC"),
          "no byte of the PEM in the message");
    CHECK(has(e.msg, "cannot read the certificate file"), "what failed");
    CHECK(has(e.msg, "PEM text"), "the message says the value is PEM text");
}

int main(void)
{
    signalr_connstr *cs;
    signalr_client *c;
    signalr_request r;
    signalr_error e;
    char *url, *tok, *payload;
    size_t n;

    /* the identity keys */
    CHECK(!signalr_connstr_parse(APP, strlen(APP), &cs, &e), "parse azure.app");
    CHECK_STR(signalr_connstr_client_id(cs), "cid", "client id");
    CHECK_STR(signalr_connstr_tenant_id(cs), "tid", "tenant id");
    CHECK_STR(signalr_connstr_client_secret(cs, &n), "s3cr3t", "secret");
    CHECK(n == 6, "secret length");
    CHECK(signalr_connstr_client_cert(cs) == NULL, "no certificate");
    signalr_connstr_free(cs);
    {
        const char *p = "Endpoint=https://x;AuthType=azure.app;ClientId=a;"
                        "TenantId=t;ClientCertPath=/c.pem";
        CHECK(!signalr_connstr_parse(p, strlen(p), &cs, &e), "ClientCertPath");
        CHECK_STR(signalr_connstr_client_cert(cs), "/c.pem", "cert path");
        signalr_connstr_free(cs);
        p = "Endpoint=https://x;AuthType=azure.app;ClientId=a;TenantId=t;"
            "ClientCert=/a;ClientCertPath=/b";
        CHECK(signalr_connstr_parse(p, strlen(p), &cs, &e) == SIGNALR_ECONNSTR,
              "both cert keys");
        CHECK(has(e.msg, "not both"), e.msg);
        p = "Endpoint=https://x;AuthType=azure.app;ClientId=;TenantId=t;"
            "ClientSecret=s";
        CHECK(signalr_connstr_parse(p, strlen(p), &cs, &e) == SIGNALR_ECONNSTR,
              "empty ClientId");
        CHECK(has(e.msg, "'ClientId'") && !has(e.msg, "s;"), e.msg);
        p = "Endpoint=https://x;AuthType=azure.msi;Version=1.0;";
        CHECK(!signalr_connstr_parse(p, strlen(p), &cs, &e), "msi");
        CHECK(signalr_connstr_client_id(cs) == NULL, "system-assigned");
        CHECK(signalr_connstr_client_secret(cs, NULL) == NULL, "no secret");
        signalr_connstr_free(cs);
    }

    /* kid in the header; verify still accepts it */
    CHECK(!signalr_jwt_sign_kid("{\"exp\":9999999999}", 18,
                                (const unsigned char *)"k", 1, "kid-1", &tok,
                                NULL, &e), "sign with kid");
    /* {"alg":"HS256","typ":"JWT","kid":"kid-1"} */
    CHECK(!strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImtpZC0xIn0.",
                   56), tok);
    CHECK(!signalr_jwt_verify(tok, strlen(tok), (const unsigned char *)"k", 1,
                              1, &payload, NULL, &e), "verify with kid");
    signalr_free(payload);
    signalr_free(tok);
    CHECK(signalr_jwt_sign_kid("{}", 2, (const unsigned char *)"k", 1, "a\"b",
                               &tok, NULL, &e) == SIGNALR_EINVAL, "quote in kid");
    CHECK(signalr_jwt_sign_kid("{}", 2, (const unsigned char *)"k", 1, "",
                               &tok, NULL, &e) == SIGNALR_EINVAL, "empty kid");

    /* negotiate needs the temporary key, then signs with it */
    CHECK(!signalr_client_new(APP, strlen(APP), NULL, &c, &e), "client");
    CHECK(signalr_client_negotiate(c, "chat", "u", NULL, 60, 1000, &url, &tok,
                                   &e) == SIGNALR_EINVAL, "no key yet");
    CHECK(has(e.msg, "signalr_client_set_access_key"), e.msg);
    CHECK(signalr_client_set_access_key(c, "k1", "", 0, &e) == SIGNALR_EINVAL,
          "empty key");
    CHECK(signalr_client_set_access_key(c, "bad\nkid", "key", 3, &e) ==
              SIGNALR_EINVAL, "control byte in kid");
    CHECK(!signalr_client_set_access_key(c, "k1", "temporary-key", 13, &e),
          "set key");
    CHECK(!signalr_client_negotiate(c, "chat", "u", NULL, 60, 1000, &url, &tok,
                                    &e), "negotiate");
    CHECK_STR(url, "https://x.service.signalr.net/client/?hub=chat", "url");
    CHECK(!signalr_jwt_verify(tok, strlen(tok),
                              (const unsigned char *)"temporary-key", 13, 1000,
                              &payload, NULL, &e), "signed with the temporary key");
    CHECK(has(payload, "\"asrs.s.uid\":\"u\""), payload);
    signalr_free(payload);
    signalr_free(url);
    signalr_free(tok);
    CHECK(!signalr_client_set_access_key(c, NULL, NULL, 0, &e), "forget");
    CHECK(signalr_client_negotiate(c, "chat", NULL, NULL, 60, 1000, &url, &tok,
                                   &e) == SIGNALR_EINVAL, "forgotten");

    /* the access_key operation: the SDK's path, no api-version */
    {
        signalr_params p;

        memset(&p, 0, sizeof(p));
        p.bearer = "entra-token";
        CHECK(!signalr_request_build(c, SIGNALR_OP_ACCESS_KEY, &p, 1000, &r, &e),
              "build access_key");
        CHECK_STR(r.method, "GET", "method");
        CHECK_STR(r.url, "https://x.service.signalr.net/api/v1/auth/accessKey",
                  "url");
        CHECK_STR(r.authorization, "Bearer entra-token", "bearer as is");
        CHECK(signalr_op_returns_data(SIGNALR_OP_ACCESS_KEY), "answers with data");
        signalr_request_clear(&r);
    }
    signalr_client_free(c);
    {
        const char *ak = "Endpoint=https://x;AccessKey=abc;Version=1.0;";

        CHECK(!signalr_client_new(ak, strlen(ak), NULL, &c, &e), "ak client");
        CHECK(signalr_client_set_access_key(c, "k", "x", 1, &e) == SIGNALR_EINVAL,
              "an AccessKey client takes no temporary key");
        signalr_client_free(c);
    }

    /* identity requests */
    {
        static const char *const hdrs[] = {"Metadata", "true", "X-A", "b c"};
        static const char *const bad_name[] = {"Bad Name", "v"};
        static const char *const bad_value[] = {"X", "a\r\nInjected: 1"};
        static const char *const bad_urls[] = {
            "ftp://h/x", "http://", "http://h:0/", "http://h:99999/",
            "http://u@h/", "http://h/a b", "http://h/#f", "http://[]/",
            "http://h:/x", "http://h:1x/", "https://login.[icrosoft.com/t",
            "http://[::1x]/", "http://h%41/"};
        size_t i;

        CHECK(!signalr_request_http("GET", "http://169.254.169.254/metadata/"
                                    "identity/oauth2/token?api-version=2018-02-01",
                                    hdrs, 2, NULL, 0, NULL, &r, &e), "imds");
        CHECK(r.op == SIGNALR_OP_MAX, "not an operation");
        CHECK_STR(r.host, "169.254.169.254", "host");
        CHECK(r.port == 80 && !r.tls, "port");
        CHECK_STR(r.path, "/metadata/identity/oauth2/token?api-version=2018-02-01",
                  "path");
        CHECK_STR(r.headers, "Metadata: true\r\nX-A: b c\r\n", "headers");
        CHECK(r.body == NULL && r.content_type == NULL, "no body");
        signalr_request_clear(&r);
        CHECK(!signalr_request_http("POST", "https://[::1]:8443?x=1", NULL, 0,
                                    "a=b", 3, "application/x-www-form-urlencoded",
                                    &r, &e), "post");
        CHECK_STR(r.host, "::1", "v6 host");
        CHECK(r.port == 8443 && r.tls, "v6 port");
        CHECK_STR(r.path, "/?x=1", "a query without a path");
        CHECK(r.body_len == 3 && !strcmp(r.body, "a=b"), "body");
        CHECK_STR(r.content_type, "application/x-www-form-urlencoded", "type");
        signalr_request_clear(&r);
        CHECK(signalr_request_http("PATCH", "http://h/", NULL, 0, NULL, 0, NULL,
                                   &r, &e) == SIGNALR_EINVAL, "method");
        for (i = 0; i < sizeof(bad_urls) / sizeof(*bad_urls); i++)
            CHECK(signalr_request_http("GET", bad_urls[i], NULL, 0, NULL, 0, NULL,
                                       &r, &e) == SIGNALR_EINVAL, bad_urls[i]);
        CHECK(signalr_request_http("GET", "http://h/", bad_name, 1, NULL, 0, NULL,
                                   &r, &e) == SIGNALR_EINVAL, "header name");
        CHECK(signalr_request_http("GET", "http://h/", bad_value, 1, NULL, 0,
                                   NULL, &r, &e) == SIGNALR_EINVAL, "header value");
        CHECK(has(e.msg, "control character"), e.msg);
        /* identity requests are retried like idempotent calls */
        {
            signalr_retry_policy pol = {2, 100, 1000, SIGNALR_RETRY_EXPONENTIAL};

            CHECK(signalr_retry_delay(SIGNALR_OP_MAX, &pol, 1, SIGNALR_ESTATUS,
                                      500, -1) == 100, "500 retried");
            CHECK(signalr_retry_delay(SIGNALR_OP_MAX, &pol, 2, SIGNALR_ETIMEDOUT,
                                      0, -1) == 200, "timeout retried");
            CHECK(signalr_retry_delay(SIGNALR_OP_MAX, &pol, 1, SIGNALR_ESTATUS,
                                      400, -1) == -1, "400 not retried");
        }
    }
    test_rs256();
    test_pfx();
    test_rs256_pem_as_path();
    return t_done("test_entra");
}
