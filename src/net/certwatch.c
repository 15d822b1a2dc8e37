#include "net/certwatch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/tls.h"
#include "runtime/log.h"

#define DAY_S 86400

struct certwatch {
    struct ev_loop *loop;
    ev_timer daily;
    struct certwatch_cert certs[2];
    int n;
};

enum cert_standing certwatch_judge(const char *what, const char *file, int64_t not_after_s,
                                   int64_t now_s, char *words, size_t len)
{
    char date[32] = "?";
    time_t t = (time_t)not_after_s;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (not_after_s <= now_s) {
        snprintf(words, len, "the %s %s expired on %s", what, file, date);
        return CERT_EXPIRED;
    }
    if (not_after_s - now_s >= (int64_t)CERTWATCH_WARN_DAYS * DAY_S)
        return CERT_VALID;
    int64_t days = (not_after_s - now_s + DAY_S - 1) / DAY_S; /* begun days count */
    snprintf(words, len, "the %s %s expires on %s, in %" PRId64 " day%s", what, file, date, days,
             days == 1 ? "" : "s");
    return CERT_ENDING;
}

static void judge(const struct certwatch_cert *c, int64_t now_s)
{
    char words[4400];
    switch (certwatch_judge(c->what, c->file, c->not_after_s, now_s, words, sizeof(words))) {
    case CERT_EXPIRED:
        log_error(
            "TLS: %s: every TLS peer refuses it; issue a new one (cert issue) and send SIGHUP",
            words);
        break;
    case CERT_ENDING:
        log_warn("TLS: %s: issue a new one (cert issue) and send SIGHUP before then", words);
        break;
    case CERT_VALID:
        break;
    }
}

static void check(struct certwatch *w, int64_t now_s)
{
    for (int i = 0; i < w->n; i++)
        judge(&w->certs[i], now_s);
}

static void on_daily(struct ev_loop *loop, ev_timer *timer, int revents)
{
    check(timer->data, (int64_t)time(NULL));
}

/* Adds file to w; false when out of memory (a file without a readable date is logged and left
 * out: loading it failed or will fail with its own error). */
static bool watch(struct certwatch *w, const char *kind, const char *what, const char *file)
{
    int64_t not_after;
    int rc = tls_cert_not_after(file, &not_after);
    if (rc < 0) {
        log_warn("TLS: cannot read when the %s %s expires (%s); it is not watched", what, file,
                 rc == -ENOENT ? "no certificate in it" : "no date in it");
        return true;
    }
    struct certwatch_cert *c = &w->certs[w->n];
    if (!(c->file = strdup(file)))
        return false;
    c->kind = kind;
    c->what = what;
    c->not_after_s = not_after;
    w->n++;
    return true;
}

int certwatch_start(struct ev_loop *loop, const char *cert_file, const char *ca_file,
                    struct certwatch **out)
{
    *out = NULL;
    struct certwatch *w = calloc(1, sizeof(*w));
    if (!w || (cert_file && !watch(w, "cert", "certificate", cert_file)) ||
        (ca_file && !watch(w, "ca", "CA certificate", ca_file))) {
        certwatch_stop(w);
        return -ENOMEM;
    }
    if (w->n == 0) {
        free(w);
        return 0;
    }
    w->loop = loop;
    check(w, (int64_t)time(NULL));
    ev_timer_init(&w->daily, on_daily, DAY_S, DAY_S);
    w->daily.data = w;
    ev_timer_start(loop, &w->daily);
    *out = w;
    return 0;
}

size_t certwatch_certs(const struct certwatch *w, const struct certwatch_cert **out)
{
    *out = w ? w->certs : NULL;
    return w ? (size_t)w->n : 0;
}

void certwatch_stop(struct certwatch *w)
{
    if (!w)
        return;
    if (w->loop)
        ev_timer_stop(w->loop, &w->daily);
    for (int i = 0; i < w->n; i++)
        free(w->certs[i].file);
    free(w);
}

void certwatch_restart(struct ev_loop *loop, const char *cert_file, const char *ca_file,
                       struct certwatch **w)
{
    certwatch_stop(*w);
    if (certwatch_start(loop, cert_file, ca_file, w) < 0)
        log_error("TLS: out of memory: the certificates' dates are no longer watched");
}
