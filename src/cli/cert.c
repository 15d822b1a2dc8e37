/*
 * crawlab-node cert init / cert issue: a private CA and the certificates of a cluster, made with
 * wolfCrypt alone (ECDSA P-256, SHA-256 signatures). The CA signs the master's certificate, whose
 * subject alternative names are the names and addresses workers dial, and the client certificates
 * of workers and people. Nothing is ever overwritten: every file is created with O_EXCL.
 *
 * A client certificate carries its holder's role (core/roles.h) as the one organizational unit of
 * its subject: "crawlab-node:worker" or "crawlab-node:admin". The master reads it back and
 * allows the certificate the worker's methods or the admin's, never both.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include "cli/commands.h"
#include "core/roles.h"

#define CA_DAYS     CONFIG_CERT_DAYS_MAX /* ten years */
#define DER_MAX     4096
#define PEM_MAX     8192
#define SERIAL_SIZE 16
#define ORG_NAME    "crawlab-node"
#define CA_NAME     "crawlab-node CA"

/* A key pair and the certificate made for it, in DER. */
struct credential {
    ecc_key key;
    bool key_live;
    unsigned char der[DER_MAX];
    int der_len;
};

/* The files one command writes, so that a failure half-way removes what it created. */
struct outputs {
    char paths[8][4096];
    size_t n;
};

static void fail_crypto(const char *what, int rc)
{
    fprintf(stderr, "crawlab-node: cert: %s failed: %s (%d)\n", what,
            wc_GetErrorString(rc < 0 ? rc : -rc), rc);
}

static int make_key(WC_RNG *rng, struct credential *c)
{
    int rc = wc_ecc_init(&c->key);
    if (rc == 0) {
        c->key_live = true;
        rc = wc_ecc_make_key_ex(rng, 32, &c->key, ECC_SECP256R1);
    }
    if (rc != 0)
        fail_crypto("generating an ECDSA P-256 key", rc);
    return rc == 0 ? 0 : -EIO;
}

static void credential_free(struct credential *c)
{
    if (c->key_live)
        wc_ecc_free(&c->key);
    c->key_live = false;
}

/* The subject: our organization, cn, and for a client certificate the OU of its role (0: none). */
static void set_name(CertName *n, const char *cn, unsigned role)
{
    snprintf(n->org, sizeof(n->org), "%s", ORG_NAME);
    snprintf(n->commonName, sizeof(n->commonName), "%s", cn);
    n->orgEnc = n->commonNameEnc = CTC_UTF8;
    if (role) {
        snprintf(n->unit, sizeof(n->unit), "%s%s", ROLE_OU_PREFIX, role_word(role));
        n->unitEnc = CTC_UTF8;
    }
}

/* Appends a DER length; returns the bytes written. */
static size_t der_length(unsigned char *out, size_t len)
{
    if (len < 0x80) {
        out[0] = (unsigned char)len;
        return 1;
    }
    if (len < 0x100) {
        out[0] = 0x81;
        out[1] = (unsigned char)len;
        return 2;
    }
    out[0] = 0x82;
    out[1] = (unsigned char)(len >> 8);
    out[2] = (unsigned char)len;
    return 3;
}

/*
 * The subjectAltName value: a SEQUENCE of dNSName ([2] IA5String) and iPAddress ([7] OCTET
 * STRING, 4 or 16 bytes) entries, as wolfSSL wants it in Cert.altNames. -E2BIG when too long.
 */
static int encode_alt_names(char *const *hosts, size_t n, unsigned char *out, size_t cap,
                            int *out_len)
{
    unsigned char body[CTC_MAX_ALT_SIZE];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char addr[16];
        const unsigned char *value = (const unsigned char *)hosts[i];
        size_t vlen = strlen(hosts[i]);
        unsigned char tag = 0x82;
        if (inet_pton(AF_INET, hosts[i], addr) == 1) {
            value = addr;
            vlen = 4;
            tag = 0x87;
        } else if (inet_pton(AF_INET6, hosts[i], addr) == 1) {
            value = addr;
            vlen = 16;
            tag = 0x87;
        }
        if (len + vlen + 4 > sizeof(body))
            return -E2BIG;
        body[len++] = tag;
        len += der_length(body + len, vlen);
        memcpy(body + len, value, vlen);
        len += vlen;
    }
    if (len + 4 > cap || len > 0xffff)
        return -E2BIG;
    size_t o = 0;
    out[o++] = 0x30;
    o += der_length(out + o, len);
    memcpy(out + o, body, len);
    *out_len = (int)(o + len);
    return 0;
}

/* UTCTime as wolfSSL copies it into a certificate: tag, length, YYMMDDHHMMSSZ. */
static void utc_time(time_t t, unsigned char *out, int *len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char text[64];
    snprintf(text, sizeof(text), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    out[0] = 0x17; /* UTCTime */
    out[1] = 13;
    memcpy(out + 2, text, 13);
    *len = 15;
}

struct leaf_spec {
    const char *cn;
    char *const *hosts; /* subject alternative names; NULL for none */
    size_t n_hosts;
    bool server; /* extended key usage serverAuth, else clientAuth */
    bool expired;
    int days;      /* validity from now; ignored when expired */
    unsigned role; /* a client certificate's role (ROLE_NODE, ROLE_ADMIN); 0 for the master's */
};

/*
 * Makes and signs a certificate for subject's key. With issuer NULL it is a self-signed CA;
 * otherwise issuer (key and certificate) signs a leaf described by spec.
 */
static int make_cert(WC_RNG *rng, struct credential *subject, const struct credential *issuer,
                     const struct leaf_spec *spec)
{
    Cert *cert = calloc(1, sizeof(*cert));
    if (!cert)
        return -ENOMEM;
    int rc = wc_InitCert(cert);
    const char *step = "preparing a certificate";
    if (rc == 0) {
        cert->sigType = CTC_SHA256wECDSA;
        cert->serialSz = SERIAL_SIZE;
        rc = wc_RNG_GenerateBlock(rng, cert->serial, SERIAL_SIZE);
        cert->serial[0] &= 0x7f; /* a positive INTEGER */
        cert->serial[0] |= 0x01; /* of full length */
    }
    if (rc == 0 && !issuer) {
        cert->isCA = 1;
        cert->selfSigned = 1;
        cert->daysValid = CA_DAYS;
        set_name(&cert->subject, CA_NAME, 0);
        step = "setting the CA extensions";
        rc = wc_SetKeyUsage(cert, "keyCertSign,cRLSign");
        if (rc == 0)
            rc = wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, &subject->key);
        if (rc == 0)
            rc = wc_SetAuthKeyIdFromPublicKey_ex(cert, ECC_TYPE, &subject->key);
    } else if (rc == 0) {
        cert->isCA = 0;
        cert->selfSigned = 0;
        cert->daysValid = spec->days;
        set_name(&cert->subject, spec->cn, spec->role);
        step = "setting the issuer";
        rc = wc_SetIssuerBuffer(cert, issuer->der, issuer->der_len);
        if (rc == 0) {
            step = "setting the extensions";
            rc = wc_SetKeyUsage(cert, "digitalSignature");
        }
        if (rc == 0)
            rc = wc_SetExtKeyUsage(cert, spec->server ? "serverAuth" : "clientAuth");
        if (rc == 0)
            rc = wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, &subject->key);
        if (rc == 0)
            rc = wc_SetAuthKeyIdFromPublicKey_ex(cert, ECC_TYPE, (void *)&issuer->key);
        if (rc == 0 && spec->n_hosts > 0) {
            step = "encoding the subject alternative names";
            rc = encode_alt_names(spec->hosts, spec->n_hosts, cert->altNames,
                                  sizeof(cert->altNames), &cert->altNamesSz);
        }
        if (rc == 0 && spec->expired) {
            time_t now = time(NULL);
            utc_time(now - 2 * 86400, cert->beforeDate, &cert->beforeDateSz);
            utc_time(now - 86400, cert->afterDate, &cert->afterDateSz);
        }
    }
    if (rc == 0) {
        step = "encoding the certificate";
        rc = wc_MakeCert_ex(cert, subject->der, DER_MAX, ECC_TYPE, &subject->key, rng);
    }
    if (rc >= 0) {
        step = "signing the certificate";
        const ecc_key *signer = issuer ? &issuer->key : &subject->key;
        rc = wc_SignCert_ex(cert->bodySz, cert->sigType, subject->der, DER_MAX, ECC_TYPE,
                            (void *)signer, rng);
    }
    free(cert);
    if (rc < 0) {
        if (rc == -E2BIG)
            fprintf(stderr, "crawlab-node: cert: too many or too long --master-host names\n");
        else
            fail_crypto(step, rc);
        return -EIO;
    }
    subject->der_len = rc;
    return 0;
}

static void remove_outputs(struct outputs *o)
{
    for (size_t i = 0; i < o->n; i++)
        unlink(o->paths[i]);
    o->n = 0;
}

/* Creates path (never replacing a file) with mode and writes len bytes. */
static int write_new(struct outputs *o, const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "crawlab-node: cert: cannot create %s: %s\n", path, strerror(errno));
        return -errno;
    }
    snprintf(o->paths[o->n++], sizeof(o->paths[0]), "%s", path);
    /* The umask may have taken bits away; it must not have added any (it cannot), and a key
     * must never be more than 0600. */
    fchmod(fd, mode);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "crawlab-node: cert: cannot write %s: %s\n", path, strerror(errno));
            close(fd);
            return -EIO;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fprintf(stderr, "crawlab-node: cert: cannot write %s: %s\n", path, strerror(errno));
        return -EIO;
    }
    return 0;
}

static void join(char *out, size_t len, const char *dir, const char *name, const char *ext)
{
    snprintf(out, len, "%s/%s%s", dir, name, ext);
}

/* Writes DIR/NAME.pem (0644) and DIR/NAME.key (0600). */
static int save_credential(struct outputs *o, const char *dir, const char *name,
                           struct credential *c)
{
    unsigned char der[DER_MAX], pem[PEM_MAX];
    char path[4096];
    int len = wc_DerToPem(c->der, (word32)c->der_len, pem, sizeof(pem), CERT_TYPE);
    if (len < 0) {
        fail_crypto("writing the certificate as PEM", len);
        return -EIO;
    }
    join(path, sizeof(path), dir, name, ".pem");
    int rc = write_new(o, path, pem, (size_t)len, 0644);
    if (rc < 0)
        return rc;
    int dlen = wc_EccKeyToDer(&c->key, der, sizeof(der));
    len = dlen < 0 ? dlen : wc_DerToPem(der, (word32)dlen, pem, sizeof(pem), ECC_PRIVATEKEY_TYPE);
    memset(der, 0, sizeof(der));
    if (len < 0) {
        fail_crypto("writing the private key as PEM", len);
        return -EIO;
    }
    join(path, sizeof(path), dir, name, ".key");
    rc = write_new(o, path, pem, (size_t)len, 0600);
    memset(pem, 0, sizeof(pem));
    return rc;
}

/* Reads a whole small file; *len excludes the NUL appended. */
static unsigned char *read_small(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "crawlab-node: cert: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = malloc(PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n == 0 || n > PEM_MAX) {
        fprintf(stderr, "crawlab-node: cert: %s is empty or too large for a PEM file\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Loads DIR/ca.pem and DIR/ca.key into ca. */
static int load_ca(const char *dir, struct credential *ca)
{
    char path[4096];
    size_t len;
    join(path, sizeof(path), dir, "ca", ".pem");
    unsigned char *pem = read_small(path, &len);
    if (!pem)
        return -EIO;
    int rc = wc_CertPemToDer(pem, (int)len, ca->der, DER_MAX, CERT_TYPE);
    free(pem);
    if (rc < 0) {
        fprintf(stderr, "crawlab-node: cert: %s is not a PEM certificate\n", path);
        return -EIO;
    }
    ca->der_len = rc;

    join(path, sizeof(path), dir, "ca", ".key");
    pem = read_small(path, &len);
    if (!pem)
        return -EIO;
    unsigned char der[DER_MAX];
    rc = wc_KeyPemToDer(pem, (int)len, der, sizeof(der), NULL);
    memset(pem, 0, len);
    free(pem);
    word32 idx = 0;
    if (rc >= 0 && wc_ecc_init(&ca->key) == 0) {
        ca->key_live = true;
        rc = wc_EccPrivateKeyDecode(der, &idx, &ca->key, (word32)rc);
    } else if (rc >= 0) {
        rc = -1;
    }
    memset(der, 0, sizeof(der));
    if (rc < 0) {
        fprintf(stderr, "crawlab-node: cert: %s is not a PEM ECDSA private key\n", path);
        return -EIO;
    }
    return 0;
}

/* Checks that cert chains to ca with wolfSSL's own verifier, as the peers will. */
static int verify_issued(const struct credential *ca, const struct credential *cert,
                         bool expect_expired)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    if (!cm)
        return -ENOMEM;
    int rc = wolfSSL_CertManagerLoadCABuffer(cm, ca->der, ca->der_len, WOLFSSL_FILETYPE_ASN1);
    if (rc == WOLFSSL_SUCCESS)
        rc = wolfSSL_CertManagerVerifyBuffer(cm, cert->der, cert->der_len, WOLFSSL_FILETYPE_ASN1);
    wolfSSL_CertManagerFree(cm);
    if (rc == WOLFSSL_SUCCESS || (expect_expired && rc == ASN_AFTER_DATE_E))
        return 0;
    fprintf(stderr,
            "crawlab-node: cert: the new certificate does not verify against the CA (%s); is "
            "ca.key the key of ca.pem?\n",
            wc_GetErrorString(rc));
    return -EIO;
}

/* Refuses early, before any key is made, when a file to be created exists already. */
static int check_absent(const char *dir, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *exts[] = {".pem", ".key"};
        for (size_t j = 0; j < 2; j++) {
            char path[4096];
            struct stat st;
            join(path, sizeof(path), dir, names[i], exts[j]);
            if (lstat(path, &st) == 0) {
                fprintf(stderr, "crawlab-node: cert: %s exists already; nothing was changed\n",
                        path);
                return -EEXIST;
            }
        }
    }
    return 0;
}

/*
 * What a cert command holds while it runs: wolfCrypt, a seeded random generator, the credentials
 * it makes or loads (init: CA, master, worker; issue: CA, the new one) and the files it wrote.
 * Large (the DER buffers), so it lives on the heap.
 */
struct cert_run {
    WC_RNG rng;
    bool rng_live, crypto_live;
    struct credential cred[3];
    struct outputs out;
};

/* Allocates *r and starts wolfCrypt and the generator. On failure *r may still be set: the
 * caller passes it to run_end either way. */
static int run_start(struct cert_run **r)
{
    struct cert_run *run = *r = calloc(1, sizeof(*run));
    if (!run)
        return -ENOMEM;
    if (wolfCrypt_Init() != 0) {
        fprintf(stderr, "crawlab-node: cert: cannot initialise wolfCrypt\n");
        return -EIO;
    }
    run->crypto_live = true;
    if (wc_InitRng(&run->rng) != 0) {
        fprintf(stderr, "crawlab-node: cert: cannot seed the random number generator (from "
                        "/dev/urandom)\n");
        return -EIO;
    }
    run->rng_live = true;
    return 0;
}

/* Releases r (NULL allowed), keys wiped; returns the command's exit status for rc. */
static int run_end(struct cert_run *r, int rc)
{
    if (rc == -ENOMEM)
        fprintf(stderr, "crawlab-node: cert: out of memory\n");
    if (r) {
        if (r->rng_live)
            wc_FreeRng(&r->rng);
        for (size_t i = 0; i < 3; i++)
            credential_free(&r->cred[i]);
        bool crypto_live = r->crypto_live;
        memset(r, 0, sizeof(*r));
        free(r);
        if (crypto_live)
            wolfCrypt_Cleanup();
    }
    return rc < 0 ? 1 : 0;
}

/* A new key for leaf and its certificate, signed by ca as spec says, checked against ca. */
static int issue_leaf(struct cert_run *r, struct credential *leaf, const struct credential *ca,
                      const struct leaf_spec *spec)
{
    int rc = make_key(&r->rng, leaf);
    if (rc == 0)
        rc = make_cert(&r->rng, leaf, ca, spec);
    if (rc == 0)
        rc = verify_issued(ca, leaf, spec->expired);
    return rc;
}

/* Writes DIR/NAME.pem and DIR/NAME.key of credentials from..to-1, names[i] for cred[i]; on
 * failure removes every file it wrote, so that a command leaves all of its files or none. */
static int save_all(struct cert_run *r, const char *dir, const char *const *names, size_t from,
                    size_t to)
{
    int rc = 0;
    for (size_t i = from; i < to && rc == 0; i++)
        rc = save_credential(&r->out, dir, names[i], &r->cred[i]);
    if (rc < 0)
        remove_outputs(&r->out);
    return rc;
}

int cli_cert_init(const struct config *cfg)
{
    const char *dir = cfg->cert_dir;
    static const char *const names[] = {"ca", "master", "worker"};
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "crawlab-node: cert: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (check_absent(dir, names, 3) < 0)
        return 1;

    struct cert_run *r;
    int rc = run_start(&r);
    struct leaf_spec master = {.cn = "master",
                               .hosts = cfg->cert_hosts,
                               .n_hosts = cfg->n_cert_hosts,
                               .server = true,
                               .days = CONFIG_CERT_DAYS_DEFAULT};
    struct leaf_spec worker = {.cn = "worker", .days = CONFIG_CERT_DAYS_DEFAULT, .role = ROLE_NODE};
    if (rc < 0 || (rc = make_key(&r->rng, &r->cred[0])) < 0 ||
        (rc = make_cert(&r->rng, &r->cred[0], NULL, NULL)) < 0 ||
        (rc = issue_leaf(r, &r->cred[1], &r->cred[0], &master)) < 0 ||
        (rc = issue_leaf(r, &r->cred[2], &r->cred[0], &worker)) < 0 ||
        (rc = save_all(r, dir, names, 0, 3)) < 0)
        return run_end(r, rc);
    bool v6 = strchr(cfg->cert_hosts[0], ':') != NULL;
    printf("created in %s:\n"
           "  ca.pem, ca.key          the CA (valid 10 years); keep ca.key off the cluster\n"
           "  master.pem, master.key  the master (valid 2 years) for",
           dir);
    for (size_t i = 0; i < cfg->n_cert_hosts; i++)
        printf("%s%s", i ? ", " : " ", cfg->cert_hosts[i]);
    printf("\n"
           "  worker.pem, worker.key  a worker certificate (role worker, node key \"worker\", "
           "valid 2 years)\n"
           "master: crawlab-node --role=master --tls-cert=%s/master.pem --tls-key=%s/master.key "
           "--tls-ca=%s/ca.pem\n"
           "worker: crawlab-node --role=worker --master=%s%s%s:9666 --node-key=worker "
           "--tls-ca=%s/ca.pem --tls-cert=%s/worker.pem --tls-key=%s/worker.key\n"
           "admins: crawlab-node cert issue --dir=%s --name=NAME --role=admin\n",
           dir, dir, dir, v6 ? "[" : "", cfg->cert_hosts[0], v6 ? "]" : "", dir, dir, dir, dir);
    return run_end(r, 0);
}

int cli_cert_issue(const struct config *cfg)
{
    const char *dir = cfg->cert_dir;
    const char *names[] = {"ca", cfg->cert_name};
    if (check_absent(dir, names + 1, 1) < 0)
        return 1;

    struct cert_run *r;
    int rc = run_start(&r);
    struct leaf_spec spec = {.cn = cfg->cert_name,
                             .expired = cfg->cert_test_expired,
                             .days = cfg->cert_days,
                             .role = cfg->cert_role ? cfg->cert_role : (unsigned)ROLE_NODE};
    if (rc < 0 || (rc = load_ca(dir, &r->cred[0])) < 0 ||
        (rc = issue_leaf(r, &r->cred[1], &r->cred[0], &spec)) < 0 ||
        (rc = save_all(r, dir, names, 1, 2)) < 0)
        return run_end(r, rc);
    char validity[32];
    if (spec.expired)
        snprintf(validity, sizeof(validity), "EXPIRED, for tests");
    else if (spec.days == CONFIG_CERT_DAYS_DEFAULT)
        snprintf(validity, sizeof(validity), "valid 2 years");
    else
        snprintf(validity, sizeof(validity), "valid %d day%s", spec.days,
                 spec.days == 1 ? "" : "s");
    printf("created %s/%s.pem and %s/%s.key (common name \"%s\", role %s, %s)\n", dir,
           cfg->cert_name, dir, cfg->cert_name, cfg->cert_name, role_word(spec.role), validity);
    return run_end(r, 0);
}
