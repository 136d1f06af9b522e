/* test_reply.c - reply mapping and the retry policy. */
#include "harness.h"
#include "signalr.h"

static const struct {
    signalr_op op;
    int status;
    const char *code, *body;
    signalr_err rc;
    int value;
    const char *msg;
} CASES[] = {
    {SIGNALR_OP_BROADCAST, 202, NULL, NULL, SIGNALR_OK, 1, NULL},
    {SIGNALR_OP_ADD_USER_TO_GROUP, 200, NULL, NULL, SIGNALR_OK, 1, NULL},
    {SIGNALR_OP_REMOVE_USER_FROM_GROUP, 204, NULL, NULL, SIGNALR_OK, 1, NULL},
    {SIGNALR_OP_USER_EXISTS, 200, NULL, NULL, SIGNALR_OK, 1, NULL},
    {SIGNALR_OP_USER_EXISTS, 404, "Warning.User.NotExisted", NULL,
     SIGNALR_OK, 0, NULL},
    /* error codes compare without regard to case, as the SDK does */
    {SIGNALR_OP_GROUP_EXISTS, 404, "warning.group.NOTEXISTED", NULL,
     SIGNALR_OK, 0, NULL},
    /* a bare 404 (a wrong endpoint, a proxy) is an error, as in the SDK */
    {SIGNALR_OP_GROUP_EXISTS, 404, NULL, NULL, SIGNALR_ESTATUS, 0,
     "HTTP 404 Not Found (check the endpoint, hub and ids)"},
    {SIGNALR_OP_CLOSE_CONNECTION, 404, NULL, NULL, SIGNALR_ESTATUS, 0, NULL},
    /* the SDK also takes a connection's absence as expected when adding
     * it to a group; lua-signalr reports it (see the README) */
    {SIGNALR_OP_ADD_CONNECTION_TO_GROUP, 404, "Error.Connection.NotExisted",
     NULL, SIGNALR_ESTATUS, 0, NULL},
    {SIGNALR_OP_GENERATE_CLIENT_TOKEN, 200, NULL, "{\"token\":\"t\"}",
     SIGNALR_OK, 1, NULL},
    {SIGNALR_OP_USER_IN_GROUP, 404, "Info.User.NotInGroup", NULL,
     SIGNALR_OK, 0, NULL},
    {SIGNALR_OP_CLOSE_CONNECTION, 404, "Warning.Connection.NotExisted", NULL,
     SIGNALR_OK, 1, NULL},
    /* a 404 naming another reason is a real error */
    {SIGNALR_OP_USER_EXISTS, 404, "Error.Hub.NotFound",
     "{\"code\":\"Error.Hub.NotFound\",\"message\":\"no such \\\"hub\\\"\"}",
     SIGNALR_ESTATUS, 0,
     "HTTP 404 Not Found (check the endpoint, hub and ids): no such \"hub\""},
    {SIGNALR_OP_SEND_TO_USER, 404, NULL, NULL, SIGNALR_ESTATUS, 0,
     "HTTP 404 Not Found (check the endpoint, hub and ids)"},
    {SIGNALR_OP_BROADCAST, 401, NULL, "token expired\n", SIGNALR_ESTATUS, 0,
     "HTTP 401 Unauthorized (check the AccessKey of the connection string "
     "and that the token's audience matches): token expired"},
    {SIGNALR_OP_BROADCAST, 413, NULL, NULL, SIGNALR_ESTATUS, 0,
     "HTTP 413 Payload Too Large (the service accepts 1 MB)"},
    {SIGNALR_OP_BROADCAST, 429, NULL, NULL, SIGNALR_ESTATUS, 0,
     "HTTP 429 Too Many Requests (quota or rate limit reached)"},
    {SIGNALR_OP_BROADCAST, 500, NULL, "{\"message\":\"boom\"}",
     SIGNALR_ESTATUS, 0, "HTTP 500 Internal Server Error: boom"},
    {SIGNALR_OP_BROADCAST, 302, NULL, NULL, SIGNALR_ESTATUS, 0,
     "HTTP 302 unexpected status"},
};

int main(void)
{
    signalr_retry_policy pol = {3, 100, 1000, SIGNALR_RETRY_EXPONENTIAL};
    signalr_error e;
    size_t i;

    for (i = 0; i < sizeof(CASES) / sizeof(*CASES); i++) {
        signalr_reply r;
        int v = -1;
        signalr_err rc;

        r.status = CASES[i].status;
        r.error_code = CASES[i].code;
        r.body = CASES[i].body;
        r.body_len = CASES[i].body ? strlen(CASES[i].body) : 0;
        rc = signalr_reply_read(CASES[i].op, &r, &v, &e);
        CHECK(rc == CASES[i].rc, "code");
        CHECK(v == CASES[i].value, "value");
        if (CASES[i].msg)
            CHECK_STR(e.msg, CASES[i].msg, "message");
        if (rc == SIGNALR_ESTATUS)
            CHECK(e.status == CASES[i].status, "status kept");
    }
    {
        const char *b = "{\"code\":\"Error.X\",\"message\":\"bad\"}";
        signalr_reply r;
        int v;

        r.status = 400;
        r.error_code = NULL;
        r.body = b;
        r.body_len = strlen(b);

        signalr_reply_read(SIGNALR_OP_BROADCAST, &r, &v, &e);
        CHECK_STR(e.service_code, "Error.X", "service code from the body");
    }

    /* retry policy */
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1, SIGNALR_ESTATUS,
                              503, -1) == 100, "send on 503");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 2, SIGNALR_ESTATUS,
                              502, -1) == 200, "backoff doubles");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 3, SIGNALR_ESTATUS,
                              502, -1) == 400, "backoff doubles again");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 4, SIGNALR_ESTATUS,
                              502, -1) == -1, "max retries");
    {
        /* fixed: the same delay every time, capped; the same rules */
        signalr_retry_policy fixed = {3, 300, 250, SIGNALR_RETRY_FIXED};

        fixed.max_delay_ms = 1000;
        CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &fixed, 1,
                                  SIGNALR_ESTATUS, 503, -1) == 300, "fixed 1");
        CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &fixed, 3,
                                  SIGNALR_ESTATUS, 503, -1) == 300, "fixed 3");
        CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &fixed, 4,
                                  SIGNALR_ESTATUS, 503, -1) == -1,
              "fixed: max retries");
        CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &fixed, 1,
                                  SIGNALR_ESTATUS, 500, -1) == -1,
              "fixed: a send not on 500");
        fixed.max_delay_ms = 250;
        CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &fixed, 2,
                                  SIGNALR_ECONNECT, 0, -1) == 250,
              "fixed: capped");
    }
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1, SIGNALR_ESTATUS,
                              500, -1) == -1, "send not on 500");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1,
                              SIGNALR_ETIMEDOUT, 0, -1) == -1,
          "send not on timeout");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1, SIGNALR_ECONNECT,
                              0, -1) == 100, "send on connect failure");
    CHECK(signalr_retry_delay(SIGNALR_OP_USER_EXISTS, &pol, 1,
                              SIGNALR_ESTATUS, 500, -1) == 100,
          "idempotent on 500");
    CHECK(signalr_retry_delay(SIGNALR_OP_USER_EXISTS, &pol, 1,
                              SIGNALR_ESTATUS, 408, -1) == 100,
          "idempotent on 408");
    CHECK(signalr_retry_delay(SIGNALR_OP_USER_EXISTS, &pol, 1,
                              SIGNALR_ETIMEDOUT, 0, -1) == 100,
          "idempotent on timeout");
    CHECK(signalr_retry_delay(SIGNALR_OP_USER_EXISTS, &pol, 1,
                              SIGNALR_ESTATUS, 400, -1) == -1, "not on 400");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1, SIGNALR_ESTATUS,
                              429, 0) == 0, "429 honours Retry-After: 0");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1, SIGNALR_ESTATUS,
                              429, 1) == 1000, "Retry-After: 1");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1, SIGNALR_ESTATUS,
                              429, 5) == -1, "Retry-After beyond the cap");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &pol, 1, SIGNALR_ESTATUS,
                              429, -1) == 100, "429 without Retry-After");
    CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, NULL, 1, SIGNALR_ECONNECT,
                              0, -1) == -1, "no policy, no retry");
    {
        signalr_retry_policy none = {0, 100, 1000, SIGNALR_RETRY_EXPONENTIAL};

        CHECK(signalr_retry_delay(SIGNALR_OP_BROADCAST, &none, 1,
                                  SIGNALR_ESTATUS, 429, 0) == -1,
              "retries disabled: 429 not retried");
    }
    /* error table */
    CHECK_STR(signalr_err_name(SIGNALR_ECONNSTR), "ECONNSTR", "name");
    CHECK_STR(signalr_strerror(SIGNALR_ETOOBIG),
              "request exceeds the service limits", "message");
    CHECK_STR(signalr_strerror((signalr_err)999), "unknown error", "range");
    CHECK_STR(signalr_err_name((signalr_err)-1), "EUNKNOWN", "range name");
    {
        signalr_op op;

        CHECK(!signalr_op_find("to_group", &op) &&
                  op == SIGNALR_OP_SEND_TO_GROUP, "op by name");
        CHECK(signalr_op_find("nope", &op) == SIGNALR_EINVAL, "unknown op");
        CHECK(signalr_op_name(SIGNALR_OP_MAX) == NULL, "op range");
    }
    return t_done("test_reply");
}
