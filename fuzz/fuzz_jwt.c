/* fuzz_jwt.c - JWT verify on arbitrary tokens (the emulator runs it on
 * every request), and sign -> verify round trips of arbitrary payloads. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char KEY[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *payload = NULL, *tok = NULL, *back = NULL;
    size_t tl = 0, bl = 0;
    signalr_error e;

    if (!signalr_jwt_verify((const char *)data, size, KEY, sizeof(KEY) - 1,
                            1700000000, &payload, NULL, &e)) {
        if (!sr__json_is(payload, strlen(payload), '{'))
            abort();
    }
    signalr_free(payload);
    if (!signalr_jwt_sign((const char *)data, size, KEY, sizeof(KEY) - 1,
                          &tok, &tl, &e)) {
        /* what sign accepts, verify accepts (no expiry check: now = 0) */
        if (signalr_jwt_verify(tok, tl, KEY, sizeof(KEY) - 1, 0, &back, &bl,
                               &e) ||
            bl != size || memcmp(back, data, size))
            abort();
    }
    signalr_free(tok);
    signalr_free(back);
    return 0;
}
