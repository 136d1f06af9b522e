/* bench/csend.c - REST sends through the C API alone (no Lua), for
 * bench/cpu.sh and bench/rest_ir.sh.  argv: blocking|async SECONDS;
 * SENDS=N in the environment: exactly N sends instead.
 * AzureSignalRConnectionString names
 * the sink.  Prints sends/s and the CPU (user+sys) per send in us. */
#define _POSIX_C_SOURCE 200809L
#include "signalr.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(clockid_t k)
{
    struct timespec t;
    clock_gettime(k, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv)
{
    const char *cs = getenv("AzureSignalRConnectionString");
    double secs = argc > 2 ? atof(argv[2]) : 0, t0, c0;
    int async = !strcmp(argv[1], "async"), v;
    const char *sends = getenv("SENDS");
    int count = sends && *sends;
    long n = 0, total = count ? atol(sends) : -1;
    signalr_client *c;
    signalr_error e;
    signalr_params p;
    memset(&p, 0, sizeof(p));
    p.hub = "chat";
    p.target = "newMessage";
    p.arguments = "[\"player42\",{\"x\":12.5,\"y\":7.25,\"hp\":87,"
                  "\"state\":\"running\",\"team\":\"red\"},\"0123456789abcde\"]";
    p.arguments_len = strlen(p.arguments);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (signalr_client_new(cs, strlen(cs), NULL, &c, &e))
        return 1;
    t0 = now(CLOCK_MONOTONIC);
    c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    if (!async) {
        signalr_http *h;
        signalr_http_new(&h, &e);
        while ((count ? n < total : now(CLOCK_MONOTONIC) - t0 < secs) &&
               ++n)
            if (signalr_call(c, h, SIGNALR_OP_BROADCAST, &p, NULL, NULL, &v, &e))
                return 1;
    } else {
        signalr_multi *m;
        signalr_outcome o;
        unsigned long id;
        signalr_multi_new(c, NULL, NULL, 32, 16, &m, &e);
        while (count ? n < total || signalr_multi_pending(m)
                     : now(CLOCK_MONOTONIC) - t0 < secs) {
            while (signalr_multi_pending(m) < 32 && (!count || n < total) &&
                   ++n)
                if (signalr_multi_submit(m, SIGNALR_OP_BROADCAST, &p, &id, &e))
                    return 1;
            signalr_multi_step(m, 10, &e);
            while (signalr_multi_next(m, &o))
                if (o.rc)
                    return 1;
        }
    }
    printf("%.1f %.2f\n", n / (now(CLOCK_MONOTONIC) - t0),
           (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / n * 1e6);
    return 0;
}
