/* fuzz_connstr.c - connection strings (user input): parse, read every
 * accessor, build a client; the key never shows in a message. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    signalr_connstr *cs = NULL;
    signalr_client *c = NULL;
    signalr_error e;
    char *s = malloc(size + 1);

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (!signalr_connstr_parse(s, size, &cs, &e)) {
        size_t kl;
        const char *k = sr__connstr_key(cs, &kl);

        (void)strlen(signalr_connstr_endpoint(cs));
        (void)strlen(signalr_connstr_client_endpoint(cs));
        (void)strlen(signalr_connstr_server_endpoint(cs));
        (void)strlen(signalr_connstr_audience_base(cs));
        (void)strlen(signalr_connstr_version(cs));
        (void)strlen(signalr_connstr_auth_type(cs));
        (void)signalr_connstr_has_key(cs);
        (void)k;
    } else if (size < 4096) {
        /* a message never carries 12 characters of a key-looking value
         * (one with a digit: a run of letters may be a key name the
         * message rightly mentions, such as ClientSecret) */
        const char *ak = strstr(s, "AccessKey=");

        if (ak && strlen(ak + 10) >= 12) {
            char probe[13];

            memcpy(probe, ak + 10, 12);
            probe[12] = '\0';
            if (!strchr(probe, ';') && strpbrk(probe, "0123456789") &&
                strstr(e.msg, probe))
                abort();
        }
    }
    signalr_connstr_free(cs);
    if (!signalr_client_new(s, size, NULL, &c, &e))
        signalr_client_free(c);
    free(s);
    return 0;
}
