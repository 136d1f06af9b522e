/* bench_build.c - sign + build cost per send in the C core, for callgrind
 * (instructions, stable) and the clock (microseconds).  argv: n mode
 * mode "cached": one audience (the token is reused); "sign": a new
 * audience every time (a new signature each send). */
#define _POSIX_C_SOURCE 200809L
#include "signalr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CS "Endpoint=https://x.service.signalr.net;AccessKey=" \
           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
/* 100 bytes of arguments */
#define ARGS "[\"player42\",{\"x\":12.5,\"y\":7.25,\"hp\":87,\"state\":" \
             "\"running\",\"team\":\"red\"},\"0123456789abcdefghijk\"]"

__attribute__((noinline)) static void run_loop(signalr_client *c, long n, int sign)
{
    signalr_params p;
    signalr_request r;
    char user[32];
    long i;

    memset(&p, 0, sizeof(p));
    p.hub = "chat";
    p.target = "newMessage";
    p.arguments = ARGS;
    p.arguments_len = strlen(ARGS);
    p.user = user;
    strcpy(user, "u1");
    for (i = 0; i < n; i++) {
        if (sign)
            snprintf(user, sizeof(user), "u%ld", i);
        if (signalr_request_build(c, SIGNALR_OP_SEND_TO_USER, &p,
                                  1700000000, &r, NULL))
            abort();
        signalr_request_clear(&r);
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int sign = argc > 2 && !strcmp(argv[2], "sign");
    signalr_client *c;
    struct timespec a, b;

    if (signalr_client_new(CS, strlen(CS), NULL, &c, NULL))
        return 1;
    printf("arguments: %lu bytes\n", (unsigned long)strlen(ARGS));
    clock_gettime(CLOCK_MONOTONIC, &a);
    run_loop(c, n, sign);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%s: %.3f us per send\n", sign ? "sign + build" : "build (cached token)",
           ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1e3);
    signalr_client_free(c);
    return 0;
}
