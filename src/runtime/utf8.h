/*
 * The one UTF-8 decoder of the program, strict as RFC 3629 has it: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. The worker repairs task output with it, the
 * master's log reader checks the strings of INSERT_LOGS with it, and request validation checks
 * every string field with it, so all three agree on what is valid.
 *
 * utf8_next and utf8_encode are inline: the log path calls them once per non-ASCII character, and
 * their callers skip plain ASCII eight bytes at a time before they get here. Pure: any thread, no
 * allocation, nothing blocks.
 */
#ifndef CRAWLAB_UTF8_H
#define CRAWLAB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* U+FFFD REPLACEMENT CHARACTER, what a repair puts in place of what it cannot keep. */
#define UTF8_REPLACEMENT     "\xef\xbf\xbd"
#define UTF8_REPLACEMENT_LEN 3

/* What utf8_next found at the start of its bytes. */
enum utf8_result {
    UTF8_OK,        /* one well-formed character (NUL included) */
    UTF8_INVALID,   /* an ill-formed sequence */
    UTF8_TRUNCATED, /* the bytes end inside a sequence that is well-formed so far */
};

/*
 * Decodes the character at p, of which n > 0 bytes are available, and returns how many bytes it
 * spans. For UTF8_INVALID the span is the sequence's maximal subpart: the lead byte and the
 * continuation bytes that were still acceptable after it (at least 1), which a repair replaces by
 * one U+FFFD, as Unicode and WHATWG recommend. For UTF8_TRUNCATED it is n: all of the bytes, a
 * prefix that more bytes could complete. The second byte's bounds follow RFC 3629's table, which
 * is what excludes overlong forms, surrogates and code points above U+10FFFF.
 */
static inline size_t utf8_next(const unsigned char *p, size_t n, enum utf8_result *res)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *res = UTF8_OK;
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2;
        lo = 0xA0;
    } else if (c == 0xED) {
        need = 2;
        hi = 0x9F;
    } else if (c >= 0xE1 && c <= 0xEF) {
        need = 2;
    } else if (c == 0xF0) {
        need = 3;
        lo = 0x90;
    } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F;
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else {
        *res = UTF8_INVALID; /* a continuation byte, C0, C1 or F5..FF */
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i == n) {
            *res = UTF8_TRUNCATED;
            return i;
        }
        if (p[i] < lo || p[i] > hi) {
            *res = UTF8_INVALID;
            return i;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    *res = UTF8_OK;
    return need + 1;
}

/*
 * Writes the UTF-8 form of cp (a Unicode scalar value: at most U+10FFFF and not a surrogate; the
 * caller checks) into out, which has room for 4 bytes. Returns the bytes written, 1 to 4.
 */
static inline size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* True if the n bytes at s are well-formed UTF-8 throughout. NUL is a valid character here. */
bool utf8_valid(const char *s, size_t n);

/*
 * Makes valid UTF-8 out of any bytes. Each invalid sequence (bad lead byte,
 * truncated sequence, overlong form, surrogate, code point above U+10FFFF)
 * becomes one U+FFFD, following the "maximal subpart" practice of Unicode and
 * WHATWG; NUL bytes become U+FFFD too, so the result is always a valid JSON
 * string. Returns 0 and leaves *out NULL when the input is already valid (the
 * common, zero-copy case; *out_len is then set to n). Otherwise returns 0 and sets *out to a
 * malloc'd, NUL-terminated copy that the caller frees, and *out_len to its length without the NUL.
 * Returns -ENOMEM (with *out NULL) if memory runs out.
 */
int utf8_sanitize(const char *in, size_t n, char **out, size_t *out_len);

#endif
