/* test_upstream.c - X-ASRS-Signature: the reference sheet's worked
 * examples, several keys, several items, case, spaces, malformed. */
#include "harness.h"
#include "signalr.h"

#define KEY "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
#define SIG_C1 "sha256=DD527C793428B58B71B037644217FC6BB0164A08513C39F37AC6C2CAD55F9023"
#define SIG_AB "sha256=8C208D3836DAEAE0CB6E8659667FAF458244E9304FC253CE36FE0AF38B4DDCAF"

static int verify(const char *h, const char *id, const char *const *keys,
                  size_t n)
{
    return signalr_upstream_verify(h, strlen(h), id, strlen(id), keys, n);
}

int main(void)
{
    char out[SIGNALR_SIGNATURE_LEN + 1], lower[sizeof(SIG_C1)], two[256];
    const char *one[] = {KEY};
    const char *keys[] = {"the-secondary-key", KEY};
    const char *none[] = {"another-key"};
    signalr_error e;
    size_t i;

    CHECK(signalr_upstream_sign(KEY, "c1", 2, out, &e) == SIGNALR_OK, "sign");
    CHECK_STR(out, SIG_C1, "the sheet's example for c1");
    CHECK(signalr_upstream_sign(KEY, "AbCd-123", 8, out, &e) == SIGNALR_OK,
          "sign 2");
    CHECK_STR(out, SIG_AB, "the sheet's example for AbCd-123");
    CHECK(signalr_upstream_sign(NULL, "c1", 2, out, &e) == SIGNALR_EINVAL,
          "no key: EINVAL");

    CHECK(verify(SIG_C1, "c1", one, 1) == 0, "verifies");
    CHECK(verify(SIG_C1, "c2", one, 1) == -1, "another connection: no");
    CHECK(verify(SIG_C1, "c1", none, 1) == -1, "another key: no");
    CHECK(verify(SIG_C1, "c1", keys, 2) == 1, "the second key matches: 1");
    CHECK(verify(SIG_C1, "c1", keys, 0) == -1, "no keys: no");
    for (i = 0; i < sizeof(SIG_C1); i++)
        lower[i] = (char)(SIG_C1[i] >= 'A' && SIG_C1[i] <= 'F'
                              ? SIG_C1[i] - 'A' + 'a' : SIG_C1[i]);
    CHECK(verify(lower, "c1", one, 1) == 0, "lowercase hex verifies");
    /* one item per key, as the service sends them; either may match */
    snprintf(two, sizeof(two), "%s,%s", SIG_AB, SIG_C1);
    CHECK(verify(two, "c1", one, 1) == 0, "second item matches");
    snprintf(two, sizeof(two), " %s , %s ", SIG_C1, SIG_AB);
    CHECK(verify(two, "c1", one, 1) == 0, "spaces around items");
    /* malformed */
    CHECK(verify("", "c1", one, 1) == -2, "empty: malformed");
    CHECK(verify("sha256=", "c1", one, 1) == -2, "no digits: malformed");
    CHECK(verify("sha1=DD527C793428B58B71B037644217FC6BB0164A08513C39F37AC6C2CAD55F9023",
                 "c1", one, 1) == -2, "another algorithm: malformed");
    CHECK(verify("sha256=DD527C793428B58B71B037644217FC6BB0164A08513C39F37AC6C2CAD55F902",
                 "c1", one, 1) == -2, "63 digits: malformed");
    CHECK(verify("sha256=DD527C793428B58B71B037644217FC6BB0164A08513C39F37AC6C2CAD55F902G",
                 "c1", one, 1) == -2, "not hex: malformed");
    snprintf(two, sizeof(two), "%s,", SIG_C1);
    CHECK(verify(two, "c1", one, 1) == -2, "an empty item: malformed");
    CHECK(signalr_upstream_verify(SIG_C1, sizeof(SIG_C1) - 1, "c1\0x", 4, one, 1) == -1,
          "the id's bytes count, NUL included");
    return t_done("test_upstream");
}
