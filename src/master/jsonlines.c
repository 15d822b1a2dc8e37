#include "master/jsonlines.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/jsonsafe.h"
#include "runtime/utf8.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hex4(const char *p, const char *end, uint32_t *out)
{
    if (end - p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/*
 * Decodes the escaped string body [p, end_quote) into o; returns the new end of o, or NULL when
 * an escape is malformed. The body was already checked for controls and UTF-8. \u0000 becomes
 * U+FFFD: a log line is text, as the worker makes it, and the readers of a stored line (ReadLogs
 * carries it in a protobuf string, the client prints it as a C string) would end it at a NUL.
 * Never longer than its input: an escape of 2, 6 or 12 bytes decodes to at most 4.
 */
static char *unescape(const char *p, const char *q, char *o)
{
    while (p < q) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        switch (*p++) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(p, q, &cp) < 0)
                return NULL;
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return NULL; /* a low surrogate on its own */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, q, &lo) < 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return NULL;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += utf8_encode(cp ? cp : 0xFFFD, o);
            break;
        }
        default:
            return NULL;
        }
    }
    return o;
}

static int push(struct jsonlines *out, const char *s, size_t len)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 256;
        const char **ptrs = realloc(out->ptrs, cap * sizeof(*ptrs));
        if (!ptrs)
            return -ENOMEM;
        out->ptrs = ptrs;
        size_t *lens = realloc(out->lens, cap * sizeof(*lens));
        if (!lens)
            return -ENOMEM;
        out->lens = lens;
        out->cap = cap;
    }
    out->ptrs[out->n] = s;
    out->lens[out->n] = len;
    out->n++;
    return 0;
}

int jsonlines_parse(struct jsonlines *out, const char *text, size_t len)
{
    memset(out, 0, sizeof(*out));
    const char *p = text, *end = text + len;
    p = skip_ws(p, end);
    if (p == end || *p++ != '[')
        return -EINVAL;
    p = skip_ws(p, end);
    if (p < end && *p == ']')
        return skip_ws(p + 1, end) == end ? 0 : -EINVAL;
    for (;;) {
        if (p == end || *p++ != '"')
            return -EINVAL;
        const char *start = p;
        bool escaped = false;
        /* One pass: find the closing quote, checking controls and UTF-8 on the way. */
        while (p < end && *p != '"') {
            p += jsonsafe_plain_prefix(p, (size_t)(end - p));
            if (p == end || *p == '"')
                break;
            unsigned char c = (unsigned char)*p;
            if (c == '\\') {
                if (end - p < 2)
                    return -EINVAL;
                escaped = true;
                p += 2;
            } else if (c < 0x20) {
                return -EINVAL;
            } else if (c < 0x80) {
                p++;
            } else {
                enum utf8_result res;
                p += utf8_next((const unsigned char *)p, (size_t)(end - p), &res);
                if (res != UTF8_OK)
                    return -EINVAL;
            }
        }
        if (p >= end)
            return -EINVAL;
        const char *q = p++; /* the closing quote */
        int rc;
        if (!escaped) {
            rc = push(out, start, (size_t)(q - start));
        } else {
            if (!out->scratch && !(out->scratch = malloc(len)))
                return -ENOMEM;
            char *o = out->scratch + out->scratch_len;
            char *e = unescape(start, q, o);
            if (!e)
                return -EINVAL;
            out->scratch_len += (size_t)(e - o);
            rc = push(out, o, (size_t)(e - o));
        }
        if (rc < 0)
            return rc;
        p = skip_ws(p, end);
        if (p == end)
            return -EINVAL;
        if (*p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (*p++ != ']')
            return -EINVAL;
        return skip_ws(p, end) == end ? (int)out->n : -EINVAL;
    }
}

void jsonlines_free(struct jsonlines *out)
{
    free(out->ptrs);
    free(out->lens);
    free(out->scratch);
    memset(out, 0, sizeof(*out));
}
