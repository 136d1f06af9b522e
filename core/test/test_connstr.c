/* test_connstr.c - connection string rules (REST reference 3.5). */
#include "harness.h"
#include "signalr.h"

#define KEY "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"

static const struct {
    const char *in;
    const char *endpoint, *client, *server, *aud, *version;
} GOOD[] = {
    {"Endpoint=https://x.service.signalr.net;AccessKey=" KEY ";Version=1.0;",
     "https://x.service.signalr.net", "https://x.service.signalr.net",
     "https://x.service.signalr.net", "https://x.service.signalr.net", "1.0"},
    /* keys case-insensitive, spaces trimmed, trailing slash dropped */
    {" endpoint = http://localhost/ ; ACCESSKEY=" KEY "; port=8888",
     "http://localhost:8888", "http://localhost:8888",
     "http://localhost:8888", "http://localhost", "1.0"},
    /* Port overrides, value with '=' kept whole */
    {"Endpoint=https://h:444;AccessKey=abc==;Port=8443;Version=1.1-preview",
     "https://h:8443", "https://h:8443", "https://h:8443", "https://h",
     "1.1-preview"},
    {"Endpoint=https://h;AccessKey=k;ClientEndpoint=https://c.example:9;"
     "ServerEndpoint=http://proxy",
     "https://h", "https://c.example:9", "http://proxy", "https://h", "1.0"},
    /* parts without '=' and unknown keys are ignored */
    {"Endpoint=https://h;junk;Foo=bar;AccessKey=k",
     "https://h", "https://h", "https://h", "https://h", "1.0"},
    {"Endpoint=http://[::1]:8888;AccessKey=k",
     "http://[::1]:8888", "http://[::1]:8888", "http://[::1]:8888",
     "http://[::1]", "1.0"},
};

static const struct {
    const char *in, *msg;
} BAD[] = {
    {"", "missing required key 'Endpoint'"},
    {"AccessKey=" KEY, "missing required key 'Endpoint'"},
    {"Endpoint=https://h", "missing required key 'Endpoint'"},
    {"Endpoint=https://h;Version=1.0", "missing required key 'AccessKey'"},
    {"Endpoint=https://h;AccessKey=", "key 'AccessKey' is empty"},
    {"Endpoint=https://h;AccessKey=;Version=1.0", "key 'AccessKey' is empty"},
    {"Endpoint=https://h;AccessKey=a;accesskey=" KEY,
     "duplicate key 'AccessKey'"},
    {"Endpoint=ftp://h;AccessKey=k",
     "invalid value for 'Endpoint': it must be an absolute http or https "
     "URL without a path"},
    {"Endpoint=h.example;AccessKey=k", NULL},
    /* hosts that could only fail at send time are refused here */
    {"Endpoint=http://[a/b?c];AccessKey=k", NULL},
    {"Endpoint=http://[];AccessKey=k", NULL},
    {"Endpoint=http://ho st;AccessKey=k", NULL},
    {"Endpoint=http://user@host;AccessKey=k", NULL},
    {"Endpoint=http://h%41;AccessKey=k", NULL},
    {"Endpoint=https://h/path;AccessKey=k", NULL},
    {"Endpoint=https://h:0;AccessKey=k", NULL},
    {"Endpoint=https://h;AccessKey=k;Port=0",
     "invalid value for 'Port': it must be an integer from 1 to 65535"},
    {"Endpoint=https://h;AccessKey=k;Port=65536", NULL},
    {"Endpoint=https://h;AccessKey=k;Port=80a", NULL},
    {"Endpoint=https://h;AccessKey=k;Version=2.0",
     "unsupported 'Version' 2.0: only 1.x is supported"},
    /* a missing ';' runs the key into the Version: never echo it */
    {"Endpoint=https://x.service.signalr.net;Version=1.0 AccessKey="
     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH",
     "unsupported 'Version' (value not shown: it is not a version number; "
     "is a ';' missing after it?): only 1.x is supported"},
    {"Endpoint=https://h;AccessKey=k;ClientEndpoint=nope", NULL},
    {"Endpoint=https://h;AccessKey=k;ServerEndpoint=ws://x", NULL},
    {"Endpoint=https://h;AuthType=azure.app;ClientId=c",
     "missing required key 'TenantId' for AuthType=azure.app"},
};

int main(void)
{
    signalr_connstr *cs;
    signalr_error e;
    size_t i;

    for (i = 0; i < sizeof(GOOD) / sizeof(*GOOD); i++) {
        signalr_err rc = signalr_connstr_parse(GOOD[i].in,
                                               strlen(GOOD[i].in), &cs, &e);
        CHECK(rc == SIGNALR_OK, GOOD[i].in);
        if (rc) {
            fprintf(stderr, "  error: %s\n", e.msg);
            continue;
        }
        CHECK_STR(signalr_connstr_endpoint(cs), GOOD[i].endpoint, "endpoint");
        CHECK_STR(signalr_connstr_client_endpoint(cs), GOOD[i].client,
                  "client endpoint");
        CHECK_STR(signalr_connstr_server_endpoint(cs), GOOD[i].server,
                  "server endpoint");
        CHECK_STR(signalr_connstr_audience_base(cs), GOOD[i].aud,
                  "audience base");
        CHECK_STR(signalr_connstr_version(cs), GOOD[i].version, "version");
        CHECK(signalr_connstr_has_key(cs), "has key");
        CHECK_STR(signalr_connstr_auth_type(cs), "", "access key auth");
        signalr_connstr_free(cs);
    }
    for (i = 0; i < sizeof(BAD) / sizeof(*BAD); i++) {
        signalr_err rc = signalr_connstr_parse(BAD[i].in, strlen(BAD[i].in),
                                               &cs, &e);
        CHECK(rc == SIGNALR_ECONNSTR && !cs, BAD[i].in);
        if (BAD[i].msg)
            CHECK_STR(e.msg, BAD[i].msg, BAD[i].in);
        CHECK(!strstr(e.msg, "ABCDEFGH"), "no key material in the message");
        CHECK(!strstr(e.msg, KEY), "key never echoed");
    }
    /* Entra ID: no AccessKey needed */
    CHECK(!signalr_connstr_parse("Endpoint=https://h;AuthType=Azure.MSI", 37,
                                 &cs, &e), "AuthType=azure.msi");
    CHECK_STR(signalr_connstr_auth_type(cs), "azure.msi", "auth type lower");
    CHECK(!signalr_connstr_has_key(cs), "no key");
    signalr_connstr_free(cs);
    CHECK(signalr_connstr_parse("Endpoint=https://h;AccessKey=k\0x", 32, &cs,
                                &e) == SIGNALR_ECONNSTR, "NUL rejected");
    CHECK(signalr_connstr_parse(NULL, 0, &cs, NULL) == SIGNALR_ECONNSTR,
          "NULL string");
    signalr_connstr_free(NULL);
    return t_done("test_connstr");
}
