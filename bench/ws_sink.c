/* ws_sink.c - the lean sink of the persistent-mode benchmark: a server
 * connection's peer that does the least the protocol needs.  It answers
 * the WebSocket upgrade, answers the service-protocol handshake with an
 * empty HandshakeResponse, then reads and discards every byte.  One
 * connection at a time.  Usage: ws_sink PORT */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void serve(int fd)
{
    static char buf[1 << 16];
    static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    size_t have = 0;
    char *end = NULL, *k, acc[32], both[64], head[256];
    unsigned char sha[EVP_MAX_MD_SIZE];
    unsigned sl = 0;
    ssize_t n;

    while (!end && have < sizeof buf - 1) {
        n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            return;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    k = strstr(buf, "Sec-WebSocket-Key: ");
    if (!end || !k)
        return;
    memcpy(both, k + 19, 24);
    memcpy(both + 24, GUID, sizeof GUID - 1);
    EVP_Digest(both, 24 + sizeof GUID - 1, sha, &sl, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)acc, sha, (int)sl);
    n = snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n"
                 /* a binary frame: the HandshakeResponse [2, ""] */
                 "\x82\x04\x03\x92\x02\xa0", acc);
    if (write(fd, head, (size_t)n) != n)
        return;
    while (read(fd, buf, sizeof buf) > 0)
        ; /* discard */
}

int main(int argc, char **argv)
{
    struct sockaddr_in a;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

    if (argc < 2)
        return 2;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 16)) {
        perror("ws_sink");
        return 1;
    }
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd);
        close(fd);
    }
}
