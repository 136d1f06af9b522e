/* signalr.h - lua-signalr's portable C core: the one public header.
 *
 * The core parses Azure SignalR Service connection strings, signs and
 * verifies HS256 JWTs, validates names, builds REST requests and reads their
 * replies.  It never decides how bytes travel: a transport (the libcurl one
 * in this library, nginx cosockets, anything else) moves a built
 * signalr_request and hands the reply back to signalr_reply_read().
 *
 * All functions are re-entrant. Distinct handles may be used concurrently
 * from distinct threads; a single handle must not be used from two threads at
 * once. The core never calls curl_global_init(); the embedder (or the Lua
 * binding, once, at load) does, after checking CURL_VERSION_THREADSAFE.
 *
 * Memory: every pointer a function returns through an out-parameter is owned
 * by the caller and released with signalr_free() (never free(), in case the
 * library and caller use different C runtimes), unless its comment says it
 * is borrowed.  Secrets (the AccessKey, signed tokens) never appear in an
 * error message.
 */
#ifndef SIGNALR_H
#define SIGNALR_H

#include <stddef.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define SIGNALR_API __attribute__((visibility("default")))
#else
#define SIGNALR_API
#endif

#define SIGNALR_VERSION "0.2.0"

/* ===== limits (Azure SignalR REST API, "Limitation" section) ===== */
#define SIGNALR_MAX_BODY        (1024 * 1024) /* request body, bytes */
#define SIGNALR_MAX_HEADERS     (16 * 1024)   /* request line + headers */
#define SIGNALR_MAX_HUB         128           /* hub / application name */
#define SIGNALR_MAX_GROUP       1024          /* group name, bytes */
#define SIGNALR_MAX_ID          1024          /* user / connection id */
#define SIGNALR_MAX_CLIENT_TOKEN 4096         /* client token, chars */

/* ===== errors ===== */

/* One table: name, message.  New codes go only at the end: Lua code
 * matches on the names. */
#define SIGNALR_ERRORS(X)                                                   \
    X(OK,           "success")                                              \
    X(EINVAL,       "invalid argument")                                     \
    X(ENOMEM,       "out of memory")                                        \
    X(ECONNSTR,     "malformed connection string")                          \
    X(ECRYPTO,      "crypto failure")                                       \
    X(ETOOBIG,      "request exceeds the service limits")                   \
    X(EUNSUPPORTED, "operation not supported by this API version")          \
    X(ECONNECT,     "could not connect (request not sent)")                 \
    X(ETIMEDOUT,    "request timed out")                                    \
    X(EHTTP,        "HTTP transport failure")                               \
    X(ESTATUS,      "unexpected HTTP status")                               \
    X(ETOKEN,       "invalid token")                                        \
    X(EQUEUEFULL,   "asynchronous queue is full")                           \
    X(ECANCELED,    "request canceled before it completed")                 \
    X(EREPLY,       "malformed reply from the service")                     \
    X(EAUTH,        "Microsoft Entra ID refused the token request")         \
    X(EPROTOCOL,    "malformed hub protocol message")                       \
    X(ECLOSED,      "the client connection is closed")                      \
    X(ECLIENT,      "the client answered with an error")

typedef enum {
#define SIGNALR_X_(name, msg) SIGNALR_##name,
    SIGNALR_ERRORS(SIGNALR_X_)
#undef SIGNALR_X_
    SIGNALR_ERR_MAX
} signalr_err;

/* Optional detail of a failure, filled by any function taking one (a NULL
 * pointer is allowed everywhere).  msg never contains key material. */
typedef struct {
    signalr_err code;
    int status;            /* HTTP status for ESTATUS, else 0 */
    char service_code[96]; /* x-ms-error-code or ErrorDetail.code, or "" */
    char msg[512];         /* NUL-terminated, human readable */
    /* 1 when the request may have reached the service (ESTATUS: it did;
     * ETIMEDOUT, EHTTP, ECANCELED: some of it was sent, so a send may have
     * been delivered); 0 when it provably did not: do not resend a
     * message whose failure says 1 unless a duplicate is harmless. */
    int sent;
} signalr_error;

/* Message for a code; never NULL ("unknown error" when out of range). */
SIGNALR_API const char *signalr_strerror(signalr_err e);
/* Stable name for a code, e.g. "ECONNSTR"; never NULL ("EUNKNOWN"). */
SIGNALR_API const char *signalr_err_name(signalr_err e);

/* Release memory the core handed to the caller.  NULL is a no-op. */
SIGNALR_API void signalr_free(void *p);

/* ===== connection strings ===== */

typedef struct signalr_connstr signalr_connstr; /* opaque */

/* Parse "Endpoint=https://x.service.signalr.net;AccessKey=...;Version=1.0;"
 * (rules of the Azure SDK: keys case-insensitive, each part split on its
 * first '=', duplicates rejected, Endpoint required and absolute http(s),
 * Port 1-65535 overrides the endpoint's port, Version 1.x, optional
 * ClientEndpoint / ServerEndpoint, AccessKey required unless AuthType names
 * an Entra ID mode).  On success *out owns a new handle, released with
 * signalr_connstr_free(); on failure *out is NULL and err names the
 * offending key (never its value when it is the AccessKey). */
SIGNALR_API signalr_err signalr_connstr_parse(const char *s, size_t len,
                                              signalr_connstr **out,
                                              signalr_error *err);
SIGNALR_API void signalr_connstr_free(signalr_connstr *cs); /* NULL ok */

/* Borrowed strings, valid until signalr_connstr_free().  Endpoints are
 * "scheme://host[:port]" with the Port override applied and no trailing
 * slash; client/server endpoint fall back to the endpoint when absent. */
SIGNALR_API const char *signalr_connstr_endpoint(const signalr_connstr *cs);
SIGNALR_API const char *signalr_connstr_client_endpoint(
    const signalr_connstr *cs);
SIGNALR_API const char *signalr_connstr_server_endpoint(
    const signalr_connstr *cs);
/* "scheme://host" of Endpoint, without port: the base of every "aud". */
SIGNALR_API const char *signalr_connstr_audience_base(
    const signalr_connstr *cs);
SIGNALR_API const char *signalr_connstr_version(const signalr_connstr *cs);
/* Lower-cased AuthType, or "" for access-key authentication. */
SIGNALR_API const char *signalr_connstr_auth_type(const signalr_connstr *cs);
/* 1 when an AccessKey is present (the key itself is not exposed). */
SIGNALR_API int signalr_connstr_has_key(const signalr_connstr *cs);
/* Microsoft Entra ID keys (AuthType=azure...), borrowed, NULL when absent
 * or empty: ClientId, TenantId and ClientCert (or ClientCertPath, a file
 * path).  azure.app strings always have ClientId, TenantId and a secret
 * or a certificate. */
SIGNALR_API const char *signalr_connstr_client_id(const signalr_connstr *cs);
SIGNALR_API const char *signalr_connstr_tenant_id(const signalr_connstr *cs);
SIGNALR_API const char *signalr_connstr_client_cert(
    const signalr_connstr *cs);
/* ClientSecret, borrowed, NULL when absent; *len its length (len may be
 * NULL).  A secret: send it only to the identity platform's token
 * endpoint, never into a log or a message. */
SIGNALR_API const char *signalr_connstr_client_secret(
    const signalr_connstr *cs, size_t *len);

/* ===== JWT (RFC 7519, HS256 per RFC 7515) ===== */

/* Sign header {"alg":"HS256","typ":"JWT"} and payload_json (any JSON
 * object text, used as is) with key.  *out receives a NUL-terminated token
 * (free with signalr_free()), *outlen its length (outlen may be NULL). */
SIGNALR_API signalr_err signalr_jwt_sign(const char *payload_json,
                                         size_t payload_len,
                                         const unsigned char *key,
                                         size_t keylen, char **out,
                                         size_t *outlen, signalr_error *err);
/* signalr_jwt_sign() with "kid":kid in the header (kid NULL: none), as
 * tokens signed with a temporary access key carry (the service finds the
 * key by it).  kid must be 1-128 characters without '"', '\\' or control
 * bytes. */
SIGNALR_API signalr_err signalr_jwt_sign_kid(const char *payload_json,
                                             size_t payload_len,
                                             const unsigned char *key,
                                             size_t keylen, const char *kid,
                                             char **out, size_t *outlen,
                                             signalr_error *err);

/* Sign payload_json as an RS256 JWT with the RSA private key in the PEM
 * file pem_path, whose certificate (in the same file) names it in the
 * header: {"alg":"RS256","typ":"JWT","x5t":<SHA-1 thumbprint>,
 * "x5t#S256":<SHA-256 thumbprint>}, both base64url of the DER
 * certificate's digest.  For Microsoft Entra ID certificate credentials
 * (client assertions).  EINVAL when the file cannot be read or lacks a
 * matching key and certificate.  The same as
 * signalr_jwt_sign_rs256_cert() without a password. */
SIGNALR_API signalr_err signalr_jwt_sign_rs256(const char *payload_json,
                                               size_t payload_len,
                                               const char *pem_path,
                                               char **out, size_t *outlen,
                                               signalr_error *err);
/* signalr_jwt_sign_rs256() with the key and certificate of path, a PEM
 * file (its key encrypted with password, or not encrypted) or a PKCS#12
 * (PFX) file (password its password; NULL: none or the empty one).
 * password is borrowed, never copied nor shown: a wrong one is EINVAL
 * saying so.  Neither path nor password appears in err->msg. */
SIGNALR_API signalr_err signalr_jwt_sign_rs256_cert(const char *payload_json,
                                                    size_t payload_len,
                                                    const char *path,
                                                    const char *password,
                                                    char **out,
                                                    size_t *outlen,
                                                    signalr_error *err);

/* Verify token's HS256 signature against key (constant-time compare), that
 * its header says alg HS256, and when now > 0 that it carries a numeric
 * "exp" later than now.  On success *payload receives the decoded payload
 * JSON (free with signalr_free()), NUL-terminated, length in *payload_len
 * (may be NULL).  Failures are ETOKEN with the reason in err->msg. */
SIGNALR_API signalr_err signalr_jwt_verify(const char *token, size_t len,
                                           const unsigned char *key,
                                           size_t keylen, time_t now,
                                           char **payload,
                                           size_t *payload_len,
                                           signalr_error *err);

/* ===== RS256 verification (upstream bearer tokens) ===== */

/* A set of RSA public keys that RS256 tokens are checked against (the
 * Microsoft Entra ID keys of a tenant, or keys the user trusts).  Made
 * with signalr_keyset_new() (NULL: out of memory), filled with
 * signalr_keyset_add_pem() / _add_jwk(), released with
 * signalr_keyset_free() (NULL is allowed).  It holds copies: the caller
 * keeps ownership of everything it passes.  At most 64 keys; RSA of at
 * least 2048 bits only.  Read-only once filled: one set may be used from
 * several threads at once by signalr_jwt_verify_rs256(). */
typedef struct signalr_keyset signalr_keyset;

SIGNALR_API signalr_keyset *signalr_keyset_new(void);
SIGNALR_API void signalr_keyset_free(signalr_keyset *ks);
/* How many keys ks holds (0 for NULL). */
SIGNALR_API size_t signalr_keyset_count(const signalr_keyset *ks);
/* Add the RSA public key of pem[0..len): a "PUBLIC KEY" (SubjectPublicKey
 * Info) or a "CERTIFICATE" (its key; the certificate itself is not
 * checked).  kid (NULL: none) names it: a token whose header carries a
 * kid is checked only with the keys of that kid and the keys without one.
 * EINVAL: not such PEM text, not RSA, under 2048 bits, a bad kid. */
SIGNALR_API signalr_err signalr_keyset_add_pem(signalr_keyset *ks,
                                               const char *pem, size_t len,
                                               const char *kid,
                                               signalr_error *err);
/* Add the RSA public key of a JSON Web Key (RFC 7518 section 6.3): n and
 * e are the base64url members of the same names, without quotes.  kid as
 * for signalr_keyset_add_pem().  EINVAL when n or e is malformed. */
SIGNALR_API signalr_err signalr_keyset_add_jwk(signalr_keyset *ks,
                                               const char *n, size_t nlen,
                                               const char *e, size_t elen,
                                               const char *kid,
                                               signalr_error *err);
/* Check token[0..len), a JWS compact serialization: its header is a JSON
 * object with "alg":"RS256" and an optional plain-string "kid", and its
 * RSASSA-PKCS1-v1_5 SHA-256 signature verifies with a key of ks (the
 * keys of its kid, see above).  On success *payload receives the decoded
 * payload, a JSON object, NUL-terminated (free with signalr_free()), its
 * length in *payload_len (may be NULL).  The claims (exp, nbf, iss, aud)
 * are NOT checked: read them from the payload.  Failures are ETOKEN with
 * the reason in err->msg (never a byte of the token). */
SIGNALR_API signalr_err signalr_jwt_verify_rs256(const signalr_keyset *ks,
                                                 const char *token,
                                                 size_t len, char **payload,
                                                 size_t *payload_len,
                                                 signalr_error *err);

/* ===== URLs (RFC 3986) ===== */

/* Percent-encode src so that only unreserved characters (A-Z a-z 0-9 - . _
 * ~) stay literal.  Works like snprintf: returns the length needed
 * (excluding the NUL) and writes at most dstlen bytes, NUL-terminated when
 * dstlen > 0. */
SIGNALR_API size_t signalr_url_encode(char *dst, size_t dstlen,
                                      const char *src, size_t srclen);
/* Decode %XX escapes (and '+' to space when plus_is_space) into dst, which
 * must hold srclen + 1 bytes.  Returns the decoded length, or (size_t)-1 on
 * a malformed escape.  dst may equal src. */
SIGNALR_API size_t signalr_url_decode(char *dst, const char *src,
                                      size_t srclen, int plus_is_space);

/* ===== validation (before any I/O) ===== */

/* Each returns SIGNALR_OK or EINVAL with the reason in err->msg.  The
 * rules are the swagger's (v1 and 2022-06-01+; a rule either file states
 * for a parameter holds wherever that parameter appears), read as the
 * ECMA-262 regular expressions JSON Schema patterns are:
 * Hub / application: ^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$.
 * Group: 1-1024 characters, ^(?!\s+$).+$ (no line terminator: LF, CR,
 * U+2028, U+2029; not only white space), valid UTF-8.  User ids: 1-1024
 * characters.  Other ids (what names it: connection ids, targets): at
 * least 1 byte.  None may contain a NUL byte (len is the size). */
SIGNALR_API signalr_err signalr_validate_hub(const char *s, size_t len,
                                             signalr_error *err);
SIGNALR_API signalr_err signalr_validate_group(const char *s, size_t len,
                                               signalr_error *err);
SIGNALR_API signalr_err signalr_validate_id(const char *what, const char *s,
                                            size_t len, signalr_error *err);

/* ===== operations: one table drives builder, reader and retry ===== */

#define SIGNALR_OPS(X)                                                      \
    X(BROADCAST,                    "broadcast")                            \
    X(SEND_TO_USER,                 "to_user")                              \
    X(SEND_TO_GROUP,                "to_group")                             \
    X(SEND_TO_CONNECTION,           "to_connection")                        \
    X(ADD_CONNECTION_TO_GROUP,      "add_connection_to_group")              \
    X(REMOVE_CONNECTION_FROM_GROUP, "remove_connection_from_group")         \
    X(REMOVE_CONNECTION_FROM_ALL_GROUPS,                                    \
      "remove_connection_from_all_groups")                                  \
    X(ADD_USER_TO_GROUP,            "add_user_to_group")                    \
    X(REMOVE_USER_FROM_GROUP,       "remove_user_from_group")               \
    X(REMOVE_USER_FROM_ALL_GROUPS,  "remove_user_from_all_groups")          \
    X(CONNECTION_EXISTS,            "connection_exists")                    \
    X(USER_EXISTS,                  "user_exists")                          \
    X(GROUP_EXISTS,                 "group_exists")                         \
    X(USER_IN_GROUP,                "user_in_group")                        \
    X(CLOSE_CONNECTION,             "close_connection")                     \
    X(CLOSE_ALL_CONNECTIONS,        "close_all_connections")                \
    X(CLOSE_GROUP_CONNECTIONS,      "close_group_connections")              \
    X(CLOSE_USER_CONNECTIONS,       "close_user_connections")               \
    X(HEALTH,                       "health")                               \
    X(GENERATE_CLIENT_TOKEN,        "generate_client_token")                \
    X(LIST_GROUP_CONNECTIONS,       "group_connections")                    \
    X(EXECUTE,                      "execute")                              \
    X(INVOKE,                       "invoke")                               \
    X(ACCESS_KEY,                   "access_key")

typedef enum {
#define SIGNALR_X_(name, str) SIGNALR_OP_##name,
    SIGNALR_OPS(SIGNALR_X_)
#undef SIGNALR_X_
    SIGNALR_OP_MAX
} signalr_op;

/* "broadcast", ... ; NULL when out of range. */
SIGNALR_API const char *signalr_op_name(signalr_op op);
/* Look an operation up by name; EINVAL when unknown. */
SIGNALR_API signalr_err signalr_op_find(const char *name, signalr_op *op);
/* 1 for operations that are safe to repeat (all but the sends). */
SIGNALR_API int signalr_op_idempotent(signalr_op op);
/* 1 for existence checks (their result is a boolean). */
SIGNALR_API int signalr_op_is_check(signalr_op op);
/* The first api-version that has the operation's route ("2022-11-01"),
 * or NULL when 2022-06-01 (and, unless EUNSUPPORTED says so, v1) has it.
 * Building it for an older api_version fails with EUNSUPPORTED. */
SIGNALR_API const char *signalr_op_since(signalr_op op);
/* 1 for operations whose result is the reply's JSON body (listings,
 * generated tokens): use signalr_call_data() for them. */
SIGNALR_API int signalr_op_returns_data(signalr_op op);

/* ===== clients and requests ===== */

typedef struct signalr_client signalr_client; /* opaque */

/* Supplies a bearer token for Entra ID (AuthType=azure...) clients.  Write
 * a NUL-terminated token into buf and return its length, or return 0 on
 * failure.  aud is the request's audience. */
typedef size_t (*signalr_token_fn)(void *ud, const char *aud, char *buf,
                                   size_t buflen);

typedef struct {
    const char *api_version;  /* NULL: "2022-06-01"; "v1" or a later date */
    const char *application;  /* NULL: none; validated like a hub name */
    const char *user_agent;   /* NULL: "lua-signalr/<version>" */
    /* Sent as Asrs-User-Agent, as the service SDK sends its product info;
     * NULL: "lua-signalr/<version>". */
    const char *product_info;
    long token_lifetime;      /* REST token lifetime, s; <= 0: 3600 */
    signalr_token_fn token_fn;/* Entra ID clients only */
    void *token_ud;
} signalr_client_options;

/* Create a client from a connection string (opts may be NULL).  No I/O.
 * Release with signalr_client_free().  The options' strings are copied. */
SIGNALR_API signalr_err signalr_client_new(const char *connstr, size_t len,
                                           const signalr_client_options *o,
                                           signalr_client **out,
                                           signalr_error *err);
SIGNALR_API void signalr_client_free(signalr_client *c); /* NULL ok */
/* Borrowed: the parsed connection string, valid while c lives. */
SIGNALR_API const signalr_connstr *signalr_client_connstr(
    const signalr_client *c);
/* 1 when the client speaks the v1 route family. */
SIGNALR_API int signalr_client_is_v1(const signalr_client *c);
/* Give a client without an AccessKey (Entra ID) the temporary access key
 * the service issued (GET /api/v1/auth/accessKey, operation ACCESS_KEY:
 * {"KeyId":..., "AccessKey":...}).  signalr_client_negotiate() then signs
 * client tokens with it, "kid" in their header.  The key is copied (and
 * wiped when replaced or freed); key NULL forgets it.  EINVAL for a client
 * that has an AccessKey of its own, an empty key or a bad kid. */
SIGNALR_API signalr_err signalr_client_set_access_key(signalr_client *c,
                                                      const char *kid,
                                                      const char *key,
                                                      size_t keylen,
                                                      signalr_error *err);

/* What an operation needs; unused fields are ignored.  Strings are
 * len-delimited by strlen (they must not contain NUL bytes).  Zero the
 * whole struct before filling it (memset, or = {0}): a field added in a
 * later version then stays unused. */
#define SIGNALR_TTL_NONE (-2147483647L - 1)

typedef struct {
    const char *hub;          /* always */
    const char *user;         /* user-scoped operations */
    const char *group;        /* group-scoped operations */
    const char *connection;   /* connection-scoped operations */
    const char *target;       /* sends: the client method name */
    const char *arguments;    /* sends: JSON array text; NULL means [] */
    size_t arguments_len;
    const char *const *excluded; /* broadcast / group send / close-many */
    size_t excluded_count;
    const char *reason;       /* close operations; NULL: none */
    long ttl;                 /* add_user_to_group; SIGNALR_TTL_NONE: unset */
    const char *bearer;       /* a ready token to use instead of signing */
    /* generate_client_token: userId (the user field) and minutesToExpire
     * (0: not sent, the service's default of 60; else 1-2147483647). */
    long minutes_to_expire;
    /* group_connections: top (0: all), maxpagesize (0: the service's
     * default of 200; else 1-200) and the continuationToken of the page
     * to fetch (NULL: the first). */
    long top;
    long max_page_size;
    const char *continuation_token;
    /* execute: the commands, a JSON array of SignalRCommand objects
     * ({"type":"SendMessage","message":{...}}, "JoinGroup", "LeaveGroup",
     * "CloseConnection"), and an OData filter choosing the connections
     * (NULL: all of the hub's). */
    const char *commands;
    size_t commands_len;
    const char *filter;
    /* sends: nonzero when arguments is known to be valid UTF-8 JSON, an
     * array (a caller that made the text itself): not checked again;
     * a wrong one makes a wrong request.  Zeroed: checked. */
    int arguments_checked;
} signalr_params;

/* A built request.  Every pointer is owned by the request; release with
 * signalr_request_clear() (which leaves it zeroed; clearing twice is ok). */
typedef struct {
    signalr_op op;
    const char *method;       /* static string: "POST", "HEAD", ... */
    char *url;                /* full URL with query */
    char *host;               /* host name (no brackets, no port) */
    int port;                 /* effective TCP port */
    int tls;                  /* 1 for https */
    char *path;               /* path and query, for the request line */
    char *authorization;      /* "Bearer ..." or NULL (health) */
    char *body;               /* NULL when the request has none */
    size_t body_len;
    const char *content_type; /* static, NULL without body */
    const char *user_agent;   /* borrowed from the client */
    int idempotent;
    const char *product_info; /* Asrs-User-Agent, borrowed from the client */
    /* Further header lines, each "Name: value\r\n", or NULL (identity
     * requests: signalr_request_http()). */
    char *headers;
} signalr_request;

/* Build the request for op (pure: the same client state, params and now
 * give the same bytes).  Validates every input first: nothing is built for
 * a bad input.  Signed tokens are cached in c per audience until 5 minutes
 * before expiry, so c is modified. */
SIGNALR_API signalr_err signalr_request_build(signalr_client *c,
                                              signalr_op op,
                                              const signalr_params *p,
                                              time_t now,
                                              signalr_request *out,
                                              signalr_error *err);
SIGNALR_API void signalr_request_clear(signalr_request *r);

/* The request as it goes on the wire over HTTP/1.1, in one buffer: the
 * request line, Host, its headers, Content-Length where it has a body (or
 * is not GET/HEAD), the blank line, the body.  For transports that move
 * the bytes themselves (nginx cosockets).  On success *out owns a new
 * buffer of *len bytes (not NUL-terminated): release it with
 * signalr_free(); on failure *out is NULL. */
SIGNALR_API signalr_err signalr_request_wire(const signalr_request *r,
                                             char **out, size_t *len,
                                             signalr_error *err);

/* A request that is not a SignalR operation: the identity platform's
 * token endpoint, a managed-identity endpoint.  op is SIGNALR_OP_MAX;
 * url must be absolute http(s) without user info or fragment; headers are
 * nheaders name/value pairs (names are tokens, values printable, no line
 * breaks); body may be NULL, else content_type names it.  Such requests
 * are safe to repeat: signalr_retry_delay() retries them on any transport
 * failure, 408, 429 and 5xx.  Release with signalr_request_clear(). */
SIGNALR_API signalr_err signalr_request_http(const char *method,
                                             const char *url,
                                             const char *const *headers,
                                             size_t nheaders,
                                             const char *body,
                                             size_t body_len,
                                             const char *content_type,
                                             signalr_request *out,
                                             signalr_error *err);

/* ===== replies ===== */

typedef struct {
    int status;               /* HTTP status */
    const char *error_code;   /* x-ms-error-code header, or NULL */
    const char *body;         /* may be NULL */
    size_t body_len;
} signalr_reply;

/* A reply read by signalr_reply_parse. */
typedef struct {
    int status;               /* HTTP status (the final one: 1xx skipped) */
    int keep_alive;           /* 1: the connection may carry another
                                 request (0 also when bytes came past the
                                 reply: see extra) */
    int extra;                /* 1: bytes came past the reply */
    char error_code[96];      /* x-ms-error-code, "" when absent */
    long retry_after_s;       /* Retry-After in seconds, -1 when absent */
    char *body;               /* owned by the caller (signalr_free); NULL
                                 when the reply had none */
    size_t body_len;          /* at most `keep` bytes are kept */
    int truncated;            /* 1: the body was longer than `keep` */
} signalr_parsed_reply;

/* Read one HTTP/1.x reply from the first n bytes a connection gave so far,
 * for transports that move the bytes themselves (nginx cosockets): head
 * when the request was HEAD, eof when the connection closed after these
 * bytes.  SIGNALR_OK with *done = 0: the reply has not come whole (read
 * more, call again with all the bytes); *done = 1: out holds it (free
 * out->body).  EHTTP ("malformed reply: ...") for bytes that are not an
 * HTTP/1.x reply, or a close before the reply ended.  At most keep body
 * bytes are kept (the rest is read and dropped). */
SIGNALR_API signalr_err signalr_reply_parse(const char *p, size_t n, int head,
                                            int eof, size_t keep, int *done,
                                            signalr_parsed_reply *out,
                                            signalr_error *err);

/* The same reader for a reply that comes in parts, fed as they arrive
 * (linear in the reply's size): make one per reply, feed each part
 * (n = 0 with eof when the connection closed), read out once *done, then
 * free it (NULL ok).  signalr_reply_parse is one feed of a fresh one. */
typedef struct signalr_reply_reader signalr_reply_reader;
SIGNALR_API signalr_err signalr_reply_reader_new(int head, size_t keep,
                                                 signalr_reply_reader **out,
                                                 signalr_error *err);
SIGNALR_API signalr_err signalr_reply_reader_feed(signalr_reply_reader *r,
                                                  const char *p, size_t n,
                                                  int eof, int *done,
                                                  signalr_parsed_reply *out,
                                                  signalr_error *err);
SIGNALR_API void signalr_reply_reader_free(signalr_reply_reader *r);

/* Turn a reply into the operation's result: SIGNALR_OK with *value = 1
 * (success / exists) or 0 (an existence check answered "not found"), or
 * ESTATUS with err->status, err->service_code and a message naming the
 * status and the service's own message.  Any 2xx is success. */
SIGNALR_API signalr_err signalr_reply_read(signalr_op op,
                                           const signalr_reply *r,
                                           int *value, signalr_error *err);

/* ===== retries ===== */

/* How the delay between attempts grows (the service SDK's
 * ServiceManagerRetryMode). */
typedef enum {
    SIGNALR_RETRY_EXPONENTIAL = 0, /* base, 2 base, 4 base, ... (capped) */
    SIGNALR_RETRY_FIXED            /* base every time (capped) */
} signalr_retry_mode;

typedef struct {
    int max_retries;          /* extra attempts after the first; 0: none */
    long base_delay_ms;       /* first backoff delay; the delay when fixed */
    long max_delay_ms;        /* cap on any delay (and on Retry-After) */
    signalr_retry_mode mode;  /* 0: exponential */
} signalr_retry_policy;

/* Decide whether attempt number `attempt` (1 = the first) that failed with
 * `failure` (ECONNECT, ETIMEDOUT, EHTTP or ESTATUS with `status`) is
 * retried.  Returns the delay in ms before the next attempt, or -1.
 * Sends retry only on ECONNECT and status > 500; idempotent operations
 * also on 500, 408, ETIMEDOUT and EHTTP; 429 is retried after Retry-After
 * seconds (retry_after_s >= 0) or the backoff delay.  Backoff is
 * base * 2^(attempt-1) (SIGNALR_RETRY_FIXED: base), capped. */
SIGNALR_API long signalr_retry_delay(signalr_op op,
                                     const signalr_retry_policy *policy,
                                     int attempt, signalr_err failure,
                                     int status, long retry_after_s);

/* ===== negotiate (client tokens, no I/O) ===== */

/* Produce what a client's negotiate endpoint returns: *url is
 * "<ClientEndpoint or Endpoint>/client/?hub=<lower hub>" and *token a JWT
 * with aud "<audience base>/client/?hub=<lower hub>", exp = now + lifetime
 * (lifetime <= 0: 3600), iat, nbf, and when user_id is given nameid and
 * asrs.s.uid.  extra_claims, when not NULL, is a JSON object whose members
 * are added (they must not repeat the claims above).  Both outputs are
 * freed with signalr_free().  ETOOBIG when the token exceeds 4096 chars. */
SIGNALR_API signalr_err signalr_client_negotiate(signalr_client *c,
                                                 const char *hub,
                                                 const char *user_id,
                                                 const char *extra_claims,
                                                 long lifetime, time_t now,
                                                 char **url, char **token,
                                                 signalr_error *err);

/* signalr_client_negotiate() with flags, the service SDK's
 * NegotiationOptions written into the token as its ClaimsUtility writes
 * them: SIGNALR_NEGOTIATE_DIAGNOSTIC (IsDiagnosticClient) adds
 * "asrs.s.dc":"true", SIGNALR_NEGOTIATE_DETAILED_ERRORS
 * (EnableDetailedErrors: a close reason reaches the client) adds
 * "asrs.s.derror":"True"; extra_claims must not repeat them.  Unknown
 * flag bits are ignored. */
#define SIGNALR_NEGOTIATE_DIAGNOSTIC 1u
#define SIGNALR_NEGOTIATE_DETAILED_ERRORS 2u
SIGNALR_API signalr_err signalr_client_negotiate_with(signalr_client *c,
                                                      const char *hub,
                                                      const char *user_id,
                                                      const char *extra_claims,
                                                      unsigned flags,
                                                      long lifetime,
                                                      time_t now, char **url,
                                                      char **token,
                                                      signalr_error *err);

/* Persistent mode: the URL of a server connection,
 * "<ServerEndpoint or Endpoint>/server/?hub=<lower(app)_>lower(hub)" with
 * an http(s) scheme, and (token not NULL) its HS256 token: aud is
 * "<scheme>://<Endpoint host>/server/?hub=..." (no port), nameid the
 * server id, lifetime seconds (0: one hour).  With token NULL only the
 * URL is made (Microsoft Entra ID: the bearer is the identity's token). */
SIGNALR_API signalr_err signalr_client_server_token(signalr_client *c,
                                                    const char *hub,
                                                    const char *server_id,
                                                    long lifetime, time_t now,
                                                    char **url, char **token,
                                                    signalr_error *err);

/* ===== HTTP transport (libcurl easy, blocking, keep-alive) ===== */

typedef struct signalr_http signalr_http; /* opaque; one reusable handle */

/* The levels of what the core logs. */
typedef enum {
    SIGNALR_LOG_DEBUG = 0,
    SIGNALR_LOG_INFO,
    SIGNALR_LOG_WARN,
    SIGNALR_LOG_ERROR
} signalr_log_level;

/* Called with one line the core logs (a retry it schedules): msg is
 * borrowed for the call, NUL-terminated, and never holds key material or
 * tokens.  ud is the options' log_ud. */
typedef void (*signalr_log_fn)(void *ud, signalr_log_level level,
                               const char *msg);

typedef struct {
    long timeout_ms;          /* whole exchange; <= 0: 10000 */
    long connect_timeout_ms;  /* <= 0: min(timeout, 5000) */
    int verify_tls;           /* 0 disables certificate checks */
    const char *ca_file;      /* NULL: the system store */
    signalr_log_fn log;       /* NULL: nothing is logged */
    void *log_ud;             /* borrowed: handed to log */
    /* "http://host:port" (or any proxy URL libcurl takes): every request
     * goes through it (https by a CONNECT tunnel), NO_PROXY of the
     * environment still honoured; NULL: the environment's http_proxy,
     * HTTPS_PROXY, NO_PROXY... as libcurl reads them.  Borrowed. */
    const char *proxy;
} signalr_http_options;

typedef struct {
    int status;
    char error_code[96];      /* x-ms-error-code, "" when absent */
    long retry_after_s;       /* Retry-After in seconds, -1 when absent */
    const char *body;         /* borrowed: valid until the next perform */
    size_t body_len;          /* at most the first 64 KiB are kept */
} signalr_http_reply;

SIGNALR_API signalr_err signalr_http_new(signalr_http **out,
                                         signalr_error *err);
SIGNALR_API void signalr_http_free(signalr_http *h); /* NULL ok */

/* Send one built request and wait for the reply.  Transport failures are
 * ECONNECT (nothing was sent), ETIMEDOUT or EHTTP; any HTTP status is
 * SIGNALR_OK with the status in *reply (mapping is signalr_reply_read()'s
 * job). */
SIGNALR_API signalr_err signalr_http_perform(signalr_http *h,
                                             const signalr_request *req,
                                             const signalr_http_options *o,
                                             signalr_http_reply *reply,
                                             signalr_error *err);

/* Build, send, read and retry per policy (NULL: no retries), sleeping
 * between attempts.  *value as in signalr_reply_read(). */
SIGNALR_API signalr_err signalr_call(signalr_client *c, signalr_http *h,
                                     signalr_op op, const signalr_params *p,
                                     const signalr_http_options *o,
                                     const signalr_retry_policy *policy,
                                     int *value, signalr_error *err);

/* Send a built request (any: signalr_request_http() ones too) with the
 * policy's retries, and keep the reply whatever its status: the caller
 * reads reply->status and reply->body (borrowed, valid until the next
 * perform on h).  Transport failures as in signalr_http_perform(). */
SIGNALR_API signalr_err signalr_http_fetch(signalr_http *h,
                                           const signalr_request *req,
                                           const signalr_http_options *o,
                                           const signalr_retry_policy *policy,
                                           signalr_http_reply *reply,
                                           signalr_error *err);

/* signalr_call() for operations that answer with data
 * (signalr_op_returns_data()): on success *body receives the reply's body,
 * NUL-terminated (free with signalr_free()), and *body_len its length (may
 * be NULL).  For other operations *body is NULL and *value as in
 * signalr_call().  Bodies up to 8 MiB are kept. */
SIGNALR_API signalr_err signalr_call_data(signalr_client *c, signalr_http *h,
                                          signalr_op op,
                                          const signalr_params *p,
                                          const signalr_http_options *o,
                                          const signalr_retry_policy *policy,
                                          int *value, char **body,
                                          size_t *body_len,
                                          signalr_error *err);

/* ===== asynchronous transport (libcurl multi) ===== */

/* Many requests in flight over a pool of keep-alive connections, driven by
 * the caller's loop: submit, then step (or wait on the descriptors from
 * signalr_multi_fds() for signalr_multi_timeout() ms, then step), then
 * collect outcomes with signalr_multi_next().  Every submitted request ends
 * in exactly one outcome: success, an error, or ECANCELED when canceled.
 * Retries follow the policy, scheduled without blocking. */
typedef struct signalr_multi signalr_multi; /* opaque */

typedef struct {
    unsigned long id;         /* as returned by signalr_multi_submit() */
    signalr_op op;            /* SIGNALR_OP_MAX: signalr_multi_fetch() */
    signalr_err rc;           /* SIGNALR_OK or the failure */
    int value;                /* as in signalr_reply_read() */
    signalr_error err;        /* detail when rc != SIGNALR_OK */
    /* signalr_multi_fetch() requests: the reply's status and body, owned
     * by the outcome's reader (signalr_free()); rc is SIGNALR_OK for any
     * status.  Operations that answer with data (signalr_op_returns_data())
     * that succeeded: the status and body the same way (the body as
     * signalr_call_data() gives it).  0 and NULL otherwise. */
    int status;
    char *body;
    size_t body_len;
} signalr_outcome;

/* c is borrowed and must outlive m.  max_queue bounds the requests that
 * are submitted and not yet collected (0: 1024); max_host_connections caps
 * parallel connections per endpoint (0: 8). */
SIGNALR_API signalr_err signalr_multi_new(signalr_client *c,
                                          const signalr_http_options *o,
                                          const signalr_retry_policy *p,
                                          size_t max_queue,
                                          long max_host_connections,
                                          signalr_multi **out,
                                          signalr_error *err);
/* Frees m; requests still in flight are dropped without an outcome, so
 * call signalr_multi_cancel() and collect first.  NULL is a no-op. */
SIGNALR_API void signalr_multi_free(signalr_multi *m);
/* Build and queue a request.  A bad input fails here (nothing is queued);
 * EQUEUEFULL when max_queue outcomes are pending.  Every operation may be
 * queued: those that answer with data carry the body in their outcome. */
SIGNALR_API signalr_err signalr_multi_submit(signalr_multi *m, signalr_op op,
                                             const signalr_params *p,
                                             unsigned long *id,
                                             signalr_error *err);
/* Queue a built request (signalr_request_http()), taking it over: *req is
 * zeroed, also on failure.  Its outcome carries the status and body, with
 * the policy's retries (5xx, 429, 408, transport failures).  EQUEUEFULL
 * as for submit. */
SIGNALR_API signalr_err signalr_multi_fetch(signalr_multi *m,
                                            signalr_request *req,
                                            unsigned long *id,
                                            signalr_error *err);
/* Wait up to timeout_ms (0: do not wait) for activity and make progress. */
SIGNALR_API signalr_err signalr_multi_step(signalr_multi *m, long timeout_ms,
                                           signalr_error *err);
/* Pop the next finished outcome: 1 when *out was filled, else 0. */
SIGNALR_API int signalr_multi_next(signalr_multi *m, signalr_outcome *out);
/* Outcomes not yet collected (in flight, waiting to retry, finished). */
SIGNALR_API size_t signalr_multi_pending(const signalr_multi *m);
/* End every unfinished request with ECANCELED (collect them next). */
SIGNALR_API void signalr_multi_cancel(signalr_multi *m);
/* End the one request submitted as id with ECANCELED, whatever stage it is
 * in (queued, connecting, on the wire, waiting to retry); its outcome is
 * collected as any other (err.sent: whether it may have reached the
 * service).  Returns 1 when it was ended, 0 when id is not in flight (its
 * outcome is ready already, or was collected). */
SIGNALR_API int signalr_multi_cancel_one(signalr_multi *m, unsigned long id);
/* Milliseconds until signalr_multi_step() is due: 0 now, -1 no timer. */
SIGNALR_API long signalr_multi_timeout(signalr_multi *m);
/* The descriptors libcurl wants watched, exactly (any number, any fd
 * value): fills fds/events (1 read, 2 write) with at most max of them and
 * returns how many there are (more than max: call again with room; fds
 * and events may be NULL when max is 0).  The
 * set changes as transfers start and end. */
SIGNALR_API int signalr_multi_fds(signalr_multi *m, int *fds, int *events,
                                  int max);
/* One descriptor for the whole client, readable when signalr_multi_step()
 * has socket work (an epoll descriptor, Linux); -1 where there is none
 * (wait on signalr_multi_fds() instead).  Owned by m.  Wait for it to be
 * readable, or for signalr_multi_timeout(), then step(m, 0). */
SIGNALR_API int signalr_multi_pollfd(const signalr_multi *m);

/* ===== serverless upstream: the X-ASRS-Signature header ===== */

/* The service signs each upstream request with every access key:
 * "sha256=" + hex(HMAC-SHA256(key = the AccessKey string's bytes, message
 * = the X-ASRS-Connection-Id)), one item per key, joined by ",". */
#define SIGNALR_SIGNATURE_LEN 71 /* "sha256=" + 64 hex digits */

/* Write the signature of connection_id (id_len bytes) under access_key
 * into out (SIGNALR_SIGNATURE_LEN + 1 bytes, NUL-terminated; uppercase
 * hex, as the service's emulator writes it).  ECRYPTO if OpenSSL fails. */
SIGNALR_API signalr_err signalr_upstream_sign(const char *access_key,
                                              const char *connection_id,
                                              size_t id_len, char *out,
                                              signalr_error *err);
/* Does header (header_len bytes: items "sha256=<hex>" separated by ",",
 * spaces around items ignored, hex in either case) hold the signature of
 * connection_id under one of the nkeys keys?  Compares in constant time
 * for a given header length.  Returns the index of the first key that
 * matches (0-based), -1 when none does, -2 when the header is malformed
 * (an item that is not "sha256=" + 64 hex digits), -3 when OpenSSL
 * fails.  Neither keys nor the header are kept. */
SIGNALR_API int signalr_upstream_verify(const char *header, size_t header_len,
                                        const char *connection_id,
                                        size_t id_len,
                                        const char *const *keys, size_t nkeys);

/* ===== one descriptor over several (several endpoints) ===== */

/* A set of descriptors that is itself one pollable descriptor (an epoll
 * descriptor holding others, Linux), so a loop can wait on several
 * clients' signalr_multi_pollfd() at once.  The set does not own the
 * descriptors it watches; it owns its own (closed by _free). */
typedef struct signalr_pollset signalr_pollset;

/* *out = the new set; SIGNALR_EUNSUPPORTED where there is no epoll. */
SIGNALR_API signalr_err signalr_pollset_new(signalr_pollset **out,
                                            signalr_error *err);
/* Watch fd for readability (adding one twice is not an error). */
SIGNALR_API signalr_err signalr_pollset_add(signalr_pollset *s, int fd,
                                            signalr_error *err);
/* Watch fd for events (1 readable, 2 writable, both: 3), replacing what
 * it was watched for (persistent mode: a socket with bytes to write). */
SIGNALR_API signalr_err signalr_pollset_watch(signalr_pollset *s, int fd,
                                              int events, signalr_error *err);
/* Stop watching fd (not watched: not an error). */
SIGNALR_API void signalr_pollset_remove(signalr_pollset *s, int fd);
/* The set's own descriptor: readable when a watched one is. */
SIGNALR_API int signalr_pollset_fd(const signalr_pollset *s);
/* Wait at most timeout_ms (0: just look, -1: no limit) until a watched
 * descriptor is ready: 1 readable, 0 timed out (or interrupted), -1 on
 * an error (err says which). */
SIGNALR_API int signalr_pollset_wait(signalr_pollset *s, long timeout_ms,
                                     signalr_error *err);
SIGNALR_API void signalr_pollset_free(signalr_pollset *s);


/* ===== persistent mode: the service protocol of server connections =====
 * Frames are [varint length][MessagePack array]; see the reference sheet
 * of the service protocol.  Pure: nothing here does I/O. */

enum {
    SIGNALR_SP_HANDSHAKE_REQUEST = 1,
    SIGNALR_SP_HANDSHAKE_RESPONSE = 2,
    SIGNALR_SP_PING = 3,
    SIGNALR_SP_OPEN_CONNECTION = 4,
    SIGNALR_SP_CLOSE_CONNECTION = 5,
    SIGNALR_SP_CONNECTION_DATA = 6,
    SIGNALR_SP_MULTI_CONNECTION_DATA = 7,
    SIGNALR_SP_USER_DATA = 8,
    SIGNALR_SP_MULTI_USER_DATA = 9,
    SIGNALR_SP_BROADCAST = 10,
    SIGNALR_SP_GROUP_BROADCAST = 13,
    SIGNALR_SP_MULTI_GROUP_BROADCAST = 14,
    SIGNALR_SP_SERVICE_ERROR = 15,
    SIGNALR_SP_JOIN_GROUP_WITH_ACK = 18,
    SIGNALR_SP_LEAVE_GROUP_WITH_ACK = 19,
    SIGNALR_SP_ACK = 20,
    SIGNALR_SP_CHECK_USER_IN_GROUP = 21,
    SIGNALR_SP_SERVICE_EVENT = 22,
    SIGNALR_SP_CHECK_GROUP_EXISTENCE = 23,
    SIGNALR_SP_CHECK_CONNECTION_EXISTENCE = 24,
    SIGNALR_SP_CHECK_USER_EXISTENCE = 25,
    SIGNALR_SP_USER_JOIN_GROUP_WITH_ACK = 26,
    SIGNALR_SP_USER_LEAVE_GROUP_WITH_ACK = 27,
    SIGNALR_SP_ACCESS_KEY_REQUEST = 28,
    SIGNALR_SP_ACCESS_KEY_RESPONSE = 29,
    SIGNALR_SP_CLOSE_CONNECTIONS = 31,
    SIGNALR_SP_CLOSE_USER_CONNECTIONS = 32,
    SIGNALR_SP_CLOSE_GROUP_CONNECTIONS = 33,
    SIGNALR_SP_CONNECTION_RECONNECT = 38
};

/* Connection types of the handshake. */
#define SIGNALR_SP_DEFAULT_CONNECTION 0
#define SIGNALR_SP_WEAK_CONNECTION    2 /* send-only: a management server */

/* What a ConnectionData's payload holds (its Ext key 5, DataMessageType);
 * 0: not said. */
#define SIGNALR_SP_DATA_HANDSHAKE  1
#define SIGNALR_SP_DATA_INVOCATION 2 /* hub message types 1 to 5 */
#define SIGNALR_SP_DATA_OTHER      3 /* ping, close, ack, sequence */

/* Client protocols a data message carries a payload for. */
#define SIGNALR_SP_JSON        1
#define SIGNALR_SP_MESSAGEPACK 2

/* Largest data message written unless signalr_sp_data.max_size says. */
#define SIGNALR_SP_DEFAULT_MAX (16u * 1024 * 1024)
/* Ping pairs a decoded message keeps (further pairs are passed over). */
#define SIGNALR_SP_MAX_PING 8

/* A message to clients (types 7, 8, 9, 10, 13, 14).  Strings are NUL
 * terminated; every pointer is borrowed for the call. */
typedef struct {
    int type;
    const char *id;              /* 8: the user; 13: the group */
    const char *const *list;     /* 7 connections, 9 users, 14 groups;
                                    10 and 13: the excluded connections */
    size_t count;
    const char *target;          /* the client method */
    const char *arguments;       /* a JSON array; NULL: [] */
    size_t arguments_len;
    int protocols;               /* SIGNALR_SP_JSON | SIGNALR_SP_MESSAGEPACK */
    size_t max_size;             /* 0: SIGNALR_SP_DEFAULT_MAX */
    /* For a caller that made the arguments itself (zeroed: unused).
     * arguments_checked: arguments is known to be valid UTF-8 JSON, an
     * array with no white space around it: not checked again.
     * arguments_mp: the same arguments as a MessagePack array, byte for
     * byte what the transcoding of arguments would give (the smallest
     * integer forms, float64 for other numbers, smallest headers): used
     * as it is instead (only with arguments set).  Neither is checked: a
     * wrong one makes a wrong frame.  Zero the whole struct first. */
    int arguments_checked;
    const char *arguments_mp;
    size_t arguments_mp_len;
} signalr_sp_data;

/* An operation: group membership (18, 19, 26, 27), checks (21, 23, 24,
 * 25), closes (5, 31, 32, 33) and the access-key request (28).
 * id: the connection, user or group the type names (28: the Microsoft
 * Entra token); group: the group of 18/19/21/26/27 (NULL for 19 and 27:
 * every group; 28: the kid or NULL); text: a close reason; list: the
 * excluded connections of 31-33; ttl: 26 only, SIGNALR_TTL_NONE unset. */
typedef struct {
    int type;
    const char *id;
    const char *group;
    const char *text;
    const char *const *list;
    size_t count;
    long ack_id;                 /* 0..2147483647 */
    long ttl;
} signalr_sp_op;

/* Each writes one whole frame to *out (owned, signalr_free) and its
 * length to *out_len.  Data messages carry one payload per protocol
 * asked: JSON {"type":1,"target":...,"arguments":...}+0x1E and the
 * MessagePack [1,{},nil,target,arguments,[]] with its varint prefix (the
 * arguments transcoded from the JSON).  ETOOBIG past max_size. */
SIGNALR_API signalr_err signalr_sp_encode_data(const signalr_sp_data *d,
                                               char **out, size_t *out_len,
                                               signalr_error *err);
SIGNALR_API signalr_err signalr_sp_encode_op(const signalr_sp_op *o,
                                             char **out, size_t *out_len,
                                             signalr_error *err);
/* connection_type: SIGNALR_SP_WEAK_CONNECTION for a management server,
 * SIGNALR_SP_DEFAULT_CONNECTION for a hub server (the service routes
 * clients to it). */
SIGNALR_API signalr_err signalr_sp_encode_handshake(int connection_type,
                                                    char **out,
                                                    size_t *out_len,
                                                    signalr_error *err);
/* [3, kv[0], kv[1], ...]; n (even) strings, 0 for a keep-alive. */
SIGNALR_API signalr_err signalr_sp_encode_ping(const char *const *kv,
                                               size_t n, char **out,
                                               size_t *out_len,
                                               signalr_error *err);

/* One message read from the service.  Every pointer is borrowed from the
 * buffer given to signalr_sp_next; a NULL str[k] is a MessagePack nil (or
 * an item the message did not have).
 *   2 HandshakeResponse: str[0] error (empty or NULL: accepted),
 *                        str[1] connection id
 *   3 Ping:              ping[2i], ping[2i+1] for i < nping
 *   4 OpenConnection:    str[0] connection id, str[1] query string,
 *                        str[2] the client's hub protocol (Ext 3: "json",
 *                        "messagepack"), map[0] claims, map[1] headers
 *   5 CloseConnection:   str[0] connection id, str[1] error,
 *                        map[1] headers
 *   6 ConnectionData:    str[0] connection id, str[1] the client's bytes,
 *                        num[0] DataMessageType (SIGNALR_SP_DATA_*, 0
 *                        when not said), num[1] IsPartial (1: a fragment,
 *                        the rest follows in the next ConnectionData)
 *  15 ServiceError:      str[0] message
 *  20 Ack:               num[0] ack id, num[1] status, str[0] message
 *  22 ServiceEvent:      num[0] object type, str[0] id, num[1] kind,
 *                        str[1] message
 *  29 AccessKeyResponse: str[0] kid, str[1] key, str[2] error type,
 *                        str[3] error message
 *  38 ConnectionReconnect: str[0] connection id
 * Other types come back with their type only.  map[k] is a MessagePack
 * map as it came (NULL when absent), read with signalr_sp_pairs_next(). */
typedef struct {
    int type;
    long long num[2];
    const char *str[4];
    size_t len[4];
    const char *ping[2 * SIGNALR_SP_MAX_PING];
    size_t ping_len[2 * SIGNALR_SP_MAX_PING];
    size_t nping;
    /* the maps of 4 and 5 (added last: the fields above keep their
     * places) */
    const char *map[2];
    size_t map_len[2];
} signalr_sp_message;

/* Read the first frame of buf[0..len): 1 with *m filled and *used = the
 * frame's bytes; 0 when the frame is not complete yet (*used = 0); -1 on
 * an error: with *used > 0 the frame's message was malformed (err
 * EREPLY; the caller may go on after it), with *used == 0 the stream is
 * broken (a bad length prefix, or a frame over max bytes: ETOOBIG; max 0
 * means 2^31-1). */
SIGNALR_API int signalr_sp_next(const char *buf, size_t len, size_t max,
                                signalr_sp_message *m, size_t *used,
                                signalr_error *err);

/* A cursor over a map of signalr_sp_message (claims, headers); it
 * allocates nothing.  Fields are private. */
typedef struct {
    const char *p;
    size_t n, i;
    size_t pairs, values;
    const char *key;
    size_t key_len;
} signalr_sp_pairs;

/* Start reading map[0..len) (NULL: an empty map). */
SIGNALR_API void signalr_sp_pairs_init(signalr_sp_pairs *it, const char *map,
                                       size_t len);
/* The next name and value, borrowed from the map's buffer, not NUL
 * terminated: 1, 0 at the end, -1 when the map is malformed (never for
 * a map signalr_sp_next returned).  A claim is one pair (claim types may
 * repeat); a header gives one pair per value under its name, or one
 * pair with *val NULL when it has none.  *val is NULL for a nil value. */
SIGNALR_API int signalr_sp_pairs_next(signalr_sp_pairs *it, const char **key,
                                      size_t *klen, const char **val,
                                      size_t *vlen);

/* ConnectionData [6, connection_id, payload (bin), Ext]: a hub server's
 * bytes for one client (the handshake answer, or framed hub messages;
 * payload may be NULL when len is 0).  data_type 0 writes an empty Ext;
 * SIGNALR_SP_DATA_* tags the payload {5: data_type}.  One frame in *out
 * (owned, signalr_free).  A hub server closes one client with
 * signalr_sp_encode_op() type SIGNALR_SP_CLOSE_CONNECTION (id, text:
 * [5, id, text or "", {}, {}]). */
SIGNALR_API signalr_err signalr_sp_encode_connection_data(
    const char *connection_id, const char *payload, size_t len,
    int data_type, char **out, size_t *out_len, signalr_error *err);


/* ===== hub server: the SignalR hub protocol =====
 * What a client and its hub say inside ConnectionData (dotnet/aspnetcore
 * src/SignalR/docs/specs/HubProtocol.md): first the handshake, a JSON
 * record ending in 0x1E whatever the protocol, then messages in JSON (one
 * object and 0x1E each) or in MessagePack ([varint length][array]).
 * Values (arguments, results, items, headers) are JSON text in both
 * protocols, so one decoder (the Lua layer's cjson) serves both.  Pure:
 * nothing here does I/O. */

enum {
    SIGNALR_HUB_HANDSHAKE = 0,   /* the handshake request (no hub type) */
    SIGNALR_HUB_INVOCATION = 1,
    SIGNALR_HUB_STREAM_ITEM = 2,
    SIGNALR_HUB_COMPLETION = 3,
    SIGNALR_HUB_STREAM_INVOCATION = 4,
    SIGNALR_HUB_CANCEL_INVOCATION = 5,
    SIGNALR_HUB_PING = 6,
    SIGNALR_HUB_CLOSE = 7,
    SIGNALR_HUB_ACK = 8,         /* stateful reconnect: a hub behind the */
    SIGNALR_HUB_SEQUENCE = 9     /* service may ignore both */
};

#define SIGNALR_HUB_JSON        1
#define SIGNALR_HUB_MESSAGEPACK 2

/* ASP.NET Core's MaximumReceiveMessageSize: a message with its framing. */
#define SIGNALR_HUB_DEFAULT_MAX 32768
/* How deep a message may nest, its own array or object included
 * (System.Text.Json's default, which ASP.NET Core's JSON protocol uses). */
#define SIGNALR_HUB_MAX_DEPTH 64

typedef struct signalr_hub_reader signalr_hub_reader; /* opaque */

/* A reader of one client's bytes, expecting the handshake first.
 * protocols: those the handshake may choose (SIGNALR_HUB_JSON |
 * SIGNALR_HUB_MESSAGEPACK; 0: both).  max_message: the largest message
 * accepted, framing included (0: SIGNALR_HUB_DEFAULT_MAX).  The reader
 * keeps at most max_message bytes of a message that is not complete yet
 * and what it decodes for the message it returned (JSON texts: at most
 * about six times a MessagePack message's size).  *out owns the reader:
 * signalr_hub_reader_free(). */
SIGNALR_API signalr_err signalr_hub_reader_new(signalr_hub_reader **out,
                                               int protocols,
                                               size_t max_message,
                                               signalr_error *err);
SIGNALR_API void signalr_hub_reader_free(signalr_hub_reader *r); /* NULL ok */
/* Read messages in protocol from now, with no handshake (a client whose
 * handshake happened elsewhere).  EINVAL once bytes were read. */
SIGNALR_API signalr_err signalr_hub_reader_set_protocol(
    signalr_hub_reader *r, int protocol, signalr_error *err);
/* SIGNALR_HUB_JSON or SIGNALR_HUB_MESSAGEPACK once chosen, else 0. */
SIGNALR_API int signalr_hub_reader_protocol(const signalr_hub_reader *r);

/* One message read.  Pointers are borrowed (from the bytes given to
 * signalr_hub_next or from the reader) until the next call on the reader;
 * none is NUL-terminated; NULL means absent.  Strings are valid UTF-8;
 * JSON texts are one valid JSON value each.
 *   0 handshake:   protocol (as the client wrote it), version
 *   1 Invocation, 4 StreamInvocation: invocation_id (1: NULL or empty in
 *                  the message is NULL here, no answer wanted), target,
 *                  arguments (a JSON array), stream_ids (a JSON array of
 *                  strings; NULL when none), headers; MessagePack only:
 *                  arguments NULL and error set when they are valid
 *                  MessagePack JSON cannot carry (NaN or an infinity, an
 *                  extension type, a map key that is not a string, text
 *                  that is not UTF-8): error says why, and the hub
 *                  answers it as arguments it could not bind
 *   2 StreamItem:  invocation_id, item (JSON), headers
 *   3 Completion:  invocation_id, then error (an error completion), or
 *                  result (JSON), or neither (void), headers
 *   5 CancelInvocation: invocation_id, headers
 *   6 Ping
 *   7 Close:       error (NULL: none), allow_reconnect
 *   8 Ack, 9 Sequence: sequence_id
 * headers: a JSON object of strings, NULL when there is none. */
typedef struct {
    int type;
    const char *invocation_id;
    size_t invocation_id_len;
    const char *target;
    size_t target_len;
    const char *error;
    size_t error_len;
    const char *arguments;
    size_t arguments_len;
    const char *stream_ids;
    size_t stream_ids_len;
    const char *headers;
    size_t headers_len;
    const char *item;
    size_t item_len;
    const char *result;
    size_t result_len;
    int allow_reconnect;
    long long sequence_id;
    const char *protocol;
    size_t protocol_len;
    int version;
} signalr_hub_message;

/* Read the next message from data[0..len), which may end anywhere (the
 * reader keeps a message's first part until the rest comes):
 *  1: *m holds one message; *used bytes of data were taken (call again
 *     with the rest: several messages may share one ConnectionData);
 *  0: no whole message yet, all of data was taken (*used == len);
 * -1: err says why: ETOOBIG, a message over max_message (with ASP.NET
 *     Core's text); EPROTOCOL, a malformed message (one without a type
 *     included) or a refused handshake (err->msg is then the text for
 *     the handshake answer, e.g. "The protocol 'x' is not supported.").
 *     A hub closes the connection then; the reader stays stopped (EINVAL
 *     from then on).
 * Messages of types this reader does not know are passed over, as
 * ASP.NET Core does. */
SIGNALR_API int signalr_hub_next(signalr_hub_reader *r, const char *data,
                                 size_t len, size_t *used,
                                 signalr_hub_message *m, signalr_error *err);

/* Writers: each writes one whole message to *out (owned, signalr_free;
 * NUL-terminated) and its length to *out_len.  protocol: SIGNALR_HUB_JSON
 * (an object + 0x1E) or SIGNALR_HUB_MESSAGEPACK ([varint length][array],
 * as ASP.NET Core writes it).  Strings are NUL-terminated UTF-8; JSON
 * texts (pointer and length) one JSON value, valid UTF-8, written as
 * they are in JSON and transcoded for MessagePack (integers that fit 64
 * bits as integers, other numbers as float64).  EINVAL on anything
 * else. */

/* The handshake answer (JSON whatever the protocol): {} + 0x1E, or
 * {"error":error} + 0x1E when error is neither NULL nor "". */
SIGNALR_API signalr_err signalr_hub_encode_handshake_response(
    const char *error, char **out, size_t *out_len, signalr_error *err);
/* Completion of invocation_id (required): error when not NULL, else the
 * result when result_json is not NULL ("null" is a result), else void. */
SIGNALR_API signalr_err signalr_hub_encode_completion(
    int protocol, const char *invocation_id, const char *result_json,
    size_t result_len, const char *error, char **out, size_t *out_len,
    signalr_error *err);
/* StreamItem of invocation_id (required) carrying item_json. */
SIGNALR_API signalr_err signalr_hub_encode_stream_item(
    int protocol, const char *invocation_id, const char *item_json,
    size_t item_len, char **out, size_t *out_len, signalr_error *err);
/* Invocation of a client method: target (required), args_json a JSON
 * array (NULL: []), invocation_id NULL or "" when no answer is wanted
 * (else the client answers with a Completion). */
SIGNALR_API signalr_err signalr_hub_encode_invocation(
    int protocol, const char *invocation_id, const char *target,
    const char *args_json, size_t args_len, char **out, size_t *out_len,
    signalr_error *err);
SIGNALR_API signalr_err signalr_hub_encode_ping(int protocol, char **out,
                                                size_t *out_len,
                                                signalr_error *err);
/* Close: error NULL for none (MessagePack writes "" as nil, as ASP.NET
 * Core does); allow_reconnect 1 lets the client reconnect. */
SIGNALR_API signalr_err signalr_hub_encode_close(int protocol,
                                                 const char *error,
                                                 int allow_reconnect,
                                                 char **out, size_t *out_len,
                                                 signalr_error *err);


/* ===== persistent mode: a WebSocket client without I/O =====
 * The caller moves bytes: signalr_ws_output() gives what to write (then
 * signalr_ws_written()), signalr_ws_input() takes what was read, and
 * signalr_ws_stream() gives the received binary messages' bytes, one
 * continuous stream (then signalr_ws_consume()). */
typedef struct signalr_ws signalr_ws; /* opaque */

enum {
    SIGNALR_WS_UPGRADING = 1, /* the upgrade request is out or going */
    SIGNALR_WS_OPEN = 2,
    SIGNALR_WS_CLOSING = 3,   /* a close frame was sent or received */
    SIGNALR_WS_CLOSED = 4
};

/* host: the Host header ("name[:port]"); path: path and query; headers:
 * further "Name: value\r\n" lines or NULL.  The upgrade request is the
 * first output.  Messages may be queued at once; they go out after 101. */
SIGNALR_API signalr_err signalr_ws_new(signalr_ws **out, const char *host,
                                       const char *path, const char *headers,
                                       signalr_error *err);
SIGNALR_API void signalr_ws_free(signalr_ws *ws); /* NULL ok */
/* Bytes from the network.  An upgrade refused: ESTATUS with err->status;
 * a bad answer or broken framing: EREPLY.  Either closes the socket. */
SIGNALR_API signalr_err signalr_ws_input(signalr_ws *ws, const char *data,
                                         size_t len, signalr_error *err);
/* Queue one binary message (copied).  ECONNECT once closing. */
SIGNALR_API signalr_err signalr_ws_send(signalr_ws *ws, const char *data,
                                        size_t len, signalr_error *err);
/* The bytes to write now (borrowed until the next call on ws); at most
 * 256 KiB are made ready at a time. */
SIGNALR_API void signalr_ws_output(signalr_ws *ws, const char **data,
                                   size_t *len);
SIGNALR_API void signalr_ws_written(signalr_ws *ws, size_t n);
/* The received stream (borrowed until the next call on ws). */
SIGNALR_API void signalr_ws_stream(const signalr_ws *ws, const char **data,
                                   size_t *len);
SIGNALR_API void signalr_ws_consume(signalr_ws *ws, size_t n);
/* Bytes the network took since signalr_ws_new (the upgrade request
 * first; a message of n bytes is n + 6, 8 or 14 bytes on the wire, as
 * n < 126, n < 65536 or more), to tell which messages left. */
SIGNALR_API unsigned long long signalr_ws_taken(const signalr_ws *ws);
/* Bytes queued or ready that the network has not taken yet. */
SIGNALR_API size_t signalr_ws_unsent(const signalr_ws *ws);
/* Start the close handshake (code 1000: normal). */
SIGNALR_API void signalr_ws_close(signalr_ws *ws, int code,
                                  const char *reason);
/* SIGNALR_WS_*; *close_code (NULL ok): the code of a close frame
 * received, else 0. */
SIGNALR_API int signalr_ws_state(const signalr_ws *ws, int *close_code);

/* ===== persistent mode: a socket from libcurl (connect-only) =====
 * TCP and TLS (and proxies) as libcurl sets them up, connected without
 * blocking; then raw bytes. */
typedef struct signalr_sock signalr_sock; /* opaque */

typedef struct {
    long connect_timeout_ms;  /* 0: 5000 */
    int insecure;             /* 1: no certificate checks */
    const char *ca_file;      /* PEM bundle, NULL: the system store */
    /* a proxy URL: the socket is a CONNECT tunnel through it; NULL: the
     * environment's, as libcurl reads it (also a tunnel).  Borrowed. */
    const char *proxy;
} signalr_sock_options;

/* Start connecting to url ("http://host:port/" or "https://..."). */
SIGNALR_API signalr_err signalr_sock_open(signalr_sock **out,
                                          const char *url,
                                          const signalr_sock_options *o,
                                          signalr_error *err);
SIGNALR_API void signalr_sock_free(signalr_sock *s); /* NULL ok */
/* Progress the connect: 1 connected, 0 not yet, -1 failed (err says
 * why: ECONNECT, ETIMEDOUT). */
SIGNALR_API int signalr_sock_connect(signalr_sock *s, signalr_error *err);
/* The descriptors to watch and their events (1 read, 2 write), as
 * signalr_multi_fds(); the connect's timeout in ms (-1: none). */
SIGNALR_API int signalr_sock_fds(signalr_sock *s, int *fds, int *events,
                                 int max);
SIGNALR_API long signalr_sock_timeout(signalr_sock *s);
/* Move bytes both ways between a connected socket and ws until neither
 * side can go on: 1 while open, 0 once the peer closed the socket or ws
 * is closed, -1 on an error (err says which).  *want_write: 1 when bytes
 * wait for the socket to take them. */
SIGNALR_API int signalr_sock_pump(signalr_sock *s, signalr_ws *ws,
                                  int *want_write, signalr_error *err);
/* Only the writing half of signalr_sock_pump (a send's fast path): 1, or
 * -1 on an error. */
SIGNALR_API int signalr_sock_write(signalr_sock *s, signalr_ws *ws,
                                   int *want_write, signalr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* SIGNALR_H */
