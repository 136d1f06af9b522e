/* test_buf.c - buffers, base64url and the JSON scanner. */
#include "harness.h"
#include "internal.h"

#include <stdlib.h>

static const struct {
    const char *json, *key, *want; /* want NULL: absent or malformed */
} MEMBERS[] = {
    {"{\"a\":1,\"b\":\"x\"}", "b", "\"x\""},
    {" { \"a\" : [1,{\"b\":2}] , \"b\" : {\"c\":\"}\"} } ", "b", "{\"c\":\"}\"}"},
    {"{\"a\":\"q\\\"b\\\\\",\"exp\":123}", "exp", "123"},
    {"{\"a\":1}", "b", NULL},
    {"{}", "a", NULL},
    {"[1]", "a", NULL},
    {"{\"a\":1", "a", "1"},
    {"{\"a\" 1}", "a", NULL},
    {"{\"x\":{\"a\":1},\"a\":2}", "a", "2"},
};

/* Strict JSON (RFC 8259): what the builder, jwt_sign and verify accept. */
static const struct {
    const char *s;
    int valid;
} JSON[] = {
    {"[]", 1}, {" [1, \"a\", {\"b\": [true, false, null]}] ", 1},
    {"{\"a\":-0.5e+10}", 1}, {"[\"\\u00e9\\n\"]", 1}, {"0", 1},
    {"[1}", 0}, {"{\"a\":1]", 0}, {"[nan, undefined]", 0}, {"[NaN]", 0},
    {"[Infinity]", 0}, {"[\"a\" \"b\"]", 0}, {"[1,]", 0}, {"[,1]", 0},
    {"{\"a\" 1}", 0}, {"{\"a\":}", 0}, {"{1:2}", 0}, {"[01]", 0},
    {"[0x10]", 0}, {"[1.]", 0}, {"[.5]", 0}, {"[1e]", 0}, {"[+1]", 0},
    {"[\"\\x\"]", 0}, {"[\"\\u12\"]", 0}, {"[\"a\nb\"]", 0}, {"[tru]", 0},
    {"[] []", 0}, {"", 0}, {"[", 0}, {"{\"a\":1,}", 0},
};

int main(void)
{
    char out[128];
    unsigned char raw[128];
    size_t i, n;
    sr__buf b = {0};
    char *p;

    for (i = 0; i < sizeof(JSON) / sizeof(*JSON); i++)
        CHECK(sr__json_valid(JSON[i].s, strlen(JSON[i].s)) == JSON[i].valid,
              JSON[i].s);
    {
        /* 512 levels are fine, 513 are refused (no deep recursion) */
        static char deep[2 * 600 + 1];

        memset(deep, '[', 600);
        memset(deep + 600, ']', 600);
        CHECK(sr__json_valid(deep + 88, 1024) == 1, "512 levels");
        CHECK(sr__json_valid(deep + 87, 1026) == 0, "513 levels");
        CHECK(sr__json_too_deep(deep + 87, 1026) == 1, "513 levels: why");
        CHECK(sr__json_too_deep(deep + 88, 1024) == 0, "512 levels: not");
        CHECK(sr__json_too_deep(deep + 87, 513) == 1, "513 open, unclosed");
        CHECK(sr__json_too_deep("[\"[[[[\",{\"a\":[]}]", 17) == 0,
              "brackets in strings do not count");
    }
    {
        /* 600 brackets inside a string, two levels outside it */
        static char s[600 + 8];

        memcpy(s, "[[\"", 3);
        memset(s + 3, '[', 600);
        memcpy(s + 603, "\\\"\"]]", 5);
        CHECK(sr__json_too_deep(s, 608) == 0, "a string of brackets");
        CHECK(sr__json_valid(s, 608) == 1, "a string of brackets is valid");
    }

    for (i = 0; i < sizeof(MEMBERS) / sizeof(*MEMBERS); i++) {
        const char *v;
        size_t vl;
        int found = sr__json_member(MEMBERS[i].json, strlen(MEMBERS[i].json),
                                    MEMBERS[i].key, &v, &vl);

        CHECK(found == (MEMBERS[i].want != NULL), MEMBERS[i].json);
        if (found && MEMBERS[i].want) {
            snprintf(out, sizeof(out), "%.*s", (int)vl, v);
            CHECK_STR(out, MEMBERS[i].want, "member value");
        }
    }
    CHECK(sr__json_is("[1,\"]\",[2]]", 11, '['), "array");
    CHECK(sr__json_is("  []  ", 6, '['), "padded array");
    CHECK(!sr__json_is("[1] [2]", 7, '['), "two values");
    CHECK(!sr__json_is("[1", 2, '['), "unterminated");
    CHECK(!sr__json_is("{}", 2, '['), "object is not an array");
    CHECK(!sr__json_is("[\"a\nb\"]", 7, '['), "raw control char in string");

    /* base64url: RFC 4648 test vectors, no padding */
    {
        static const char *const V[][2] = {
            {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
            {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
            {"\xfb\xff", "-_8"},
        };
        for (i = 0; i < sizeof(V) / sizeof(*V); i++) {
            sr__b64url_encode(out, (const unsigned char *)V[i][0],
                              strlen(V[i][0]));
            CHECK_STR(out, V[i][1], "b64url encode");
            n = sr__b64url_decode(raw, V[i][1], strlen(V[i][1]));
            CHECK(n == strlen(V[i][0]) && !memcmp(raw, V[i][0], n),
                  "b64url decode");
        }
        CHECK(sr__b64url_decode(raw, "Zg=", 3) == (size_t)-1, "padding");
        CHECK(sr__b64url_decode(raw, "Z", 1) == (size_t)-1, "one char");
        CHECK(sr__b64url_decode(raw, "Zh", 2) == (size_t)-1,
              "non-canonical trailing bits");
        CHECK(sr__b64url_decode(raw, "Zm+v", 4) == (size_t)-1,
              "'+' is not base64url");
    }

    /* buffers */
    sr__buf_adds(&b, "a");
    sr__buf_add_json_string(&b, "q\"\\\n\x01", 5);
    sr__buf_add_escaped(&b, "a b", 3);
    sr__buf_addf(&b, "%d", 42);
    p = sr__buf_take(&b, &n);
    CHECK_STR(p, "a\"q\\\"\\\\\\n\\u0001\"a%20b42", "buffer contents");
    CHECK(n == strlen(p), "buffer length");
    free(p);
    p = sr__buf_take(&b, &n);
    CHECK(p && n == 0 && !p[0], "empty take gives \"\"");
    free(p);
    return t_done("test_buf");
}
