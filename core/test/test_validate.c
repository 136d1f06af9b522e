/* test_validate.c - name rules. */
#include "harness.h"
#include "signalr.h"

static const struct {
    const char *name;
    int ok;
    const char *msg;
} HUBS[] = {
    {"chat", 1, NULL},
    {"Chat_1`,.[]", 1, NULL},
    {"", 0, "hub name is empty"},
    {"1chat", 0, "hub name must start with a letter"},
    {"chat-room", 0, "hub name has an illegal character at position 5 "
                     "(allowed: letters, digits and _`,.[])"},
    {"ch at", 0, NULL},
    {"caf\xc3\xa9", 0, NULL},
};

/* Groups (pattern ^(?!\s+$).+$ read as ECMA-262) and other names. */
static const struct {
    int group;
    const char *s;
    const char *msg; /* NULL: accepted */
} BAD_TEXT[] = {
    {1, "a\nb", "group name has a line break at character 2 (the "
                "service's pattern ^(?!\\s+$).+$ allows none)"},
    {1, "a\n", "group name has a line break at character 2 (the "
               "service's pattern ^(?!\\s+$).+$ allows none)"},
    {1, "a\rb", "group name has a line break at character 2 (the "
                "service's pattern ^(?!\\s+$).+$ allows none)"},
    {1, "a\xe2\x80\xa8" "b", "group name has a line break at character 2 "
                              "(the service's pattern ^(?!\\s+$).+$ allows "
                              "none)"},
    {1, "\xe3\x80\x80\xc2\xa0", "group name is only white space"},
    {1, "\t", "group name is only white space"},
    /* ASCII and other characters mixed: white space, line breaks counted
     * in characters, not bytes */
    {1, " \v\f\r\n\t", "group name is only white space"},
    {1, "\xc2\xa0 \x0b\xe2\x80\x80", "group name is only white space"},
    {1, "\xc3\xa9\xc3\xa9\rx", "group name has a line break at character 3 "
                          "(the service's pattern ^(?!\\s+$).+$ allows "
                          "none)"},
    {1, "\xc2\xa0\x1f", NULL},
    {1, "\x7f", NULL},
    {1, "a\tb", NULL},
    {1, "\xf0\x9f\x8e\xae", NULL},
    {1, "bad\xff", "group name is not valid UTF-8 (byte 4)"},
    {1, "\xc0\xaf", "group name is not valid UTF-8 (byte 1)"},
    {1, "\xed\xa0\x80", "group name is not valid UTF-8 (byte 1)"},
    {1, "cut\xe2\x80", "group name is not valid UTF-8 (byte 4)"},
    {0, "c\xff", "connection id is not valid UTF-8 (byte 2)"},
    {0, "c 1/2?", NULL},
};

int main(void)
{
    signalr_error e;
    char big[2048];
    size_t i;

    for (i = 0; i < sizeof(HUBS) / sizeof(*HUBS); i++) {
        signalr_err rc = signalr_validate_hub(HUBS[i].name,
                                              strlen(HUBS[i].name), &e);
        CHECK((rc == SIGNALR_OK) == HUBS[i].ok, HUBS[i].name);
        if (!HUBS[i].ok)
            CHECK(rc == SIGNALR_EINVAL && e.code == SIGNALR_EINVAL,
                  "hub: EINVAL");
        if (HUBS[i].msg)
            CHECK_STR(e.msg, HUBS[i].msg, "hub: message");
    }
    memset(big, 'a', sizeof(big));
    CHECK(!signalr_validate_hub(big, 128, &e), "hub: 128 chars ok");
    CHECK(signalr_validate_hub(big, 129, &e) == SIGNALR_EINVAL,
          "hub: 129 chars rejected");
    CHECK_STR(e.msg, "hub name is 129 characters, at most 128 allowed",
              "hub: length message");

    CHECK(!signalr_validate_group("g", 1, &e), "group: 1 char");
    CHECK(!signalr_validate_group(big, 1024, &e), "group: 1024 bytes");
    CHECK(signalr_validate_group(big, 1025, &e) == SIGNALR_EINVAL,
          "group: 1025 rejected");
    CHECK(signalr_validate_group("", 0, &e) == SIGNALR_EINVAL,
          "group: empty");
    CHECK_STR(e.msg, "group name is empty", "group: empty message");
    CHECK(signalr_validate_group(" \t ", 3, &e) == SIGNALR_EINVAL,
          "group: blank");
    CHECK_STR(e.msg, "group name is only white space", "group: blank msg");
    CHECK(!signalr_validate_group(" a ", 3, &e), "group: padded ok");
    CHECK(!signalr_validate_group("a/b?c d", 7, &e),
          "group: any char (escaped later)");
    CHECK(signalr_validate_group("a\0b", 3, &e) == SIGNALR_EINVAL,
          "group: NUL rejected");

    CHECK(!signalr_validate_id("user id", "u", 1, &e), "id ok");
    CHECK(signalr_validate_id("user id", "", 0, &e) == SIGNALR_EINVAL,
          "id empty");
    CHECK_STR(e.msg, "user id is empty", "id: message names the thing");
    CHECK(signalr_validate_id("user id", big, 1025, &e) == SIGNALR_EINVAL,
          "user id too long");
    CHECK_STR(e.msg, "user id is 1025 characters, at most 1024 allowed",
              "user id length message");
    CHECK(!signalr_validate_id("user id", big, 1024, &e), "user id at limit");
    /* the swagger sets no maximum on connection ids or targets */
    CHECK(!signalr_validate_id("connection id", big, 1025, &e),
          "connection id has no maximum");
    {
        /* lengths count characters: 1024 x U+00E9 is 2048 bytes */
        static char wide[2 * 1025 + 1];
        size_t k;

        for (k = 0; k < 1025; k++)
            memcpy(wide + 2 * k, "\xc3\xa9", 2);
        CHECK(!signalr_validate_id("user id", wide, 2048, &e),
              "1024 characters in 2048 bytes");
        CHECK(!signalr_validate_group(wide, 2048, &e), "group: 1024 chars");
        CHECK(signalr_validate_group(wide, 2050, &e) == SIGNALR_EINVAL,
              "group: 1025 chars");
        CHECK_STR(e.msg, "group name is 1025 characters, at most 1024 "
                         "allowed", "group length message");
    }
    for (i = 0; i < sizeof(BAD_TEXT) / sizeof(*BAD_TEXT); i++) {
        signalr_err rc = BAD_TEXT[i].group
            ? signalr_validate_group(BAD_TEXT[i].s, strlen(BAD_TEXT[i].s), &e)
            : signalr_validate_id("connection id", BAD_TEXT[i].s,
                                  strlen(BAD_TEXT[i].s), &e);

        CHECK(rc == (BAD_TEXT[i].msg ? SIGNALR_EINVAL : SIGNALR_OK),
              BAD_TEXT[i].s);
        if (BAD_TEXT[i].msg)
            CHECK_STR(e.msg, BAD_TEXT[i].msg, "bad text message");
    }
    CHECK(signalr_validate_id("user id", NULL, 0, NULL) == SIGNALR_EINVAL,
          "NULL string and NULL err");
    return t_done("test_validate");
}
