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
    CHECK(signalr_validate_id("connection id", big, 1025, &e) ==
              SIGNALR_EINVAL, "id too long");
    CHECK(signalr_validate_id("user id", NULL, 0, NULL) == SIGNALR_EINVAL,
          "NULL string and NULL err");
    return t_done("test_validate");
}
