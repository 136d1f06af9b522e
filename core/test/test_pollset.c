/* test_pollset.c - one descriptor over several: readable when a watched
 * one is, quiet otherwise; add twice, remove, bad descriptors. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "signalr.h"

#include <unistd.h>

int main(void)
{
#ifdef __linux__
    signalr_pollset *s = NULL, *inner = NULL;
    signalr_error e;
    int p[2], q[2];
    char c = 'x';

    CHECK(signalr_pollset_new(&s, &e) == SIGNALR_OK && s, "new");
    CHECK(signalr_pollset_new(&inner, &e) == SIGNALR_OK, "new (inner)");
    CHECK(signalr_pollset_fd(s) >= 0, "a descriptor of its own");
    CHECK(pipe(p) == 0 && pipe(q) == 0, "pipes");
    CHECK(signalr_pollset_wait(s, 0, &e) == 0, "empty: not readable");
    CHECK(signalr_pollset_add(s, p[0], &e) == SIGNALR_OK, "add a pipe");
    CHECK(signalr_pollset_add(s, p[0], &e) == SIGNALR_OK, "add it twice");
    CHECK(signalr_pollset_add(s, signalr_pollset_fd(inner), &e) == SIGNALR_OK,
          "add another set");
    CHECK(signalr_pollset_wait(s, 10, &e) == 0, "nothing to read: times out");
    CHECK(write(p[1], &c, 1) == 1, "write");
    CHECK(signalr_pollset_wait(s, 1000, &e) == 1, "the pipe is readable");
    CHECK(read(p[0], &c, 1) == 1, "read");
    CHECK(signalr_pollset_wait(s, 0, &e) == 0, "drained: quiet again");
    /* a set inside the set: readable through it */
    CHECK(signalr_pollset_add(inner, q[0], &e) == SIGNALR_OK, "inner add");
    CHECK(write(q[1], &c, 1) == 1, "write (inner)");
    CHECK(signalr_pollset_wait(s, 1000, &e) == 1, "readable through the inner set");
    CHECK(read(q[0], &c, 1) == 1, "read (inner)");
    signalr_pollset_remove(s, p[0]);
    signalr_pollset_remove(s, p[0]); /* not watched: harmless */
    CHECK(write(p[1], &c, 1) == 1, "write after remove");
    CHECK(signalr_pollset_wait(s, 10, &e) == 0, "removed: not watched");
    CHECK(signalr_pollset_add(s, -1, &e) == SIGNALR_EINVAL, "a negative fd: EINVAL");
    CHECK(signalr_pollset_add(s, 1 << 20, &e) == SIGNALR_EINVAL &&
              strstr(e.msg, "cannot watch descriptor"), "a closed fd: EINVAL, said");
    /* write interest: a pipe's write end is writable at once */
    CHECK(signalr_pollset_watch(s, p[1], 1, &e) == SIGNALR_OK,
          "watch the write end for reading (added)");
    CHECK(signalr_pollset_wait(s, 10, &e) == 0, "nothing to read there");
    CHECK(signalr_pollset_watch(s, p[1], 3, &e) == SIGNALR_OK,
          "and for writing (changed)");
    CHECK(signalr_pollset_wait(s, 1000, &e) == 1, "writable: ready");
    CHECK(signalr_pollset_watch(s, p[1], 1, &e) == SIGNALR_OK,
          "back to reading only");
    CHECK(signalr_pollset_wait(s, 10, &e) == 0, "quiet again");
    CHECK(signalr_pollset_watch(s, -1, 1, &e) == SIGNALR_EINVAL,
          "watch a negative fd: EINVAL");
    signalr_pollset_remove(s, p[1]);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
    signalr_pollset_free(inner);
    signalr_pollset_free(s);
    signalr_pollset_free(NULL);
#else
    signalr_pollset *s = NULL;
    signalr_error e;

    CHECK(signalr_pollset_new(&s, &e) == SIGNALR_EUNSUPPORTED && !s,
          "no epoll: EUNSUPPORTED");
#endif
    return t_done("test_pollset");
}
