/* fuzz_json_text.c - the binding's JSON text (binding/json_text.c, what
 * core.json_decode reads): arbitrary bytes parsed, written back, parsed
 * and written again; sr_json_fuzz_one aborts when the two writings
 * differ or the number formatter disagrees with printf. */
#include "json_text.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_json_fuzz_one(data, size);
    return 0;
}
