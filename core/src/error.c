/* error.c - the error table, error details and small string helpers. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *signalr_strerror(signalr_err e)
{
    switch (e) {
#define X(name, msg) case SIGNALR_##name: return msg;
    SIGNALR_ERRORS(X)
#undef X
    case SIGNALR_ERR_MAX:
        break;
    }
    return "unknown error";
}

const char *signalr_err_name(signalr_err e)
{
    switch (e) {
#define X(name, msg) case SIGNALR_##name: return #name;
    SIGNALR_ERRORS(X)
#undef X
    case SIGNALR_ERR_MAX:
        break;
    }
    return "EUNKNOWN";
}

void signalr_free(void *p)
{
    free(p);
}

void sr__ok(signalr_error *err)
{
    if (!err)
        return;
    err->code = SIGNALR_OK;
    err->status = 0;
    err->sent = 0;
    err->service_code[0] = '\0';
    err->msg[0] = '\0';
}

signalr_err sr__fail(signalr_error *err, signalr_err code, const char *fmt,
                     ...)
{
    va_list ap;

    if (!err)
        return code;
    err->code = code;
    err->status = 0;
    err->sent = 0;
    err->service_code[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

char *sr__strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sr__strdup(const char *s)
{
    return sr__strndup(s, strlen(s));
}
