/* fuzz_reply.c - the reply reader on arbitrary statuses, error codes and
 * bodies (what the network hands back), for every operation. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    signalr_reply r;
    signalr_error e;
    char code[64];
    size_t cl;
    int op, value;

    if (size < 3)
        return 0;
    r.status = (data[0] << 8 | data[1]) % 1000;
    cl = data[2] % sizeof(code);
    if (cl > size - 3)
        cl = size - 3;
    memcpy(code, data + 3, cl);
    code[cl] = '\0';
    r.error_code = cl ? code : NULL;
    r.body = (const char *)data + 3 + cl;
    r.body_len = size - 3 - cl;
    for (op = 0; op < SIGNALR_OP_MAX; op++) {
        if (signalr_reply_read((signalr_op)op, &r, &value, &e) &&
            strlen(e.msg) >= sizeof(e.msg))
            abort();
    }
    return 0;
}
