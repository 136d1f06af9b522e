/* validate.c - name rules of the Azure SignalR REST API, checked before
 * any request is built.
 *
 * The rules are the official swagger files' (v1.json, V20220601.json and
 * later): a hub or application name matches
 * ^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$; a group is 1-1024 characters
 * matching ^(?!\s+$).+$; a user id is 1-1024 characters; connection ids
 * and targets are non-empty.  Patterns are JSON Schema patterns, so they
 * are read as ECMA-262 regular expressions: '.' matches anything but a
 * line terminator (LF, CR, U+2028, U+2029), '$' only the very end, and
 * \s is ECMA white space.  Lengths count characters (code points), so
 * names must be valid UTF-8. */
#include "internal.h"

#include <string.h>

static int hub_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '`' || c == ',' ||
           c == '.' || c == '[' || c == ']';
}

/* Decode one UTF-8 sequence at s[*i] (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF).  Returns the code point and advances *i,
 * or returns -1 on a malformed sequence. */
static long utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    long cp, min;
    int n, k;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c >= 0xC2 && c <= 0xDF)
        n = 1, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 2, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 3, cp = c & 0x07, min = 0x10000;
    else
        return -1;
    if (len - *i <= (size_t)n) /* the sequence is cut short */
        return -1;
    for (k = 1; k <= n; k++) {
        if ((s[*i + (size_t)k] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[*i + (size_t)k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += (size_t)n + 1;
    return cp;
}

size_t sr__utf8_bad(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t at = i;

        /* the ASCII run first: most payloads are all ASCII */
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        if (utf8_next(u, len, &i) < 0)
            return at + 1;
    }
    return 0;
}

signalr_err sr__check_utf8(const char *what, const char *json, size_t len,
                           signalr_error *err)
{
    size_t bad = sr__utf8_bad(json, len);

    /* JSON text is UTF-8 (RFC 8259 section 8.1): a client's parser
     * drops its connection on anything else, so nothing else is sent */
    if (bad)
        return sr__fail(err, SIGNALR_EINVAL,
                        "%s are not valid UTF-8 (byte %lu): JSON carries "
                        "text only", what, (unsigned long)bad);
    return SIGNALR_OK;
}

/* ECMA-262 WhiteSpace and LineTerminator: what \s matches. */
static int ecma_space(long cp)
{
    return cp == 0x09 || cp == 0x0A || cp == 0x0B || cp == 0x0C ||
           cp == 0x0D || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
           cp == 0xFEFF;
}

static int line_terminator(long cp)
{
    return cp == 0x0A || cp == 0x0D || cp == 0x2028 || cp == 0x2029;
}

/* Common checks: present, not empty, no NUL, valid UTF-8, at most max
 * characters (0: no limit).  Sets *only_space when every character is
 * white space and *line_at to the 1-based position of the first line
 * terminator (0: none). */
static signalr_err check_text(const char *what, const char *s, size_t len,
                              size_t max, int *only_space, size_t *line_at,
                              signalr_error *err)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, chars = 0;

    *only_space = 1;
    *line_at = 0;
    if (!s || len == 0)
        return sr__fail(err, SIGNALR_EINVAL, "%s is empty", what);
    if (memchr(s, '\0', len))
        return sr__fail(err, SIGNALR_EINVAL, "%s contains a NUL byte", what);
    while (i < len) {
        size_t at = i;
        long cp;

        if (u[i] < 0x80) {
            /* ASCII (most text): the checks below for one byte */
            unsigned char ch = u[i++];

            chars++;
            if (ch != ' ' && (ch < 0x09 || ch > 0x0D))
                *only_space = 0;
            if (!*line_at && (ch == '\n' || ch == '\r'))
                *line_at = chars;
            continue;
        }
        cp = utf8_next(u, len, &i);
        if (cp < 0)
            return sr__fail(err, SIGNALR_EINVAL,
                            "%s is not valid UTF-8 (byte %lu)", what,
                            (unsigned long)at + 1);
        chars++;
        if (!ecma_space(cp))
            *only_space = 0;
        if (!*line_at && line_terminator(cp))
            *line_at = chars;
    }
    if (max && chars > max)
        return sr__fail(err, SIGNALR_EINVAL,
                        "%s is %lu characters, at most %lu allowed", what,
                        (unsigned long)chars, (unsigned long)max);
    return SIGNALR_OK;
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
    int only_space;
    size_t line_at;
    signalr_err rc = check_text("group name", s, len, SIGNALR_MAX_GROUP,
                                &only_space, &line_at, err);

    if (rc)
        return rc;
    if (only_space)
        return sr__fail(err, SIGNALR_EINVAL,
                        "group name is only white space");
    if (line_at)
        return sr__fail(err, SIGNALR_EINVAL,
                        "group name has a line break at character %lu "
                        "(the service's pattern ^(?!\\s+$).+$ allows none)",
                        (unsigned long)line_at);
    return SIGNALR_OK;
}

signalr_err signalr_validate_id(const char *what, const char *s, size_t len,
                                signalr_error *err)
{
    int only_space;
    size_t line_at;
    size_t max = what && !strcmp(what, "user id") ? SIGNALR_MAX_ID : 0;

    return check_text(what ? what : "id", s, len, max, &only_space,
                      &line_at, err);
}
