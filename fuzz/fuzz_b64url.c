/* fuzz_b64url.c - base64url (RFC 7515 section 2): round trip, and the
 * decoder on arbitrary text. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *enc = malloc(size * 4 / 3 + 4);
    unsigned char *dec = malloc(size + 4);
    size_t n, m;

    if (!enc || !dec)
        goto out;
    n = sr__b64url_encode(enc, data, size);
    m = sr__b64url_decode(dec, enc, n);
    if (m != size || memcmp(dec, data, size))
        abort();
    free(dec);
    dec = malloc(size * 3 / 4 + 3);
    if (dec)
        (void)sr__b64url_decode(dec, (const char *)data, size);
out:
    free(enc);
    free(dec);
    return 0;
}
