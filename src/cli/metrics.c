#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "services/admin_service.pb-c.h"

int cli_metrics(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    Grpc__AdminMetricsRequest req = GRPC__ADMIN_METRICS_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    int status = cli_call(cfg, tls, auth_key, "/grpc.AdminService/Metrics", &req.base,
                          &grpc__admin_metrics_response__descriptor, &m);
    if (status)
        return status;
    const Grpc__AdminMetricsResponse *r = (const void *)m;
    fwrite(r->text, 1, strlen(r->text), stdout);
    protobuf_c_message_free_unpacked(m, NULL);
    return fflush(stdout) == 0 ? 0 : 1;
}
