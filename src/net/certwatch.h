/*
 * The certificates a daemon presents and trusts, watched for the end of their validity: the
 * master's and a worker's --tls-cert and --tls-ca. (A client command judges its own once, with
 * certwatch_judge.) A daemon loads them when it starts and on SIGHUP, so their dates are read
 * then, and judged then and once a day after: a warning while one ends within
 * CERTWATCH_WARN_DAYS, an error once it has ended, since every TLS peer refuses it from then on.
 * Renewing means a new certificate (`cert issue`) in place of the old one and a SIGHUP.
 *
 * Loop thread only.
 */
#ifndef CRAWLAB_CERTWATCH_H
#define CRAWLAB_CERTWATCH_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define CERTWATCH_WARN_DAYS 30

struct certwatch;

/* How a certificate stands on a given day. */
enum cert_standing {
    CERT_VALID,   /* more than CERTWATCH_WARN_DAYS left */
    CERT_ENDING,  /* it ends within CERTWATCH_WARN_DAYS */
    CERT_EXPIRED, /* it has ended: every TLS peer refuses it */
};

/* Judges the certificate in file (what: "certificate", "CA certificate"), valid until
 * not_after_s, at now_s (seconds since the epoch). Unless it is CERT_VALID, words holds what to
 * say, such as "the certificate F expires on 2027-01-05 10:00:00 UTC, in 10 days" (begun days
 * count), for the caller to follow with its advice. */
enum cert_standing certwatch_judge(const char *what, const char *file, int64_t not_after_s,
                                   int64_t now_s, char *words, size_t len);

/* One certificate watched. */
struct certwatch_cert {
    const char *kind; /* "cert" (--tls-cert) or "ca" (--tls-ca) */
    const char *what; /* in words: "certificate" or "CA certificate" */
    char *file;
    int64_t not_after_s; /* the end of its validity, seconds since the epoch */
};

/* Reads the dates of cert_file (what the daemon presents) and ca_file (what it trusts); either
 * may be NULL. Logs what it finds now and starts the daily check. A file whose date cannot be
 * read is logged and left out; *out is NULL when nothing is left to watch. -ENOMEM. */
int certwatch_start(struct ev_loop *loop, const char *cert_file, const char *ca_file,
                    struct certwatch **out);
/* The certificates watched, --tls-cert's first, into *out (borrowed, valid while w is): how many.
 * NULL is accepted (none). */
size_t certwatch_certs(const struct certwatch *w, const struct certwatch_cert **out);
/* NULL is accepted. */
void certwatch_stop(struct certwatch *w);
/* The files were read again (SIGHUP): *w is stopped and started anew on the same files, which
 * judges their dates now. Out of memory is logged, and leaves *w NULL. */
void certwatch_restart(struct ev_loop *loop, const char *cert_file, const char *ca_file,
                       struct certwatch **w);

#endif
