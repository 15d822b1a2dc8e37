#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/cpuid.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "runtime/list.h"
#include "runtime/log.h"

/*
 * The pump's buffers, per connection and only while bytes are in flight: plaintext towards gRPC
 * and towards the peer, and TLS records read ahead of wolfSSL. Sixteen full records each way, so
 * that the plaintext socket is written or read once per 256 KiB rather than once per record, and
 * gRPC on the other end reads it in large pieces (docs/benchmarks.md: 24 recvmsg per MB on the
 * master instead of 42 with 64 KiB, 174 with one record).
 */
#define PUMP_BUF_SIZE (256 * 1024)
/*
 * wolfSSL asks for each record's 5-byte header and then for its body, two recv() calls per 16 KiB
 * record. The pump reads up to this much at once instead and serves wolfSSL from it: about 34
 * recv() per MB on the master instead of 146 (docs/benchmarks.md), at the price of one copy.
 */
#define READ_AHEAD_SIZE (64 * 1024)
/*
 * The socketpair's send buffer, each way (the kernel doubles it, and caps it at
 * net.core.wmem_max). With the default 208 KiB the worker's gRPC found the pair full on most of
 * its writes and waited to be woken for each: 15 sendmsg and 19 futex calls per MB, against 5 and
 * 5 with this.
 */
#define PAIR_SNDBUF (1024 * 1024)
/* Buffer blocks kept for reuse when a connection goes idle, per context. */
#define PUMP_SPARES 4
/* Rounds of moving bytes both ways per wake-up (each up to PUMP_BUF_SIZE per direction): a
 * connection that always has bytes to move must still leave the loop to everything else. */
#define PUMP_ROUNDS 4
/* After one direction ended, the other gets this long to end too. */
#define LINGER_S 5.0
/*
 * TLS 1.3 suites only, in the order the master prefers them. AES-128-GCM first where wolfSSL runs
 * it with AES-NI: then it costs both ends less CPU per MB than ChaCha20-Poly1305. ChaCha20 first
 * where AES-GCM would be portable C, several times slower than ChaCha20 in portable C
 * (docs/benchmarks.md has both measurements).
 */
#define CIPHERS_AES_FIRST                                                                          \
    "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES256-GCM-SHA384"
#define CIPHERS_CHACHA_FIRST                                                                       \
    "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"
/* GeneralName iPAddress [7], as wolfSSL's GENERAL_NAME.type reports it. */
#define SAN_IP_TYPE 7
#define PEM_MAX     (64 * 1024)

/* What a server and a client context share: the wolfSSL context and the connections made. */
struct tls_base {
    WOLFSSL_CTX *ctx; /* what the next connection is made with */
    bool initialised; /* wolfSSL_Init done, for wolfSSL_Cleanup */
    struct list_link *conns;
    size_t n_conns;
    bool server;
    unsigned char *spares[PUMP_SPARES]; /* idle pump buffer blocks */
    size_t n_spares;
};

struct tls_server {
    struct tls_base base;
    uint64_t handshake_timeout_ms;
    struct tls_server_options opts; /* copies; the files are read again from these paths */
};

struct tls_client {
    struct tls_base base;
    struct tls_client_options opts; /* copies; the files are read again from these paths */
};

struct tls_conn {
    struct tls_base *owner;
    struct list_link link; /* in owner->conns */
    struct ev_loop *loop;
    WOLFSSL *ssl;
    int net_fd;   /* the TCP socket carrying TLS records */
    int plain_fd; /* our end of the socketpair, -1 until the handshake succeeded */
    ev_io net_io, plain_io;
    ev_timer timer;  /* handshake timeout, then the linger bound */
    ev_timer resume; /* the next rounds of a pump that stopped at PUMP_ROUNDS */
    uint64_t timeout_ms;
    tls_ready_cb cb;
    void *cb_ctx;
    char peer[64];  /* remote address (server side) or host (client side), for messages */
    char *check_ip; /* client: IP literal the master's certificate must name */

    /* What the transport callbacks saw, so that errors can be told apart from an orderly EOF. */
    bool net_closed; /* recv returned 0 */
    int net_errno;   /* errno of a failed recv or send */

    /* One block of two PUMP_BUF_SIZE buffers and the read-ahead, NULL while the connection is
     * idle (and during the handshake, whose reads go straight to the socket). */
    unsigned char *block;
    unsigned char *down_buf; /* TLS -> plain */
    unsigned char *up_buf;   /* plain -> TLS */
    unsigned char *ahead;    /* TLS bytes received and not yet handed to wolfSSL */
    size_t down_off, down_len, up_off, up_len, ahead_off, ahead_len;
    int down_want, up_want; /* EV_READ/EV_WRITE on the TLS socket that wolfSSL waits for */
    bool net_eof;           /* the peer will send nothing more */
    bool plain_eof;         /* gRPC will send nothing more */
    bool plain_shut;        /* the peer's end was passed on to gRPC */
    bool net_shut;          /* close_notify sent and the TCP write side shut */
};

/* ---- transport callbacks: plain recv/send on the socket, never SIGPIPE ---- */

/* Hands wolfSSL up to sz bytes of the read-ahead; there must be some. */
static int take_ahead(struct tls_conn *c, char *buf, int sz)
{
    size_t n = (size_t)sz < c->ahead_len ? (size_t)sz : c->ahead_len;
    memcpy(buf, c->ahead + c->ahead_off, n);
    c->ahead_off += n;
    c->ahead_len -= n;
    return (int)n;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_conn *c = ctx;
    if (c->ahead_len > 0)
        return take_ahead(c, buf, sz);
    bool ahead = c->ahead && (size_t)sz < READ_AHEAD_SIZE;
    ssize_t n =
        ahead ? recv(c->net_fd, c->ahead, READ_AHEAD_SIZE, 0) : recv(c->net_fd, buf, (size_t)sz, 0);
    if (n > 0 && ahead) {
        c->ahead_off = 0;
        c->ahead_len = (size_t)n;
        return take_ahead(c, buf, sz);
    }
    if (n > 0)
        return (int)n;
    if (n == 0) {
        c->net_closed = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    if (errno == EINTR)
        return WOLFSSL_CBIO_ERR_ISR;
    c->net_errno = errno;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_conn *c = ctx;
    ssize_t n = send(c->net_fd, buf, (size_t)sz, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    if (errno == EINTR)
        return WOLFSSL_CBIO_ERR_ISR;
    c->net_errno = errno;
    if (errno == EPIPE)
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

/* ---- contexts ---- */

static int fail_ctx(char *err, size_t errlen, const char *what, const char *file)
{
    snprintf(err, errlen, "%s %s: %s", what, file,
             access(file, R_OK) == 0 ? "not a valid PEM file of that kind" : strerror(errno));
    return -EINVAL;
}

const char *tls_cipher_order(void)
{
#if defined(WOLFSSL_AESNI) && defined(HAVE_CPUID_INTEL)
    if (IS_INTEL_AESNI(cpuid_get_flags()))
        return CIPHERS_AES_FIRST;
#endif
    return CIPHERS_CHACHA_FIRST;
}

static int base_init(struct tls_base *b, bool server, char *err, size_t errlen)
{
    b->server = server;
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        /* This wolfSSL seeds its random generator from /dev/urandom only (no getrandom()). */
        snprintf(err, errlen, "cannot initialise wolfSSL%s",
                 access("/dev/urandom", R_OK) == 0 ? ""
                                                   : ": it needs /dev/urandom, which is missing");
        return -EIO;
    }
    b->initialised = true;
    return 0;
}

/* *dst = a copy of src (NULL stays NULL); false when out of memory. */
static bool copy_path(const char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return !src || *dst;
}

/* A TLS 1.3 context with our ciphers and I/O, without identity or trust yet: 0 and *out. */
static int new_ctx(bool server, WOLFSSL_CTX **out, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: out of memory");
        return -ENOMEM;
    }
    if (wolfSSL_CTX_set_cipher_list(ctx, tls_cipher_order()) != WOLFSSL_SUCCESS) {
        wolfSSL_CTX_free(ctx);
        snprintf(err, errlen, "this wolfSSL offers none of the TLS 1.3 cipher suites");
        return -EIO;
    }
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    *out = ctx;
    return 0;
}

/* The context b makes its next connections with becomes ctx. wolfSSL counts the references to a
 * context, so the connections made with the old one keep it until they end. */
static void base_use(struct tls_base *b, WOLFSSL_CTX *ctx)
{
    if (b->ctx)
        wolfSSL_CTX_free(b->ctx);
    b->ctx = ctx;
}

static void conn_close(struct tls_conn *c);

static void base_destroy(struct tls_base *b)
{
    while (b->conns)
        conn_close(list_item(b->conns, struct tls_conn, link));
    while (b->n_spares)
        free(b->spares[--b->n_spares]);
    if (b->ctx)
        wolfSSL_CTX_free(b->ctx);
    if (b->initialised)
        wolfSSL_Cleanup();
}

/*
 * 1 when the ECDSA key in key_file is the key of the certificate in cert_file, 0 when it is not,
 * -1 when this cannot tell (not an ECDSA key). wolfSSL 5.5's own check accepts any ECDSA key, and
 * a mismatch would otherwise show only as failing handshakes.
 */
static int ecc_key_matches(const char *cert_file, const char *key_file)
{
    int result = -1;
    unsigned char *pem = malloc(PEM_MAX), *der = malloc(PEM_MAX);
    FILE *f = fopen(key_file, "rb");
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert_file, WOLFSSL_FILETYPE_PEM);
    size_t n = pem && f ? fread(pem, 1, PEM_MAX, f) : 0;
    int dlen = n > 0 && n < PEM_MAX && der ? wc_KeyPemToDer(pem, (int)n, der, PEM_MAX, NULL) : -1;
    ecc_key key;
    word32 idx = 0;
    if (x && dlen > 0 && wc_ecc_init(&key) == 0) {
        if (wc_EccPrivateKeyDecode(der, &idx, &key, (word32)dlen) == 0) {
            unsigned char mine[256], theirs[256];
            int theirs_len = sizeof(theirs);
            int mine_len = wc_EccPublicKeyToDer(&key, mine, sizeof(mine), 1);
            if (mine_len > 0 &&
                wolfSSL_X509_get_pubkey_buffer(x, theirs, &theirs_len) == WOLFSSL_SUCCESS)
                result = mine_len == theirs_len && memcmp(mine, theirs, (size_t)mine_len) == 0;
        }
        wc_ecc_free(&key);
    }
    if (f)
        fclose(f);
    if (pem)
        memset(pem, 0, PEM_MAX);
    if (der)
        memset(der, 0, PEM_MAX);
    free(pem);
    free(der);
    wolfSSL_X509_free(x);
    return result;
}

int tls_cert_not_after(const char *cert_file, int64_t *out)
{
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert_file, WOLFSSL_FILETYPE_PEM);
    if (!x)
        return -ENOENT;
    struct tm tm = {0};
    const WOLFSSL_ASN1_TIME *t = wolfSSL_X509_get_notAfter(x);
    int rc = t && wolfSSL_ASN1_TIME_to_tm(t, &tm) == WOLFSSL_SUCCESS ? 0 : -EINVAL;
    wolfSSL_X509_free(x);
    if (rc == 0)
        *out = (int64_t)timegm(&tm);
    return rc;
}

static int load_identity(WOLFSSL_CTX *ctx, const char *cert, const char *key, char *err,
                         size_t errlen)
{
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS)
        return fail_ctx(err, errlen, "cannot load the certificate", cert);
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return fail_ctx(err, errlen, "cannot load the private key", key);
    int match = ecc_key_matches(cert, key);
    if (match == 0 || (match < 0 && wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)) {
        snprintf(err, errlen, "the private key %s does not belong to the certificate %s", key,
                 cert);
        return -EINVAL;
    }
    return 0;
}

/* The master's context from opts: its certificate and key, and the CA its clients' certificates
 * must come from, with the verification opts asks for. */
static int server_ctx(const struct tls_server_options *opts, WOLFSSL_CTX **out, char *err,
                      size_t errlen)
{
    if (!opts->ca_file && opts->require_client_cert) {
        snprintf(err, errlen, "requiring client certificates needs a CA to verify them");
        return -EINVAL;
    }
    WOLFSSL_CTX *ctx;
    int rc = new_ctx(true, &ctx, err, errlen);
    if (rc < 0)
        return rc;
    rc = load_identity(ctx, opts->cert_file, opts->key_file, err, errlen);
    if (rc == 0 && opts->ca_file &&
        wolfSSL_CTX_load_verify_locations(ctx, opts->ca_file, NULL) != WOLFSSL_SUCCESS)
        rc = fail_ctx(err, errlen, "cannot load the CA certificate", opts->ca_file);
    if (rc < 0) {
        wolfSSL_CTX_free(ctx);
        return rc;
    }
    int mode = WOLFSSL_VERIFY_NONE;
    if (opts->ca_file)
        mode = WOLFSSL_VERIFY_PEER |
               (opts->require_client_cert ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    wolfSSL_CTX_set_verify(ctx, mode, NULL);
    /* Workers reconnect with full handshakes; tickets would only cost a message per connection. */
    wolfSSL_CTX_no_ticket_TLSv13(ctx);
    *out = ctx;
    return 0;
}

int tls_server_create(const struct tls_server_options *opts, struct tls_server **out, char *err,
                      size_t errlen)
{
    struct tls_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->opts.require_client_cert = opts->require_client_cert;
    WOLFSSL_CTX *ctx = NULL;
    int rc = base_init(&s->base, true, err, errlen);
    if (rc == 0 && !(copy_path(&s->opts.cert_file, opts->cert_file) &&
                     copy_path(&s->opts.key_file, opts->key_file) &&
                     copy_path(&s->opts.ca_file, opts->ca_file))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0)
        rc = server_ctx(opts, &ctx, err, errlen);
    if (rc < 0) {
        tls_server_destroy(s);
        return rc;
    }
    base_use(&s->base, ctx);
    s->handshake_timeout_ms =
        opts->handshake_timeout_ms ? opts->handshake_timeout_ms : TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    *out = s;
    return 0;
}

int tls_server_reload(struct tls_server *s, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx;
    int rc = server_ctx(&s->opts, &ctx, err, errlen);
    if (rc == 0)
        base_use(&s->base, ctx);
    return rc;
}

/* A worker's or a client's context from opts: the CA the master's certificate must come from,
 * and its own certificate and key for mutual TLS, if any. */
static int client_ctx(const struct tls_client_options *opts, WOLFSSL_CTX **out, char *err,
                      size_t errlen)
{
    WOLFSSL_CTX *ctx;
    int rc = new_ctx(false, &ctx, err, errlen);
    if (rc < 0)
        return rc;
    if (wolfSSL_CTX_load_verify_locations(ctx, opts->ca_file, NULL) != WOLFSSL_SUCCESS)
        rc = fail_ctx(err, errlen, "cannot load the CA certificate", opts->ca_file);
    if (rc == 0 && opts->cert_file)
        rc = load_identity(ctx, opts->cert_file, opts->key_file, err, errlen);
    if (rc < 0) {
        wolfSSL_CTX_free(ctx);
        return rc;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    *out = ctx;
    return 0;
}

int tls_client_create(const struct tls_client_options *opts, struct tls_client **out, char *err,
                      size_t errlen)
{
    struct tls_client *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    WOLFSSL_CTX *ctx = NULL;
    int rc = base_init(&c->base, false, err, errlen);
    if (rc == 0 && !(copy_path(&c->opts.ca_file, opts->ca_file) &&
                     copy_path(&c->opts.cert_file, opts->cert_file) &&
                     copy_path(&c->opts.key_file, opts->key_file) &&
                     copy_path(&c->opts.server_name, opts->server_name))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0)
        rc = client_ctx(opts, &ctx, err, errlen);
    if (rc < 0) {
        tls_client_destroy(c);
        return rc;
    }
    base_use(&c->base, ctx);
    *out = c;
    return 0;
}

int tls_client_reload(struct tls_client *c, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx;
    int rc = client_ctx(&c->opts, &ctx, err, errlen);
    if (rc == 0)
        base_use(&c->base, ctx);
    return rc;
}

void tls_server_destroy(struct tls_server *s)
{
    if (!s)
        return;
    base_destroy(&s->base);
    free((char *)s->opts.cert_file);
    free((char *)s->opts.key_file);
    free((char *)s->opts.ca_file);
    free(s);
}

void tls_client_destroy(struct tls_client *c)
{
    if (!c)
        return;
    base_destroy(&c->base);
    free((char *)c->opts.server_name);
    free((char *)c->opts.ca_file);
    free((char *)c->opts.cert_file);
    free((char *)c->opts.key_file);
    free(c);
}

void tls_client_close_loop(struct tls_client *c, struct ev_loop *loop)
{
    list_foreach(conn, c->base.conns, struct tls_conn, link)
    {
        if (conn->loop == loop)
            conn_close(conn);
    }
}

void tls_thread_cleanup(void)
{
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
}

size_t tls_server_conn_count(const struct tls_server *s)
{
    return s->base.n_conns;
}

size_t tls_client_conn_count(const struct tls_client *c)
{
    return c->base.n_conns;
}

static size_t busy_count(const struct tls_base *b)
{
    size_t n = 0;
    list_foreach(c, b->conns, const struct tls_conn, link)
    {
        n += c->block != NULL;
    }
    return n;
}

size_t tls_server_busy_count(const struct tls_server *s)
{
    return busy_count(&s->base);
}

size_t tls_client_busy_count(const struct tls_client *c)
{
    return busy_count(&c->base);
}

/* ---- connections ---- */

static void set_watch(struct tls_conn *c, ev_io *w, int fd, int events)
{
    if (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(c->loop, w);
    if (!events)
        return;
    ev_io_set(w, fd, events);
    ev_io_start(c->loop, w);
}

/* Gives c its pump buffers, from the context's spares when there are. false: out of memory. */
static bool buffers_take(struct tls_conn *c)
{
    if (c->block)
        return true;
    struct tls_base *b = c->owner;
    c->block = b->n_spares ? b->spares[--b->n_spares] : malloc(2 * PUMP_BUF_SIZE + READ_AHEAD_SIZE);
    if (!c->block)
        return false;
    c->down_buf = c->block;
    c->up_buf = c->block + PUMP_BUF_SIZE;
    c->ahead = c->block + 2 * PUMP_BUF_SIZE;
    c->down_off = c->down_len = c->up_off = c->up_len = c->ahead_off = c->ahead_len = 0;
    return true;
}

/* Hands the buffers back; only when they hold nothing (or the connection is closing). */
static void buffers_release(struct tls_conn *c)
{
    if (!c->block)
        return;
    struct tls_base *b = c->owner;
    if (b->n_spares < PUMP_SPARES)
        b->spares[b->n_spares++] = c->block;
    else
        free(c->block);
    c->block = c->down_buf = c->up_buf = c->ahead = NULL;
}

static void conn_close(struct tls_conn *c)
{
    ev_io_stop(c->loop, &c->net_io);
    ev_io_stop(c->loop, &c->plain_io);
    ev_timer_stop(c->loop, &c->timer);
    ev_timer_stop(c->loop, &c->resume);
    if (c->ssl)
        wolfSSL_free(c->ssl);
    if (c->net_fd >= 0)
        close(c->net_fd);
    if (c->plain_fd >= 0)
        close(c->plain_fd);
    list_unlink(&c->link);
    c->owner->n_conns--;
    buffers_release(c);
    free(c->check_ip);
    free(c);
}

void tls_conn_cancel(struct tls_conn *conn)
{
    if (conn)
        conn_close(conn);
}

static const char *alert_name(int code)
{
    switch (code) {
    case 10:
        return "unexpected_message";
    case 20:
        return "bad_record_mac";
    case 22:
        return "record_overflow";
    case 40:
        return "handshake_failure";
    case 42:
        return "bad_certificate";
    case 43:
        return "unsupported_certificate";
    case 44:
        return "certificate_revoked";
    case 45:
        return "certificate_expired";
    case 46:
        return "certificate_unknown";
    case 47:
        return "illegal_parameter";
    case 48:
        return "unknown_ca";
    case 49:
        return "access_denied";
    case 50:
        return "decode_error";
    case 51:
        return "decrypt_error";
    case 70:
        return "protocol_version";
    case 71:
        return "insufficient_security";
    case 80:
        return "internal_error";
    case 109:
        return "missing_extension";
    case 112:
        return "unrecognized_name";
    case 116:
        return "certificate_required";
    default:
        return NULL;
    }
}

/* What a fatal alert from the master most likely means for us. */
static const char *alert_hint(int code)
{
    if (code == 116)
        return " (it requires a client certificate: --tls-cert)";
    if ((code >= 42 && code <= 46) || code == 48)
        return " (it refused our certificate)";
    return "";
}

/* One sentence for a failed handshake, naming whose certificate is at fault. */
static void describe_failure(struct tls_conn *c, int code, char *buf, size_t len)
{
    const char *whose = c->owner->server ? "the client's" : "the master's";
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    wolfSSL_get_alert_history(c->ssl, &h);
    switch (code) {
    case ASN_NO_SIGNER_E:
    case ASN_SIG_CONFIRM_E:
        snprintf(buf, len, "%s certificate is not signed by a trusted CA", whose);
        return;
    case ASN_AFTER_DATE_E:
        snprintf(buf, len, "%s certificate has expired", whose);
        return;
    case ASN_BEFORE_DATE_E:
        snprintf(buf, len, "%s certificate is not valid yet", whose);
        return;
    case DOMAIN_NAME_MISMATCH:
    case IPADDR_MISMATCH:
        snprintf(buf, len, "the master's certificate is not valid for '%s' (see --tls-server-name)",
                 c->peer);
        return;
    case NO_PEER_CERT:
        snprintf(buf, len, "the client sent no certificate, and one is required");
        return;
    case EXTKEYUSE_AUTH_E:
        snprintf(buf, len, "%s certificate is not for %s authentication (extended key usage)",
                 whose, c->owner->server ? "client" : "server");
        return;
    default:
        break;
    }
    if (h.last_rx.code > 0 && h.last_rx.level == 2) {
        const char *name = alert_name(h.last_rx.code);
        if (name)
            snprintf(buf, len, "the peer refused the handshake (alert %s)", name);
        else
            snprintf(buf, len, "the peer refused the handshake (alert %d)", h.last_rx.code);
        return;
    }
    if (c->net_closed) {
        snprintf(buf, len, "the peer closed the connection during the handshake");
        return;
    }
    if (c->net_errno) {
        snprintf(buf, len, "%s", strerror(c->net_errno));
        return;
    }
    char text[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)code, text, sizeof(text));
    switch (code) {
    case VERSION_ERROR:
    case PARSE_ERROR:
    case UNKNOWN_RECORD_TYPE:
    case LENGTH_ERROR:
    case BUFFER_ERROR:
        snprintf(buf, len, "the peer does not speak TLS 1.3 (plaintext?): %s", text);
        return;
    default:
        snprintf(buf, len, "%s (wolfSSL error %d)", text, code);
    }
}

static void handshake_failed(struct tls_conn *c, int err, const char *msg)
{
    tls_ready_cb cb = c->cb;
    void *ctx = c->cb_ctx;
    char copy[320], addr[sizeof(c->peer)];
    /* A server has many peers: say which one. A client knows whom it dialled. */
    if (c->owner->server)
        snprintf(copy, sizeof(copy), "%s: %s", c->peer, msg);
    else
        snprintf(copy, sizeof(copy), "%s", msg);
    memcpy(addr, c->peer, sizeof(addr)); /* the connection goes before the callback runs */
    conn_close(c);
    cb(ctx, &(struct tls_result){.plain_fd = -1, .addr = addr, .err = err, .errmsg = copy});
}

static void pump(struct tls_conn *c);

static void on_linger(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn_close(w->data);
}

static void start_linger(struct tls_conn *c)
{
    if (ev_is_active(&c->timer))
        return;
    ev_timer_init(&c->timer, on_linger, LINGER_S, 0.0);
    c->timer.data = c;
    ev_timer_start(c->loop, &c->timer);
}

/*
 * A worker retrying with a certificate the master refuses would repeat the same warning on every
 * attempt: say it once a minute, and at debug level in between. Any thread may log.
 */
static void warn_rarely(const char *msg)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char last[320];
    static double last_at;
    double now = ev_time();
    pthread_mutex_lock(&lock);
    bool repeat = strcmp(last, msg) == 0 && now - last_at < 60.0;
    if (!repeat) {
        snprintf(last, sizeof(last), "%s", msg);
        last_at = now;
    }
    pthread_mutex_unlock(&lock);
    if (repeat)
        log_debug("%s", msg);
    else
        log_warn("%s", msg);
}

/*
 * Errors on either side end the connection at once: gRPC reads EOF and drops the channel. In
 * TLS 1.3 a client learns that the server refused its certificate only now, from an alert after
 * the handshake, and gRPC would only say "socket closed": say it here.
 */
static void pump_abort(struct tls_conn *c)
{
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    wolfSSL_get_alert_history(c->ssl, &h);
    if (h.last_rx.code > 0 && h.last_rx.level == 2) {
        const char *name = alert_name(h.last_rx.code);
        char num[16], msg[320];
        snprintf(num, sizeof(num), "%d", h.last_rx.code);
        if (c->owner->server)
            snprintf(msg, sizeof(msg), "TLS connection from %s ended by the client with alert %s",
                     c->peer, name ? name : num);
        else
            snprintf(msg, sizeof(msg), "the master %s ended the TLS connection with alert %s%s",
                     c->peer, name ? name : num, alert_hint(h.last_rx.code));
        warn_rarely(msg);
    }
    conn_close(c);
}

static bool want_from(int code, int *want)
{
    if (code == WOLFSSL_ERROR_WANT_READ) {
        *want = EV_READ;
        return true;
    }
    if (code == WOLFSSL_ERROR_WANT_WRITE) {
        *want = EV_WRITE;
        return true;
    }
    return false;
}

/* TLS -> plain. Returns 1 on progress, 0 when waiting, -1 when the connection is gone. */
static int pump_down(struct tls_conn *c)
{
    int progress = 0;
    /* Decrypt as many records as fit, so that gRPC is woken once for all of them. */
    size_t fill = 0;
    while (c->down_len == 0 && !c->net_eof && fill < PUMP_BUF_SIZE) {
        int n = wolfSSL_read(c->ssl, c->down_buf + fill, (int)(PUMP_BUF_SIZE - fill));
        if (n > 0) {
            fill += (size_t)n;
            c->down_want = 0;
            continue;
        }
        int code = wolfSSL_get_error(c->ssl, n);
        if (want_from(code, &c->down_want))
            break;
        if (code == WOLFSSL_ERROR_ZERO_RETURN || (c->net_closed && !c->net_errno)) {
            c->net_eof = true; /* what was decrypted before still goes out first */
            c->down_want = 0;
            progress = 1;
            break;
        }
        pump_abort(c);
        return -1;
    }
    if (fill > 0) {
        c->down_off = 0;
        c->down_len = fill;
        progress = 1;
    }
    if (c->down_len > 0) {
        ssize_t w = send(c->plain_fd, c->down_buf + c->down_off, c->down_len, MSG_NOSIGNAL);
        if (w > 0) {
            c->down_off += (size_t)w;
            c->down_len -= (size_t)w;
            progress = 1;
        } else if (w < 0 && errno == EINTR) {
            progress = 1;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            pump_abort(c);
            return -1;
        }
    }
    if (c->net_eof && c->down_len == 0 && !c->plain_shut) {
        shutdown(c->plain_fd, SHUT_WR);
        c->plain_shut = true;
        start_linger(c);
        progress = 1;
    }
    return progress;
}

/* plain -> TLS. Same return values as pump_down(). */
static int pump_up(struct tls_conn *c)
{
    int progress = 0;
    if (c->up_len == 0 && !c->plain_eof) {
        ssize_t r = recv(c->plain_fd, c->up_buf, PUMP_BUF_SIZE, 0);
        if (r > 0) {
            c->up_off = 0;
            c->up_len = (size_t)r;
            progress = 1;
        } else if (r == 0) {
            c->plain_eof = true;
            progress = 1;
        } else if (errno == EINTR) {
            progress = 1;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            pump_abort(c);
            return -1;
        }
    }
    if (c->up_len > 0) {
        /* wolfSSL wants the same buffer again after WANT_WRITE; up_buf is not touched until the
         * whole of it went out. It writes all or nothing, but a partial count would be safe. */
        int n = wolfSSL_write(c->ssl, c->up_buf + c->up_off, (int)c->up_len);
        if (n > 0) {
            size_t done = (size_t)n < c->up_len ? (size_t)n : c->up_len;
            c->up_off += done;
            c->up_len -= done;
            c->up_want = 0;
            progress = 1;
        } else if (!want_from(wolfSSL_get_error(c->ssl, n), &c->up_want)) {
            pump_abort(c);
            return -1;
        }
    }
    if (c->plain_eof && c->up_len == 0 && !c->net_shut) {
        int rc = wolfSSL_shutdown(c->ssl);
        if (rc == WOLFSSL_FATAL_ERROR && want_from(wolfSSL_get_error(c->ssl, rc), &c->up_want))
            return progress;
        /* close_notify is out (or cannot be sent, which the FIN below tells just as well). */
        shutdown(c->net_fd, SHUT_WR);
        c->net_shut = true;
        c->up_want = 0;
        start_linger(c);
        progress = 1;
    }
    return progress;
}

/*
 * Moves bytes both ways until neither can go further, then waits for exactly what blocks. After
 * PUMP_ROUNDS rounds that all moved bytes it stops and goes on in the next loop iteration: a
 * peer that sends without pause (a flood, or a long log upload) cannot hold the loop.
 */
static void pump(struct tls_conn *c)
{
    if (!buffers_take(c)) {
        log_warn("TLS connection %s: out of memory for its buffers; closing it", c->peer);
        conn_close(c);
        return;
    }
    bool busy = false;
    for (int round = 0; !busy; round++) {
        int down = pump_down(c);
        if (down < 0)
            return;
        int up = pump_up(c);
        if (up < 0)
            return;
        if (!down && !up)
            break;
        busy = round + 1 == PUMP_ROUNDS;
    }
    if (c->plain_shut && c->net_shut) {
        conn_close(c);
        return;
    }
    if (busy) {
        set_watch(c, &c->net_io, c->net_fd, 0);
        set_watch(c, &c->plain_io, c->plain_fd, 0);
        ev_timer_start(c->loop, &c->resume);
        return;
    }
    int net = 0, plain = 0;
    if (c->down_len == 0 && !c->net_eof)
        net |= c->down_want;
    if (c->up_len > 0 || (c->plain_eof && !c->net_shut))
        net |= c->up_want;
    if (c->down_len > 0)
        plain |= EV_WRITE;
    if (c->up_len == 0 && !c->plain_eof)
        plain |= EV_READ;
    set_watch(c, &c->net_io, c->net_fd, net);
    set_watch(c, &c->plain_io, c->plain_fd, plain);
    /* Most connections are idle most of the time (heartbeats): they hold no buffers then. */
    if (c->down_len == 0 && c->up_len == 0 && c->ahead_len == 0)
        buffers_release(c);
}

static void on_pump_io(struct ev_loop *loop, ev_io *w, int revents)
{
    pump(w->data);
}

static void on_pump_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    pump(w->data);
}

static bool is_ip_literal(const char *s)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* Whether the certificate lists the address ip among its subject alternative names. Compared as
 * bytes, so that "::1" matches however the certificate spells it. */
static bool cert_names_ip(WOLFSSL_X509 *x, const char *ip)
{
    unsigned char want[16];
    int want_len = 4;
    if (inet_pton(AF_INET, ip, want) != 1) {
        if (inet_pton(AF_INET6, ip, want) != 1)
            return false;
        want_len = 16;
    }
    WOLFSSL_STACK *names = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    int n = names ? wolfSSL_sk_GENERAL_NAME_num(names) : 0;
    for (int i = 0; i < n && !found; i++) {
        WOLFSSL_GENERAL_NAME *g = wolfSSL_sk_GENERAL_NAME_value(names, i);
        if (!g || g->type != SAN_IP_TYPE || !g->d.iPAddress)
            continue;
        found = wolfSSL_ASN1_STRING_length(g->d.iPAddress) == want_len &&
                memcmp(wolfSSL_ASN1_STRING_data(g->d.iPAddress), want, (size_t)want_len) == 0;
    }
    if (names)
        wolfSSL_sk_GENERAL_NAME_pop_free(names, wolfSSL_GENERAL_NAME_free);
    return found;
}

/* What the server side learns of a verified client certificate. */
struct peer_subject {
    bool present;
    char cn[256];               /* "" when none */
    char ous[TLS_MAX_OUS][128]; /* the subject's OU values, in order */
    const char *ou_ptrs[TLS_MAX_OUS];
    size_t n_ous;
};

/* Copies the values of the subject's OU entries (the certificate's role, see core/roles.h, is
 * judged above this layer). Entries past TLS_MAX_OUS are left out. */
static void read_ous(WOLFSSL_X509 *cert, struct peer_subject *p)
{
    WOLFSSL_X509_NAME *name = wolfSSL_X509_get_subject_name(cert);
    int at = -1;
    while (name && p->n_ous < TLS_MAX_OUS &&
           (at = wolfSSL_X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, at)) >= 0) {
        WOLFSSL_X509_NAME_ENTRY *e = wolfSSL_X509_NAME_get_entry(name, at);
        WOLFSSL_ASN1_STRING *v = e ? wolfSSL_X509_NAME_ENTRY_get_data(e) : NULL;
        if (!v)
            continue;
        int len = wolfSSL_ASN1_STRING_length(v);
        char *out = p->ous[p->n_ous];
        size_t n = len < 0                           ? 0
                   : (size_t)len < sizeof(p->ous[0]) ? (size_t)len
                                                     : sizeof(p->ous[0]) - 1;
        memcpy(out, wolfSSL_ASN1_STRING_data(v), n);
        out[n] = '\0';
        p->ou_ptrs[p->n_ous] = out;
        p->n_ous++;
    }
}

/* Checks what wolfSSL cannot check by itself; on the server side sub gets what the verified
 * client certificate says of its holder. 0 or -errno with msg saying why. */
static int check_peer(struct tls_conn *c, struct peer_subject *sub, char *msg, size_t len)
{
    WOLFSSL_X509 *cert = wolfSSL_get_peer_certificate(c->ssl);
    int rc = 0;
    if (c->check_ip && (!cert || !cert_names_ip(cert, c->check_ip))) {
        snprintf(msg, len,
                 "the master's certificate is not valid for the address %s (see "
                 "--tls-server-name)",
                 c->check_ip);
        rc = -ECONNREFUSED;
    } else if (c->owner->server && cert) {
        sub->present = true;
        if (wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(cert), NID_commonName,
                                              sub->cn, (int)sizeof(sub->cn)) <= 0)
            sub->cn[0] = '\0';
        read_ous(cert, sub);
    }
    if (cert)
        wolfSSL_X509_free(cert);
    return rc;
}

static void handshake_done(struct tls_conn *c)
{
    char msg[256];
    struct peer_subject sub = {.present = false};
    int rc = check_peer(c, &sub, msg, sizeof(msg));
    if (rc < 0) {
        handshake_failed(c, rc, msg);
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        snprintf(msg, sizeof(msg), "socketpair: %s", strerror(e));
        handshake_failed(c, -e, msg);
        return;
    }
    c->plain_fd = sv[0];
    int sndbuf = PAIR_SNDBUF;
    for (int i = 0; i < 2; i++)
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    ev_timer_stop(c->loop, &c->timer);
    ev_io_stop(c->loop, &c->net_io);
    ev_io_init(&c->net_io, on_pump_io, c->net_fd, EV_READ);
    ev_io_init(&c->plain_io, on_pump_io, c->plain_fd, EV_READ);
    c->net_io.data = c->plain_io.data = c;
    struct tls_result r = {.plain_fd = sv[1],
                           .addr = c->peer,
                           .cert_cn = sub.cn[0] ? sub.cn : NULL,
                           .has_cert = sub.present,
                           .cert_ous = sub.ou_ptrs,
                           .n_cert_ous = sub.n_ous};
    c->cb(c->cb_ctx, &r);
    /* wolfSSL may already hold application data that came with the last handshake flight. */
    pump(c);
}

static void handshake_step(struct tls_conn *c)
{
    int rc = c->owner->server ? wolfSSL_accept(c->ssl) : wolfSSL_connect(c->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        handshake_done(c);
        return;
    }
    int code = wolfSSL_get_error(c->ssl, rc);
    int want;
    if (want_from(code, &want)) {
        set_watch(c, &c->net_io, c->net_fd, want);
        return;
    }
    char msg[256];
    describe_failure(c, code, msg, sizeof(msg));
    handshake_failed(c, c->net_errno ? -c->net_errno : -ECONNREFUSED, msg);
}

static void on_handshake_io(struct ev_loop *loop, ev_io *w, int revents)
{
    handshake_step(w->data);
}

static void on_handshake_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tls_conn *c = w->data;
    char msg[128];
    snprintf(msg, sizeof(msg), "no TLS handshake within %.1f s", (double)c->timeout_ms / 1000.0);
    handshake_failed(c, -ETIMEDOUT, msg);
}

static struct tls_conn *conn_new(struct ev_loop *loop, struct tls_base *b, int fd, const char *peer,
                                 uint64_t timeout_ms, tls_ready_cb cb, void *ctx)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ssl = wolfSSL_new(b->ctx);
    if (!c->ssl) {
        free(c);
        return NULL;
    }
    c->owner = b;
    c->loop = loop;
    c->net_fd = fd;
    c->plain_fd = -1;
    c->cb = cb;
    c->cb_ctx = ctx;
    c->timeout_ms = timeout_ms;
    snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "?");
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    /* gRPC clients of other languages (grpc-go) insist on ALPN "h2" over TLS; peers that do not
     * send ALPN at all are served too. */
    char alpn[] = "h2";
    if (wolfSSL_UseALPN(c->ssl, alpn, sizeof(alpn) - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) !=
        WOLFSSL_SUCCESS) {
        wolfSSL_free(c->ssl);
        free(c);
        return NULL;
    }
    ev_io_init(&c->net_io, on_handshake_io, fd, EV_READ);
    c->net_io.data = c;
    ev_init(&c->plain_io, on_pump_io);
    c->plain_io.data = c;
    ev_timer_init(&c->timer, on_handshake_timeout, (double)timeout_ms / 1000.0, 0.0);
    c->timer.data = c;
    ev_timer_init(&c->resume, on_pump_resume, 0.0, 0.0);
    c->resume.data = c;
    if (timeout_ms)
        ev_timer_start(loop, &c->timer);
    list_push(&b->conns, &c->link);
    b->n_conns++;
    return c;
}

int tls_accept(struct ev_loop *loop, struct tls_server *s, int fd, const char *peer,
               tls_ready_cb cb, void *ctx)
{
    struct tls_conn *c = conn_new(loop, &s->base, fd, peer, s->handshake_timeout_ms, cb, ctx);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    /* The client speaks first; waiting for it also keeps cb out of this call. */
    set_watch(c, &c->net_io, fd, EV_READ);
    return 0;
}

int tls_connect(struct ev_loop *loop, struct tls_client *cl, int fd, const char *host,
                uint64_t timeout_ms, tls_ready_cb cb, void *ctx, struct tls_conn **out)
{
    const char *name = cl->opts.server_name ? cl->opts.server_name : host;
    struct tls_conn *c = conn_new(loop, &cl->base, fd, name, timeout_ms, cb, ctx);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    int rc = 0;
    if (is_ip_literal(name)) {
        /* SNI carries host names only (RFC 6066); an address is checked once the handshake is
         * done, against the certificate's IP address entries. */
        if (!(c->check_ip = strdup(name)))
            rc = -ENOMEM;
    } else if (wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name)) !=
                   WOLFSSL_SUCCESS ||
               wolfSSL_check_domain_name(c->ssl, name) != WOLFSSL_SUCCESS) {
        rc = -ENOMEM;
    }
    if (rc < 0) {
        conn_close(c);
        return rc;
    }
    *out = c;
    /* The first flight goes out from the loop, so that cb never runs inside this call. */
    set_watch(c, &c->net_io, fd, EV_WRITE);
    return 0;
}
