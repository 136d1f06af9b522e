/* fuzz_jwt_rs256.c - RS256 verification of arbitrary tokens (the bytes of
 * an upstream request's Authorization header) against a fixed key, and
 * JWK members (n, e) from arbitrary bytes. */
#include "internal.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a fixed 2048-bit modulus (any odd number of that size makes a key) */
static signalr_keyset *fixed(void)
{
    static char n[343];
    signalr_keyset *ks = signalr_keyset_new();
    size_t i;

    for (i = 0; i < 342; i++)
        n[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            [(i * 7 + 3) % 64];
    n[0] = 'x';
    n[341] = 'B'; /* odd */
    signalr_keyset_add_jwk(ks, n, 342, "AQAB", 4, "k1", NULL);
    return ks;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* made once (reachable to the end: not a leak) */
    static signalr_keyset *ks;
    signalr_keyset *other = signalr_keyset_new();
    char *payload = NULL;
    size_t pl = 0, half = size / 2;
    signalr_error e;

    if (!ks)
        ks = fixed();

    if (!signalr_jwt_verify_rs256(ks, (const char *)data, size, &payload, &pl,
                                  &e) &&
        !sr__json_is(payload, pl, '{'))
        abort();
    signalr_free(payload);
    /* n and e from the two halves of the input, and the input as PEM */
    signalr_keyset_add_jwk(other, (const char *)data, half,
                           (const char *)data + half, size - half, NULL, &e);
    /* PEM only for PEM-looking input: OpenSSL's decoders are slow on
     * anything else, and the seeds hold a PEM key to start from */
    if (size > 10 && !memcmp(data, "-----BEGIN", 10))
        signalr_keyset_add_pem(other, (const char *)data, size, NULL, &e);
    signalr_keyset_free(other);
    return 0;
}
