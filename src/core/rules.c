#include "core/rules.h"

#include <string.h>

#include "runtime/utf8.h"

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool node_key_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strnlen(s, LIMIT_NODE_KEY_MAX + 1);
    if (n == 0 || n > LIMIT_NODE_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

bool text_line_valid(const char *s, size_t max)
{
    if (!s)
        return false;
    size_t n = strnlen(s, max + 1);
    if (n > max || !utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return false;
    return true;
}

bool name_valid(const char *s)
{
    return s && *s && text_line_valid(s, LIMIT_NAME_MAX);
}

bool env_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > LIMIT_ENV_NAME_MAX || is_digit(s[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(is_alpha(s[i]) || is_digit(s[i]) || s[i] == '_'))
            return false;
    return true;
}

bool auth_key_valid(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7E)
            return false;
    return true;
}

bool priority_valid(long long p)
{
    return p >= LIMIT_PRIORITY_MIN && p <= LIMIT_PRIORITY_MAX;
}

/* ---- labels ---- */

/* The length of a label's KEY (up to its '='), or 0 when it has no '=' within len. */
static size_t label_key_len(const char *s, size_t len)
{
    const char *eq = memchr(s, '=', len);
    return eq ? (size_t)(eq - s) : 0;
}

bool label_valid(const char *s, size_t len)
{
    if (!s)
        return false;
    size_t k = label_key_len(s, len);
    if (k == 0 || k > LIMIT_LABEL_KEY_MAX || len - k - 1 > LIMIT_LABEL_VAL_MAX)
        return false;
    for (size_t i = 0; i < k; i++) {
        char c = s[i];
        if (!(is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '/' || c == '-'))
            return false;
    }
    /* The value is a text line; the bytes at s need not end where the label does. */
    const char *v = s + k + 1;
    size_t vlen = len - k - 1;
    if (!utf8_valid(v, vlen))
        return false;
    for (size_t i = 0; i < vlen; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7F)
            return false;
    return true;
}

/* Whether two labels have the same KEY. Both are valid. */
static bool same_key(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t ka = label_key_len(a, alen), kb = label_key_len(b, blen);
    return ka == kb && memcmp(a, b, ka) == 0;
}

bool labels_valid(char *const *labels, size_t n)
{
    if (n > LIMIT_LABELS_MAX || (n && !labels))
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t len = labels[i] ? strnlen(labels[i], LIMIT_NAME_MAX + 1) : 0;
        if (!label_valid(labels[i], len) || labels[i][len] != '\0')
            return false;
        for (size_t j = 0; j < i; j++)
            if (same_key(labels[i], len, labels[j], strlen(labels[j])))
                return false;
    }
    return true;
}

/* The next label of a joined set: its start in *p, its length returned; *p moves past it. */
static size_t next_label(const char **p, const char **label)
{
    *label = *p;
    size_t len = strcspn(*p, "\n");
    *p += len + ((*p)[len] == '\n');
    return len;
}

bool labels_text_valid(const char *text)
{
    if (!text)
        return false;
    if (!*text)
        return true;
    const char *p = text, *seen[LIMIT_LABELS_MAX];
    size_t lens[LIMIT_LABELS_MAX], n = 0;
    /* A trailing '\n' would leave an empty last label: refused like an empty one inside. */
    if (text[strlen(text) - 1] == '\n')
        return false;
    while (*p) {
        if (n == LIMIT_LABELS_MAX)
            return false;
        const char *l;
        size_t len = next_label(&p, &l);
        if (!label_valid(l, len))
            return false;
        for (size_t j = 0; j < n; j++)
            if (same_key(l, len, seen[j], lens[j]))
                return false;
        seen[n] = l;
        lens[n++] = len;
    }
    return true;
}

int labels_join(char *const *labels, size_t n, char *out, size_t cap)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(labels[i]);
        if (at + len + (i > 0) + 1 > cap)
            return -1;
        if (i > 0)
            out[at++] = '\n';
        memcpy(out + at, labels[i], len);
        at += len;
    }
    if (cap == 0)
        return -1;
    out[at] = '\0';
    return 0;
}

/* Whether the label (len bytes) is a whole line of the joined set. */
static bool has_label(const char *set, const char *label, size_t len)
{
    const char *p = set;
    while (*p) {
        const char *l;
        size_t n = next_label(&p, &l);
        if (n == len && memcmp(l, label, len) == 0)
            return true;
    }
    return false;
}

bool labels_match(const char *want, const char *have)
{
    const char *p = want ? want : "";
    while (*p) {
        const char *l;
        size_t len = next_label(&p, &l);
        if (!has_label(have ? have : "", l, len))
            return false;
    }
    return true;
}

bool retries_valid(long long n)
{
    return n >= 0 && n <= LIMIT_RETRIES_MAX;
}

bool retry_delay_valid(long long ms)
{
    return ms >= 0 && ms <= LIMIT_RETRY_DELAY_MAX_MS;
}

bool store_location_is_pg(const char *location)
{
    static const char *const schemes[] = {"postgres://", "postgresql://"};
    for (size_t i = 0; location && i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(location, schemes[i], n) == 0 && location[n] != '\0')
            return true;
    }
    return false;
}
