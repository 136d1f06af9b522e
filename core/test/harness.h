/* harness.h - a tiny table-friendly test harness (no framework).
 * Each test binary ends by printing "<name>: N passed, N failed". */
#ifndef SIGNALR_HARNESS_H
#define SIGNALR_HARNESS_H

#include <stdio.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond, what)                                                   \
    do {                                                                    \
        if (cond) {                                                         \
            t_pass++;                                                       \
        } else {                                                            \
            t_fail++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__,   \
                    what, #cond);                                           \
        }                                                                   \
    } while (0)

#define CHECK_STR(got, want, what)                                          \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        if (g_ && w_ && !strcmp(g_, w_)) {                                  \
            t_pass++;                                                       \
        } else {                                                            \
            t_fail++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n  got:  %s\n  want: %s\n",     \
                    __FILE__, __LINE__, what, g_ ? g_ : "(null)",           \
                    w_ ? w_ : "(null)");                                    \
        }                                                                   \
    } while (0)

static int t_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#endif
