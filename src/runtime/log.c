#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "runtime/utf8.h"

static enum log_level threshold = LOG_INFO;
static enum log_format format = LOG_FORMAT_TEXT;
static const char *role_name = "crawlab-node";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_setup(enum log_level level, enum log_format fmt, const char *role)
{
    threshold = level;
    format = fmt;
    if (role)
        role_name = role;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool log_enabled(enum log_level level)
{
    return level <= threshold;
}

/*
 * Appends s to buf as the inside of a JSON string, escaping what JSON requires. A message may quote
 * bytes from elsewhere, or end inside a character where it was cut to fit: what is not UTF-8
 * becomes U+FFFD, so that every line parses as JSON.
 */
static size_t json_escape(char *buf, size_t pos, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n && pos + 7 < cap;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
            i++;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            buf[pos++] = (char)c;
            i++;
        } else {
            enum utf8_result res;
            size_t span = utf8_next(p + i, n - i, &res);
            if (res == UTF8_OK) {
                memcpy(buf + pos, p + i, span);
                pos += span;
            } else {
                memcpy(buf + pos, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
                pos += UTF8_REPLACEMENT_LEN;
            }
            i += span;
        }
    }
    return pos;
}

/*
 * Appends s to buf with every control character written as an escape (\n, \r, \t, else \xNN),
 * so that a message stays on one line whatever text it quotes (an error from a peer, a file
 * name): nothing in it can end the line and pass off what follows as a line of our own.
 * Backslashes are left as they are, so paths and escapes quoted from elsewhere stay readable.
 */
static size_t text_escape(char *buf, size_t pos, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s && pos + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != 0x7f) {
            buf[pos++] = (char)c;
            continue;
        }
        buf[pos++] = '\\';
        if (c == '\n') {
            buf[pos++] = 'n';
        } else if (c == '\r') {
            buf[pos++] = 'r';
        } else if (c == '\t') {
            buf[pos++] = 't';
        } else {
            buf[pos++] = 'x';
            buf[pos++] = hex[c >> 4];
            buf[pos++] = hex[c & 15];
        }
    }
    return pos;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (level > threshold)
        return;
    int saved_errno = errno;

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    char line[4096];
    size_t pos;
    if (format == LOG_FORMAT_JSON) {
        pos = (size_t)snprintf(line, sizeof(line),
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"%s\",\"msg\":\"", ts,
                               level_names[level], role_name);
        pos = json_escape(line, pos, sizeof(line) - 3, msg);
        line[pos++] = '"';
        line[pos++] = '}';
    } else {
        pos =
            (size_t)snprintf(line, sizeof(line), "%s %-5s %s: ", ts, level_names[level], role_name);
        pos = text_escape(line, pos, sizeof(line) - 1, msg);
    }
    line[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
    errno = saved_errno;
}
