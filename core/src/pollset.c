/* pollset.c - one pollable descriptor over several (an epoll descriptor
 * holding others), for clients that drive several endpoints' transports
 * from one loop.  Linux only; elsewhere _new answers EUNSUPPORTED. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

struct signalr_pollset {
    int fd;
};

signalr_err signalr_pollset_new(signalr_pollset **out, signalr_error *err)
{
    *out = NULL;
#ifdef __linux__
    {
        signalr_pollset *s = malloc(sizeof(*s));

        if (!s)
            return sr__fail(err, SIGNALR_ENOMEM, "out of memory");
        s->fd = epoll_create1(EPOLL_CLOEXEC);
        if (s->fd < 0) {
            int e = errno;

            free(s);
            return sr__fail(err, SIGNALR_ENOMEM, "could not create an epoll "
                            "descriptor: %s", strerror(e));
        }
        *out = s;
        return SIGNALR_OK;
    }
#else
    return sr__fail(err, SIGNALR_EUNSUPPORTED,
                    "no epoll on this platform: wait on each descriptor");
#endif
}

signalr_err signalr_pollset_watch(signalr_pollset *s, int fd, int events,
                                  signalr_error *err)
{
#ifdef __linux__
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    e.events = (events & 1 ? EPOLLIN : 0) | (events & 2 ? EPOLLOUT : 0);
    e.data.fd = fd;
    if (fd < 0)
        return sr__fail(err, SIGNALR_EINVAL, "not a descriptor: %d", fd);
    if (epoll_ctl(s->fd, EPOLL_CTL_MOD, fd, &e) == 0 ||
        (errno == ENOENT && epoll_ctl(s->fd, EPOLL_CTL_ADD, fd, &e) == 0))
        return SIGNALR_OK;
    return sr__fail(err, SIGNALR_EINVAL, "cannot watch descriptor %d: %s", fd,
                    strerror(errno));
#else
    (void)s;
    (void)fd;
    (void)events;
    return sr__fail(err, SIGNALR_EUNSUPPORTED, "no epoll on this platform");
#endif
}

signalr_err signalr_pollset_add(signalr_pollset *s, int fd, signalr_error *err)
{
    return signalr_pollset_watch(s, fd, 1, err);
}

void signalr_pollset_remove(signalr_pollset *s, int fd)
{
#ifdef __linux__
    struct epoll_event e;

    memset(&e, 0, sizeof(e));
    (void)epoll_ctl(s->fd, EPOLL_CTL_DEL, fd, &e);
#else
    (void)s;
    (void)fd;
#endif
}

int signalr_pollset_fd(const signalr_pollset *s)
{
    return s->fd;
}

int signalr_pollset_wait(signalr_pollset *s, long timeout_ms,
                         signalr_error *err)
{
#ifdef __linux__
    struct epoll_event e;
    int n;

    if (timeout_ms > 0x7fffffffL)
        timeout_ms = 0x7fffffffL;
    n = epoll_wait(s->fd, &e, 1, timeout_ms < 0 ? -1 : (int)timeout_ms);
    if (n < 0 && errno != EINTR) {
        sr__fail(err, SIGNALR_EHTTP, "epoll_wait failed: %s", strerror(errno));
        return -1;
    }
    return n > 0;
#else
    (void)s;
    (void)timeout_ms;
    sr__fail(err, SIGNALR_EUNSUPPORTED, "no epoll on this platform");
    return -1;
#endif
}

void signalr_pollset_free(signalr_pollset *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}
