/* send.c - lua-signalr's C core without Lua: parse the connection string,
 * broadcast a message, check whether a user is connected.
 *
 *   cc send.c $(pkg-config --cflags --libs signalr) -o send
 *   AzureSignalRConnectionString='Endpoint=...;AccessKey=...;' ./send chat hello
 */
#include <signalr.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *cs = getenv("AzureSignalRConnectionString");
    signalr_client *client = NULL;
    signalr_http *http = NULL;
    signalr_params p;
    signalr_error e;
    char args[512];
    int value = 0, rc = 1;

    if (argc != 3 || !cs) {
        fprintf(stderr, "usage: AzureSignalRConnectionString=... %s HUB TEXT\n",
                argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* the embedder's job */
    if (signalr_client_new(cs, strlen(cs), NULL, &client, &e) ||
        signalr_http_new(&http, &e)) {
        fprintf(stderr, "%s: %s\n", signalr_err_name(e.code), e.msg);
        goto out;
    }
    memset(&p, 0, sizeof(p));
    p.hub = argv[1];
    p.target = "newMessage";
    /* arguments are JSON text; this example sends one plain-ASCII string */
    snprintf(args, sizeof(args), "[\"%s\"]", argv[2]);
    p.arguments = args;
    p.arguments_len = strlen(args);
    if (signalr_call(client, http, SIGNALR_OP_BROADCAST, &p, NULL, NULL,
                     &value, &e)) {
        fprintf(stderr, "%s: %s\n", signalr_err_name(e.code), e.msg);
        goto out;
    }
    printf("broadcast: sent\n");
    p.user = "nobody";
    if (signalr_call(client, http, SIGNALR_OP_USER_EXISTS, &p, NULL, NULL,
                     &value, &e)) {
        fprintf(stderr, "%s: %s\n", signalr_err_name(e.code), e.msg);
        goto out;
    }
    printf("user 'nobody' connected: %s\n", value ? "yes" : "no");
    rc = 0;
out:
    signalr_http_free(http);
    signalr_client_free(client);
    curl_global_cleanup();
    return rc;
}
