/* retry.c - when to try a failed request again (the service SDK's rules:
 * sends only when the request provably did no work, idempotent operations
 * also after timeouts and 500/408; 429 after Retry-After). */
#include "internal.h"

#include <stdio.h>

long signalr_retry_delay(signalr_op op, const signalr_retry_policy *policy,
                         int attempt, signalr_err failure, int status,
                         long retry_after_s)
{
    /* SIGNALR_OP_MAX: an identity request (signalr_request_http()), which
     * has no effect to duplicate */
    int idem = op == SIGNALR_OP_MAX || signalr_op_idempotent(op);
    long delay;
    int ok, i;

    if (!policy || attempt < 1 || attempt > policy->max_retries)
        return -1;
    if (failure == SIGNALR_ECONNECT)
        ok = 1;
    else if (failure == SIGNALR_ETIMEDOUT || failure == SIGNALR_EHTTP)
        ok = idem;
    else if (failure == SIGNALR_ESTATUS)
        /* A 500 may hide a timed-out send that was delivered. */
        ok = status > 500 || status == 429 ||
             (idem && (status == 500 || status == 408));
    else
        ok = 0;
    if (!ok)
        return -1;
    if (failure == SIGNALR_ESTATUS && status == 429 && retry_after_s >= 0) {
        if (retry_after_s * 1000 > policy->max_delay_ms)
            return -1; /* waiting that long would surprise the caller */
        return retry_after_s * 1000;
    }
    delay = policy->base_delay_ms > 0 ? policy->base_delay_ms : 0;
    for (i = 1; policy->mode != SIGNALR_RETRY_FIXED && i < attempt &&
                delay < policy->max_delay_ms; i++)
        delay *= 2;
    return delay < policy->max_delay_ms ? delay : policy->max_delay_ms;
}

void sr__log_retry(const signalr_http_options *o, signalr_op op,
                   int attempt, signalr_err rc, const signalr_error *e,
                   long delay_ms)
{
    char line[sizeof(((signalr_error *)0)->msg) + 128];

    if (!o || !o->log)
        return;
    snprintf(line, sizeof(line), "%s: attempt %d failed (%s: %s); "
             "retrying in %ld ms",
             op == SIGNALR_OP_MAX ? "identity request" : signalr_op_name(op),
             attempt, signalr_err_name(rc),
             e && e->msg[0] ? e->msg : signalr_strerror(rc), delay_ms);
    o->log(o->log_ud, SIGNALR_LOG_WARN, line);
}
