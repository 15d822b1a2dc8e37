/*
 * Process-wide logging: one line per event on stderr, as text or JSON.
 *
 * Any thread may log; each line is written with a single write(2) so lines from
 * different threads never interleave. Control characters in a message are escaped in both
 * formats (text: \n, \r, \t, \xNN; JSON: as JSON requires, and what is not UTF-8 becomes
 * U+FFFD), so one event is always one line, whatever a message quotes. Messages must never contain
 * secrets (the auth key is never passed here).
 */
#ifndef CRAWLAB_LOG_H
#define CRAWLAB_LOG_H

#include <stdbool.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Sets the threshold and format. Call once at start-up, before other threads run. */
void log_setup(enum log_level level, enum log_format format, const char *role);

/* Parses "error", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

bool log_enabled(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_write(LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
