/*
 * Who may call what: the two roles of the cluster, how a certificate carries one, and the verdict
 * on a call from the secret it presented and the certificate of its connection.
 *
 * Roles: ROLE_NODE is what a worker does (NodeService, TaskService: register, heartbeats, fetch,
 * report, stream output); ROLE_ADMIN is what a person or a script does (AdminService: list,
 * submit, cancel, read logs and results). Each has its own secret (auth.key and admin.key on the
 * master), and with mutual TLS each certificate names one of them in its subject: one
 * organizationalUnitName (OU) of the form "crawlab-node:worker" or "crawlab-node:admin"
 * (ROLE_OU_PREFIX + the role's name). docs/security.md states the rules.
 *
 * Every function here is pure and reentrant: any thread may call it, none blocks or allocates.
 */
#ifndef CRAWLAB_CORE_ROLES_H
#define CRAWLAB_CORE_ROLES_H

#include <stdbool.h>
#include <stddef.h>

/* Roles as bits, so that a set of them (what a secret or a certificate allows) is a mask. */
enum role {
    ROLE_NODE = 1u << 0,
    ROLE_ADMIN = 1u << 1,
};
#define ROLE_ALL (ROLE_NODE | ROLE_ADMIN)

/* The subject OU of a certificate with a role: the prefix, then "worker" or "admin". */
#define ROLE_OU_PREFIX "crawlab-node:"

/* What the client certificate of a connection says about its role. */
enum cert_role {
    CERT_ROLE_ABSENT,  /* no client certificate: only the secret decides */
    CERT_ROLE_NONE,    /* a certificate without a role OU (made before roles existed) */
    CERT_ROLE_WORKER,  /* OU crawlab-node:worker */
    CERT_ROLE_ADMIN,   /* OU crawlab-node:admin */
    CERT_ROLE_INVALID, /* an OU with the prefix but an unknown role, or two different roles */
};

/* "worker" -> ROLE_NODE, "admin" -> ROLE_ADMIN (the words of cert issue --role); 0 otherwise. */
unsigned role_parse(const char *word);

/* The word of a certificate role: "worker" for ROLE_NODE, "admin" for ROLE_ADMIN. */
const char *role_word(unsigned role);

/* The role a certificate carries, from the values of its subject's OU entries (n of them, in any
 * order; entries without ROLE_OU_PREFIX are ignored). */
enum cert_role role_of_cert_ous(const char *const *ous, size_t n);

/* The roles a certificate allows. A certificate without a role counts as a worker's: workers
 * certified before roles existed keep working, and none of them becomes an admin. No
 * certificate allows everything (the secret decides); an invalid one allows nothing. */
unsigned role_cert_allows(enum cert_role r);

/* The verdict on one call. */
enum role_verdict {
    ROLE_OK,
    ROLE_NO_SECRET,    /* no secret, or one that is neither the node nor the admin secret */
    ROLE_WRONG_SECRET, /* a valid secret of the other role */
    ROLE_WRONG_CERT,   /* the certificate's role does not allow the method */
    ROLE_INVALID_CERT, /* the certificate's role cannot be read */
};

/*
 * need: the role of the method (ROLE_NODE or ROLE_ADMIN). secret: the roles the presented secret
 * proves (0 for none or a wrong one; ROLE_ALL when authentication is off). cert: the connection's
 * certificate. The secret is judged first, so a caller without one learns nothing about roles.
 */
enum role_verdict role_check(unsigned need, unsigned secret, enum cert_role cert);

/* A reason for a refused verdict, for the caller and the log (a static string). */
const char *role_verdict_reason(enum role_verdict v, unsigned need);

#endif
