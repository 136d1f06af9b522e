/* ws_wire.c - the wire limit of the persistent-mode benchmark: a C loop
 * that connects to bench/ws_sink.c as a server connection would (the
 * WebSocket upgrade, the service-protocol handshake), then writes the
 * same service-protocol frame over and over, each as its own WebSocket
 * message, encoded and masked once beforehand, PER_WRITE messages per
 * write(2).  It does none of a send's work but the system call, so its
 * CPU per message is what the wire alone costs.
 * Usage: ws_wire PORT SECONDS FRAME_FILE
 * Prints "messages/s cpu_us_per_message". */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PER_WRITE 64

static double clock_of(clockid_t id)
{
    struct timespec t;

    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One masked binary message holding the frame, appended at out. */
static size_t ws_message(unsigned char *out, const unsigned char *frame,
                         size_t n, const unsigned char mask[4])
{
    size_t h = 0, i;

    out[h++] = 0x82;
    if (n < 126) {
        out[h++] = (unsigned char)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (i = 0; i < n; i++)
        out[h + i] = frame[i] ^ mask[i % 4];
    return h + n;
}

int main(int argc, char **argv)
{
    static const char UPGRADE[] =
        "GET /server/?hub=chat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    static const unsigned char MASK[4] = { 0x3a, 0xc5, 0x17, 0x9e };
    unsigned char frame[65536], *batch, one[65536 + 16], head[1024];
    struct sockaddr_in a;
    size_t fn, mn, i, total, got = 0;
    double secs, t0, c0, t;
    long long sent = 0;
    FILE *f;
    int fd, one_i = 1;

    if (argc < 4)
        return 2;
    secs = atof(argv[2]);
    f = fopen(argv[3], "rb");
    if (!f)
        return 2;
    fn = fread(frame, 1, sizeof frame - 1, f);
    fclose(f);
    if (fn == 0 || fn > 65535)
        return 2;
    mn = ws_message(one, frame, fn, MASK);
    batch = malloc(mn * PER_WRITE);
    if (!batch)
        return 1;
    for (i = 0; i < PER_WRITE; i++)
        memcpy(batch + i * mn, one, mn);
    total = mn * PER_WRITE;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        perror("ws_wire");
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_i, sizeof one_i);
    if (write_all(fd, (const unsigned char *)UPGRADE, sizeof UPGRADE - 1))
        return 1;
    /* the 101 head (the sink's handshake answer is left unread: the
     * sink reads nothing of ours after the upgrade) */
    while (got < 4 || !strstr((char *)head, "\r\n\r\n")) {
        ssize_t r = read(fd, head + got, sizeof head - 1 - got);

        if (r <= 0)
            return 1;
        got += (size_t)r;
        head[got] = '\0';
    }
    if (strncmp((char *)head, "HTTP/1.1 101", 12))
        return 1;

    t0 = clock_of(CLOCK_MONOTONIC);
    c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
    do {
        if (write_all(fd, batch, total))
            return 1;
        sent += PER_WRITE;
        t = clock_of(CLOCK_MONOTONIC);
    } while (t - t0 < secs);
    printf("%.1f %.4f\n", (double)sent / (t - t0),
           (clock_of(CLOCK_PROCESS_CPUTIME_ID) - c0) / (double)sent * 1e6);
    free(batch);
    close(fd);
    return 0;
}
