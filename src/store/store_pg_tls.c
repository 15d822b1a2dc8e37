/*
 * A PostgreSQL location that asks for TLS, turned into the relay's target and a location that
 * reaches the relay (store.h, store_pg_tls_split; docs/postgres.md). libpq parses the location,
 * so every form it accepts is read the same way here.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

/* The parameters the relay takes over: libpq must not see them (it has no TLS of its own). */
static bool relay_param(const char *key)
{
    static const char *const taken[] = {"host",
                                        "hostaddr",
                                        "port",
                                        "sslmode",
                                        "sslcert",
                                        "sslkey",
                                        "sslrootcert",
                                        "sslcrl",
                                        "sslcrldir",
                                        "sslpassword",
                                        "sslsni",
                                        "requiressl",
                                        "sslcompression",
                                        "ssl_min_protocol_version",
                                        "ssl_max_protocol_version"};
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        if (strcmp(key, taken[i]) == 0)
            return true;
    return false;
}

/* Appends "key=value&" to out, the value percent-encoded. false when it does not fit. */
static bool append_param(char *out, size_t cap, size_t *len, const char *key, const char *value)
{
    int n = snprintf(out + *len, cap - *len, "%s=", key);
    if (n < 0 || (size_t)n >= cap - *len)
        return false;
    *len += (size_t)n;
    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        bool plain = (*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
                     (*v >= '0' && *v <= '9') || strchr("-._~", *v);
        n = plain ? snprintf(out + *len, cap - *len, "%c", *v)
                  : snprintf(out + *len, cap - *len, "%%%02X", *v);
        if (n < 0 || (size_t)n >= cap - *len)
            return false;
        *len += (size_t)n;
    }
    if (*len + 1 >= cap)
        return false;
    out[(*len)++] = '&';
    out[*len] = '\0';
    return true;
}

static int copy_field(char *dst, size_t cap, const char *v)
{
    if (!v)
        return 0;
    if (strlen(v) >= cap)
        return -ENAMETOOLONG;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* Reads the relay's target out of the parsed options. */
static int read_target(const PQconninfoOption *opts, struct store_pg_tls *tls)
{
    const char *port = NULL;
    int rc = 0;
    for (const PQconninfoOption *o = opts; o->keyword && rc == 0; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0)
            rc = copy_field(tls->host, sizeof(tls->host), o->val);
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "sslrootcert") == 0)
            rc = copy_field(tls->ca_file, sizeof(tls->ca_file), o->val);
        else if (strcmp(o->keyword, "sslcert") == 0)
            rc = copy_field(tls->cert_file, sizeof(tls->cert_file), o->val);
        else if (strcmp(o->keyword, "sslkey") == 0)
            rc = copy_field(tls->key_file, sizeof(tls->key_file), o->val);
    }
    if (rc < 0)
        return rc;
    char *end = NULL;
    long p = port ? strtol(port, &end, 10) : 5432;
    if ((port && *end) || p < 1 || p > 65535)
        return -EINVAL;
    tls->port = (int)p;
    /* One server: a list of hosts or a socket directory is not something to relay to. */
    if (!*tls->host || strchr(tls->host, ',') || tls->host[0] == '/')
        return -EINVAL;
    return 0;
}

/* The location that reaches the relay: every parameter of opts but the TLS ones, and the relay's
 * socket. */
static int local_location(const PQconninfoOption *opts, const char *socket_dir, int port,
                          char *local, size_t cap)
{
    static const char start[] = "postgresql:///?";
    if (cap < sizeof(start))
        return -ENAMETOOLONG;
    memcpy(local, start, sizeof(start));
    size_t len = sizeof(start) - 1;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && !relay_param(o->keyword) &&
            !append_param(local, cap, &len, o->keyword, o->val))
            return -ENAMETOOLONG;
    char port_text[8];
    snprintf(port_text, sizeof(port_text), "%d", port);
    if (!append_param(local, cap, &len, "host", socket_dir) ||
        !append_param(local, cap, &len, "port", port_text) ||
        !append_param(local, cap, &len, "sslmode", "disable"))
        return -ENAMETOOLONG;
    local[len - 1] = '\0'; /* the last '&' */
    return 0;
}

int store_pg_tls_split(const char *location, const char *socket_dir, struct store_pg_tls *tls,
                       char *local, size_t local_cap)
{
    memset(tls, 0, sizeof(*tls));
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(location, &err);
    PQfreemem(err);
    if (!opts)
        return -EINVAL;
    const char *mode = NULL;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "sslmode") == 0)
            mode = o->val;
    int rc = 0;
    if (mode && (strcmp(mode, "require") == 0 || strcmp(mode, "verify-ca") == 0 ||
                 strcmp(mode, "verify-full") == 0)) {
        tls->wanted = true;
        rc = read_target(opts, tls);
    }
    if (rc == 0 && tls->wanted)
        rc = local_location(opts, socket_dir, tls->port, local, local_cap);
    PQconninfoFree(opts);
    return rc;
}
