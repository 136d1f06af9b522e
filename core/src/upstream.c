/* upstream.c - the X-ASRS-Signature of serverless upstream requests: sign
 * (for the emulator and tests) and verify (for event handlers), with
 * every access key, in constant time. */
#include "internal.h"

#include <string.h>

#define PREFIX "sha256="
#define PREFIX_LEN 7

static const char HEX[] = "0123456789ABCDEF";

signalr_err signalr_upstream_sign(const char *access_key,
                                  const char *connection_id, size_t id_len,
                                  char *out, signalr_error *err)
{
    unsigned char mac[32];
    size_t i;

    sr__ok(err);
    if (!access_key || !connection_id || !out)
        return sr__fail(err, SIGNALR_EINVAL, "missing key, connection id "
                        "or output");
    if (sr__hmac_sha256((const unsigned char *)access_key, strlen(access_key),
                        connection_id, id_len, mac))
        return sr__fail(err, SIGNALR_ECRYPTO, "HMAC-SHA256 failed");
    memcpy(out, PREFIX, PREFIX_LEN);
    for (i = 0; i < 32; i++) {
        out[PREFIX_LEN + 2 * i] = HEX[mac[i] >> 4];
        out[PREFIX_LEN + 2 * i + 1] = HEX[mac[i] & 15];
    }
    out[SIGNALR_SIGNATURE_LEN] = '\0';
    return SIGNALR_OK;
}

/* Parse the items of header into macs (at most max); returns how many,
 * or -1 when one is malformed. */
static int parse_items(const char *h, size_t n, unsigned char (*macs)[32],
                       int max)
{
    size_t i = 0;
    int count = 0;

    while (i <= n) {
        size_t a, b, j;

        a = i;
        while (a < n && h[a] != ',')
            a++;
        /* [i, a) is one item: trim spaces and tabs */
        b = a;
        while (i < b && (h[i] == ' ' || h[i] == '\t'))
            i++;
        while (b > i && (h[b - 1] == ' ' || h[b - 1] == '\t'))
            b--;
        if (b - i != PREFIX_LEN + 64 || memcmp(h + i, PREFIX, PREFIX_LEN))
            return -1;
        if (count == max)
            return -1; /* more items than any service sends */
        for (j = 0; j < 32; j++) {
            int hi = sr__hexval(h[i + PREFIX_LEN + 2 * j]);
            int lo = sr__hexval(h[i + PREFIX_LEN + 2 * j + 1]);

            if (hi < 0 || lo < 0)
                return -1;
            macs[count][j] = (unsigned char)(hi << 4 | lo);
        }
        count++;
        i = a + 1;
    }
    return count;
}

int signalr_upstream_verify(const char *header, size_t header_len,
                            const char *connection_id, size_t id_len,
                            const char *const *keys, size_t nkeys)
{
    unsigned char macs[8][32], want[32];
    int n, found = -1, i;
    size_t k;

    if (!header || !connection_id)
        return -2;
    n = parse_items(header, header_len, macs, 8);
    if (n <= 0)
        return -2;
    for (k = 0; k < nkeys; k++) {
        if (!keys[k])
            continue;
        if (sr__hmac_sha256((const unsigned char *)keys[k], strlen(keys[k]),
                            connection_id, id_len,
                            want))
            return -3;
        for (i = 0; i < n; i++) {
            unsigned char diff = 0;
            size_t j;

            /* every byte of every item, whatever matched before */
            for (j = 0; j < 32; j++)
                diff |= (unsigned char)(macs[i][j] ^ want[j]);
            if (diff == 0 && found < 0)
                found = (int)k;
        }
    }
    return found;
}
