/* fuzz_claims.c - negotiate with arbitrary custom claims (the renaming of
 * reserved claim types and repeated "sub"): a token it issues verifies and
 * carries a valid JSON payload. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
#define CS "Endpoint=https://x.service.signalr.net;AccessKey=" KEY ";"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static signalr_client *c;
    char *claims = malloc(size + 1), *url = NULL, *tok = NULL, *pl = NULL;
    size_t pll = 0;
    signalr_error e;

    if (!claims)
        return 0;
    if (!c && signalr_client_new(CS, strlen(CS), NULL, &c, &e))
        abort();
    memcpy(claims, data, size);
    claims[size] = '\0';
    /* the user id and negotiate's flags (diagnostic, detailed errors)
     * vary with the input's length */
    if (!signalr_client_negotiate_with(c, "chat", size % 2 ? "alice" : NULL,
                                       claims, (unsigned)(size / 2 % 4), 600,
                                       1700000000, &url, &tok, &e)) {
        if (signalr_jwt_verify(tok, strlen(tok), (const unsigned char *)KEY,
                               strlen(KEY), 1700000000, &pl, &pll, &e) ||
            !sr__json_valid(pl, pll))
            abort();
    }
    signalr_free(url);
    signalr_free(tok);
    signalr_free(pl);
    free(claims);
    return 0;
}
