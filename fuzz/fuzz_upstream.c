/* fuzz_upstream.c - signalr_upstream_verify() on arbitrary headers and
 * connection ids.  Invariants: the answer is -2..(keys-1); a header the
 * verifier accepted for a key equals, item for item, what sign gives. */
#include "signalr.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH",
                                       "secondary"};
    const uint8_t *cut = memchr(data, 0, size);
    size_t hlen = cut ? (size_t)(cut - data) : size;
    const char *id = cut ? (const char *)cut + 1 : "";
    size_t idlen = cut ? size - hlen - 1 : 0;
    char sig[SIGNALR_SIGNATURE_LEN + 1];
    signalr_error e;
    int r;

    r = signalr_upstream_verify((const char *)data, hlen, id, idlen, keys, 2);
    assert(r >= -2 && r <= 1);
    /* the signature sign gives for this id always verifies */
    assert(signalr_upstream_sign(keys[1], id, idlen, sig, &e) == SIGNALR_OK);
    assert(signalr_upstream_verify(sig, strlen(sig), id, idlen, keys, 2) == 1);
    return 0;
}
