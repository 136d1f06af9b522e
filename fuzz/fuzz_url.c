/* fuzz_url.c - RFC 3986 encode and decode: decode(encode(x)) == x, the
 * encoder's size contract, the decoder on arbitrary bytes. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    size_t need = signalr_url_encode(NULL, 0, src, size), n;
    char *enc = malloc(need + 1), *dec = malloc(need + 1), *raw;

    if (!enc || !dec)
        goto out;
    if (signalr_url_encode(enc, need + 1, src, size) != need ||
        strlen(enc) != need)
        abort();
    n = signalr_url_decode(dec, enc, need, 0);
    if (n != size || memcmp(dec, src, size))
        abort();
    /* a short buffer: still NUL-terminated, no overflow */
    if (need) {
        signalr_url_encode(enc, need / 2 + 1, src, size);
        if (strlen(enc) > need / 2)
            abort();
    }
    raw = malloc(size + 1);
    if (raw) {
        memcpy(raw, data, size);
        (void)signalr_url_decode(raw, raw, size, 1);
        free(raw);
    }
out:
    free(enc);
    free(dec);
    return 0;
}
