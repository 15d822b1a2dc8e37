#include "requests.h"

#include "services/admin_service.pb-c.h"
#include "services/node_service.pb-c.h"
#include "services/spider_service.pb-c.h"
#include "services/task_service.pb-c.h"

const ProtobufCMessageDescriptor *const request_types[] = {
    &grpc__node_service_register_request__descriptor,
    &grpc__node_service_send_heartbeat_request__descriptor,
    &grpc__node_service_subscribe_request__descriptor,
    &grpc__node_service_resync_request__descriptor,
    &grpc__task_service_subscribe_request__descriptor,
    &grpc__task_service_connect_request__descriptor,
    &grpc__task_service_fetch_task_request__descriptor,
    &grpc__task_service_send_notification_request__descriptor,
    &grpc__task_service_report_status_request__descriptor,
    &grpc__admin_list_nodes_request__descriptor,
    &grpc__admin_submit_task_request__descriptor,
    &grpc__admin_list_tasks_request__descriptor,
    &grpc__admin_task_request__descriptor,
    &grpc__admin_create_schedule_request__descriptor,
    &grpc__admin_schedule_request__descriptor,
    &grpc__admin_metrics_request__descriptor,
    &grpc__admin_purge_tasks_request__descriptor,
    &grpc__admin_node_request__descriptor,
    &grpc__admin_events_request__descriptor,
    &grpc__admin_push_spider_request__descriptor,
    &grpc__admin_spider_request__descriptor,
    &grpc__spider_fetch_request__descriptor,
};

const size_t n_request_types = sizeof(request_types) / sizeof(request_types[0]);
