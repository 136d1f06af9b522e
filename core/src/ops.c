/* ops.c - the operation table: one row per REST operation, read by the
 * request builder, the reply reader and the retry policy.
 *
 * Routes: Azure SignalR data-plane REST API 2022-06-01 (also every later
 * api-version) and v1.  Path templates follow "/api/hubs/{hub}" (v1:
 * "/api/v1/hubs/{hub}"); %u, %g and %c stand for the escaped user, group
 * and connection id.  A NULL v1 path means v1 lacks the operation; `since`
 * names the first api-version that has a newer route.  Every row is
 * checked against the official swagger files by spec/conformance. */
#include "ops.h"

#include <string.h>

#define NOTEXISTED_CONN "Warning.Connection.NotExisted"

static const sr__op_row ROWS[SIGNALR_OP_MAX] = {
    /* name, method, path, v1 method, v1 path, flags, 404 code, since */
    {"broadcast", "POST", "/:send", "POST", "",
     F_BODY | F_EXCLUDED, NULL, NULL},
    {"to_user", "POST", "/users/%u/:send", "POST", "/users/%u",
     F_BODY | F_USER, NULL, NULL},
    {"to_group", "POST", "/groups/%g/:send", "POST", "/groups/%g",
     F_BODY | F_GROUP | F_EXCLUDED, NULL, NULL},
    {"to_connection", "POST", "/connections/%c/:send", "POST",
     "/connections/%c", F_BODY | F_CONN, NULL, NULL},
    {"add_connection_to_group", "PUT", "/groups/%g/connections/%c", "PUT",
     "/groups/%g/connections/%c", F_GROUP | F_CONN | F_IDEMPOTENT, NULL, NULL},
    {"remove_connection_from_group", "DELETE", "/groups/%g/connections/%c",
     "DELETE", "/groups/%g/connections/%c", F_GROUP | F_CONN | F_IDEMPOTENT,
     NULL, NULL},
    {"remove_connection_from_all_groups", "DELETE", "/connections/%c/groups",
     NULL, NULL, F_CONN | F_IDEMPOTENT, NULL, NULL},
    {"add_user_to_group", "PUT", "/users/%u/groups/%g", "PUT",
     "/groups/%g/users/%u", F_USER | F_GROUP | F_TTL | F_IDEMPOTENT, NULL, NULL},
    {"remove_user_from_group", "DELETE", "/users/%u/groups/%g", "DELETE",
     "/groups/%g/users/%u", F_USER | F_GROUP | F_IDEMPOTENT, NULL, NULL},
    {"remove_user_from_all_groups", "DELETE", "/users/%u/groups", "DELETE",
     "/users/%u/groups", F_USER | F_IDEMPOTENT, NULL, NULL},
    {"connection_exists", "HEAD", "/connections/%c", "GET",
     "/connections/%c", F_CONN | F_CHECK | F_IDEMPOTENT, NOTEXISTED_CONN, NULL},
    {"user_exists", "HEAD", "/users/%u", "GET", "/users/%u",
     F_USER | F_CHECK | F_IDEMPOTENT, "Warning.User.NotExisted", NULL},
    {"group_exists", "HEAD", "/groups/%g", "GET", "/groups/%g",
     F_GROUP | F_CHECK | F_IDEMPOTENT, "Warning.Group.NotExisted", NULL},
    {"user_in_group", "HEAD", "/users/%u/groups/%g", "GET",
     "/groups/%g/users/%u", F_USER | F_GROUP | F_CHECK | F_IDEMPOTENT,
     "Info.User.NotInGroup", NULL},
    /* Closing a connection that is already gone counts as done (as the
     * service SDK treats it). */
    {"close_connection", "DELETE", "/connections/%c", "DELETE",
     "/connections/%c", F_CONN | F_REASON | F_IDEMPOTENT, NOTEXISTED_CONN, NULL},
    {"close_all_connections", "POST", "/:closeConnections", NULL, NULL,
     F_EXCLUDED | F_REASON | F_IDEMPOTENT, NULL, NULL},
    {"close_group_connections", "POST", "/groups/%g/:closeConnections", NULL,
     NULL, F_GROUP | F_EXCLUDED | F_REASON | F_IDEMPOTENT, NULL, NULL},
    {"close_user_connections", "POST", "/users/%u/:closeConnections", NULL,
     NULL, F_USER | F_EXCLUDED | F_REASON | F_IDEMPOTENT, NULL, NULL},
    {"health", "HEAD", "/api/health", "HEAD", "/api/v1/health",
     F_NOHUB | F_NOAUTH | F_IDEMPOTENT, NULL, NULL},
    /* Newer routes (rest-2024.md): no v1 form, a minimum api-version. */
    {"generate_client_token", "POST", "/:generateToken", NULL, NULL,
     F_DATA | F_TOKEN | F_IDEMPOTENT, NULL, "2022-11-01"},
    {"group_connections", "GET", "/groups/%g/connections", NULL, NULL,
     F_GROUP | F_DATA | F_PAGE | F_IDEMPOTENT, NULL, "2024-12-01"},
    /* commands that may send messages: retried like a send */
    {"execute", "POST", "/:execute", NULL, NULL, F_EXEC, NULL, "2023-07-01"},
    /* a client result: the invocation reaches the client, never resent */
    {"invoke", "POST", "/connections/%c/:invoke", NULL, NULL,
     F_BODY | F_CONN | F_DATA, NULL, "2024-12-01"},
    /* Entra ID: a temporary access key to sign client tokens with
     * ({"KeyId","AccessKey"}), at the path the service SDK uses, with no
     * api-version (entra-id.md 8.1); the same for both families. */
    {"access_key", "GET", "/api/v1/auth/accessKey", "GET",
     "/api/v1/auth/accessKey",
     F_NOHUB | F_DATA | F_IDEMPOTENT | F_NOVERSION, NULL, NULL},
};

const sr__op_row *sr__op(signalr_op op)
{
    if ((unsigned)op >= SIGNALR_OP_MAX)
        return NULL;
    return &ROWS[op];
}

const char *signalr_op_name(signalr_op op)
{
    const sr__op_row *r = sr__op(op);

    return r ? r->name : NULL;
}

signalr_err signalr_op_find(const char *name, signalr_op *op)
{
    int i;

    for (i = 0; name && i < SIGNALR_OP_MAX; i++) {
        if (!strcmp(ROWS[i].name, name)) {
            *op = (signalr_op)i;
            return SIGNALR_OK;
        }
    }
    return SIGNALR_EINVAL;
}

int signalr_op_idempotent(signalr_op op)
{
    const sr__op_row *r = sr__op(op);

    return r && (r->flags & F_IDEMPOTENT);
}

int signalr_op_is_check(signalr_op op)
{
    const sr__op_row *r = sr__op(op);

    return r && (r->flags & F_CHECK);
}

const char *signalr_op_since(signalr_op op)
{
    const sr__op_row *r = sr__op(op);

    return r ? r->since : NULL;
}

int signalr_op_returns_data(signalr_op op)
{
    const sr__op_row *r = sr__op(op);

    return r && (r->flags & F_DATA);
}
