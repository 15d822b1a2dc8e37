#include "core/roles.h"

#include <string.h>

unsigned role_parse(const char *word)
{
    if (!word)
        return 0;
    if (strcmp(word, "worker") == 0)
        return ROLE_NODE;
    if (strcmp(word, "admin") == 0)
        return ROLE_ADMIN;
    return 0;
}

const char *role_word(unsigned role)
{
    return role == ROLE_ADMIN ? "admin" : role == ROLE_NODE ? "worker" : "?";
}

enum cert_role role_of_cert_ous(const char *const *ous, size_t n)
{
    size_t plen = strlen(ROLE_OU_PREFIX);
    unsigned seen = 0;
    bool unknown = false;
    for (size_t i = 0; i < n; i++) {
        if (!ous[i] || strncmp(ous[i], ROLE_OU_PREFIX, plen) != 0)
            continue;
        unsigned r = role_parse(ous[i] + plen);
        if (r)
            seen |= r;
        else
            unknown = true;
    }
    if (unknown || seen == ROLE_ALL)
        return CERT_ROLE_INVALID;
    if (seen == ROLE_NODE)
        return CERT_ROLE_WORKER;
    if (seen == ROLE_ADMIN)
        return CERT_ROLE_ADMIN;
    return CERT_ROLE_NONE;
}

unsigned role_cert_allows(enum cert_role r)
{
    switch (r) {
    case CERT_ROLE_ABSENT:
        return ROLE_ALL;
    case CERT_ROLE_NONE:
    case CERT_ROLE_WORKER:
        return ROLE_NODE;
    case CERT_ROLE_ADMIN:
        return ROLE_ADMIN;
    case CERT_ROLE_INVALID:
    default:
        return 0;
    }
}

enum role_verdict role_check(unsigned need, unsigned secret, enum cert_role cert)
{
    if (!(secret & ROLE_ALL))
        return ROLE_NO_SECRET;
    if (!(secret & need))
        return ROLE_WRONG_SECRET;
    if (cert == CERT_ROLE_INVALID)
        return ROLE_INVALID_CERT;
    if (!(role_cert_allows(cert) & need))
        return ROLE_WRONG_CERT;
    return ROLE_OK;
}

const char *role_verdict_reason(enum role_verdict v, unsigned need)
{
    switch (v) {
    case ROLE_OK:
        return "ok";
    case ROLE_NO_SECRET:
        return "missing or wrong auth key";
    case ROLE_WRONG_SECRET:
        return need == ROLE_ADMIN ? "the node key cannot call admin methods (use the admin key)"
                                  : "the admin key cannot call worker methods (use the node key)";
    case ROLE_INVALID_CERT:
        return "the client certificate's role (subject OU " ROLE_OU_PREFIX "...) is not valid";
    case ROLE_WRONG_CERT:
    default:
        return need == ROLE_ADMIN
                   ? "the client certificate is not an admin's (cert issue --role=admin)"
                   : "an admin certificate cannot call worker methods";
    }
}
