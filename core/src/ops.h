/* ops.h - the operation table's row type (private). */
#ifndef SIGNALR_OPS_H
#define SIGNALR_OPS_H

#include "internal.h"

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(hidden) /* see internal.h */
#endif

enum {
    F_BODY = 1 << 0,       /* target + arguments JSON body */
    F_USER = 1 << 1,       /* needs a user id */
    F_GROUP = 1 << 2,      /* needs a group name */
    F_CONN = 1 << 3,       /* needs a connection id */
    F_EXCLUDED = 1 << 4,   /* takes excluded connection ids */
    F_REASON = 1 << 5,     /* takes a close reason */
    F_TTL = 1 << 6,        /* takes a ttl */
    F_CHECK = 1 << 7,      /* existence check: 404 means false */
    F_IDEMPOTENT = 1 << 8, /* safe to retry after a timeout or 500 */
    F_NOHUB = 1 << 9,      /* path is absolute, no hub */
    F_NOAUTH = 1 << 10,    /* sent without a token */
    F_DATA = 1 << 11,      /* the 200 reply's JSON body is the result */
    F_TOKEN = 1 << 12,     /* :generateToken query (userId, minutes) */
    F_PAGE = 1 << 13,      /* paged listing query (top, page size, token) */
    F_EXEC = 1 << 14,      /* :execute: commands body and filter query */
    F_NOVERSION = 1 << 15  /* no api-version query (the SDK sends none) */
};

typedef struct {
    const char *name;
    const char *method, *path;       /* 2022-06-01 and later */
    const char *v1_method, *v1_path; /* v1; NULL path: unsupported */
    unsigned flags;
    const char *notfound_code;       /* 404 code that is an answer */
    const char *since;               /* first api-version with the route */
} sr__op_row;

const sr__op_row *sr__op(signalr_op op);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#endif
