/* test_url.c - percent-encoding and decoding. */
#include "harness.h"
#include "signalr.h"

static const struct {
    const char *in, *out;
} ENC[] = {
    {"", ""},
    {"AZaz09-._~", "AZaz09-._~"},
    {"a b", "a%20b"},
    {"a/b+c?d#e&f=g", "a%2Fb%2Bc%3Fd%23e%26f%3Dg"},
    {"\xc3\xa9", "%C3%A9"},
    {"%", "%25"},
    {"hub`,.[]", "hub%60%2C.%5B%5D"},
};

int main(void)
{
    size_t i;
    char buf[64];

    for (i = 0; i < sizeof(ENC) / sizeof(*ENC); i++) {
        size_t need = signalr_url_encode(NULL, 0, ENC[i].in,
                                         strlen(ENC[i].in));
        CHECK(need == strlen(ENC[i].out), "encode: length needed");
        signalr_url_encode(buf, sizeof(buf), ENC[i].in, strlen(ENC[i].in));
        CHECK_STR(buf, ENC[i].out, "encode");
        CHECK(signalr_url_decode(buf, buf, strlen(buf), 0) ==
                  strlen(ENC[i].in), "decode: length");
        CHECK_STR(buf, ENC[i].in, "decode round trip");
    }
    /* snprintf semantics at the boundaries: need, need+1, cut escapes */
    CHECK(signalr_url_encode(buf, 4, "a b", 3) == 5, "cut: need reported");
    CHECK_STR(buf, "a", "cut never leaves half an escape");
    CHECK(signalr_url_encode(buf, 5, "a b", 3) == 5, "need: still 5");
    CHECK_STR(buf, "a%20", "need bytes: last char dropped for NUL");
    signalr_url_encode(buf, 6, "a b", 3);
    CHECK_STR(buf, "a%20b", "need+1 bytes: complete");
    buf[0] = 'x';
    signalr_url_encode(buf, 0, "abc", 3);
    CHECK(buf[0] == 'x', "dstlen 0 writes nothing");

    strcpy(buf, "a+b%2");
    CHECK(signalr_url_decode(buf, buf, 5, 1) == (size_t)-1,
          "truncated escape rejected");
    strcpy(buf, "%zz");
    CHECK(signalr_url_decode(buf, buf, 3, 0) == (size_t)-1,
          "bad hex rejected");
    strcpy(buf, "a+b");
    signalr_url_decode(buf, buf, 3, 1);
    CHECK_STR(buf, "a b", "plus as space");
    strcpy(buf, "a+b");
    signalr_url_decode(buf, buf, 3, 0);
    CHECK_STR(buf, "a+b", "plus kept in paths");
    return t_done("test_url");
}
