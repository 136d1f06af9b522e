/* fuzz_json.c - the JSON scanner and strict validator on arbitrary bytes:
 * member look-up, iteration and counting agree, every member the
 * iterator yields of a valid object is itself valid JSON, and a valid text
 * is never called too deep (sr__json_too_deep, the refusal's reason). */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *k, *v;
    size_t pos = 0, kl, vl, count = 0;
    int valid = sr__json_valid(s, size);

    if (valid && sr__json_too_deep(s, size))
        abort();
    (void)sr__json_is(s, size, '[');
    (void)sr__json_is(s, size, '{');
    (void)sr__json_member(s, size, "exp", &v, &vl);
    (void)sr__json_count(s, size, "sub");
    while (sr__json_next(s, size, &pos, &k, &kl, &v, &vl)) {
        if (v < s || v + vl > s + size || pos > size)
            abort();
        if (valid && !sr__json_valid(v, vl))
            abort();
        count++;
    }
    (void)count;
    return 0;
}
