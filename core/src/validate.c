/* validate.c - name rules of the Azure SignalR REST API (2022-06-01
 * swagger patterns), checked before any request is built. */
#include "internal.h"

#include <string.h>

static int hub_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '`' || c == ',' ||
           c == '.' || c == '[' || c == ']';
}

signalr_err signalr_validate_hub(const char *s, size_t len,
                                 signalr_error *err)
{
    return sr__validate_name("hub name", s, len, err);
}

signalr_err sr__validate_name(const char *what, const char *s, size_t len,
                              signalr_error *err)
{
    size_t i;

    if (!s || len == 0)
        return sr__fail(err, SIGNALR_EINVAL, "%s is empty", what);
    if (len > SIGNALR_MAX_HUB)
        return sr__fail(err, SIGNALR_EINVAL,
                        "%s is %lu characters, at most %d allowed",
                        what, (unsigned long)len, SIGNALR_MAX_HUB);
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return sr__fail(err, SIGNALR_EINVAL,
                        "%s must start with a letter", what);
    for (i = 1; i < len; i++)
        if (!hub_char((unsigned char)s[i]))
            return sr__fail(err, SIGNALR_EINVAL,
                            "%s has an illegal character at position "
                            "%lu (allowed: letters, digits and _`,.[])",
                            what, (unsigned long)i + 1);
    return SIGNALR_OK;
}

signalr_err signalr_validate_group(const char *s, size_t len,
                                   signalr_error *err)
{
    size_t i;

    if (!s || len == 0)
        return sr__fail(err, SIGNALR_EINVAL, "group name is empty");
    if (len > SIGNALR_MAX_GROUP)
        return sr__fail(err, SIGNALR_EINVAL,
                        "group name is %lu bytes, at most %d allowed",
                        (unsigned long)len, SIGNALR_MAX_GROUP);
    if (memchr(s, '\0', len))
        return sr__fail(err, SIGNALR_EINVAL,
                        "group name contains a NUL byte");
    for (i = 0; i < len; i++)
        if (!strchr(" \t\n\v\f\r", s[i]))
            return SIGNALR_OK;
    return sr__fail(err, SIGNALR_EINVAL, "group name is only white space");
}

signalr_err signalr_validate_id(const char *what, const char *s, size_t len,
                                signalr_error *err)
{
    if (!s || len == 0)
        return sr__fail(err, SIGNALR_EINVAL, "%s is empty", what);
    if (len > SIGNALR_MAX_ID)
        return sr__fail(err, SIGNALR_EINVAL,
                        "%s is %lu bytes, at most %d allowed", what,
                        (unsigned long)len, SIGNALR_MAX_ID);
    if (memchr(s, '\0', len))
        return sr__fail(err, SIGNALR_EINVAL, "%s contains a NUL byte", what);
    return SIGNALR_OK;
}
