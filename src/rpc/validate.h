/*
 * Validation of every request a peer can send: one validator per request message of NodeService,
 * TaskService and AdminService, run on the decoded protobuf-c struct before any handler sees it.
 *
 * protobuf-c checks the wire format only: lengths, tags, wire types. It does not check that a
 * proto3 string is UTF-8, it accepts any number for an enum, and it bounds nothing but the message
 * size. Everything else is checked here, so that a handler may take every field of a validated
 * request as well-formed and bounded: ids are 24 lowercase hex, node keys are 1..64 of
 * [A-Za-z0-9._:-], strings that reach JSON, logs or other peers are valid UTF-8 (core/rules.h),
 * names have no control characters, sizes, counts and numbers are within the limits of
 * core/limits.h. Whether a node or task exists, or whether a change is allowed, is the handler's
 * business.
 *
 * A validator returns 0, or a negative errno and sets *why to a short static reason naming the
 * field, fit for a status's details:
 *   -EINVAL    malformed: a bad id or key, bad UTF-8, an unknown status or code, a missing field
 *              (INVALID_ARGUMENT);
 *   -ERANGE    a number outside its range (OUT_OF_RANGE);
 *   -EMSGSIZE  a string, bytes or repeated field longer than its bound (RESOURCE_EXHAUSTED).
 * On success *why is set to NULL. why may be NULL when the reason is not wanted.
 *
 * Every function here is pure and reentrant: any thread may call it, none blocks or allocates.
 */
#ifndef CRAWLAB_VALIDATE_H
#define CRAWLAB_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/limits.h"

#include "services/admin_service.pb-c.h"
#include "services/node_service.pb-c.h"
#include "services/spider_service.pb-c.h"
#include "services/task_service.pb-c.h"

/* A validator of any request type: m must be of the type the function was looked up for. */
typedef int (*validate_fn)(const ProtobufCMessage *m, const char **why);

/* The validator for requests of type d, or NULL when d is not a request of the services. */
validate_fn validate_lookup(const ProtobufCMessageDescriptor *d);

/* Validates m with the validator of its type; -ENOSYS (and a reason) when it has none. */
int validate_request(const ProtobufCMessage *m, const char **why);

/* ---- the rules, for handlers and tests ---- */

/*
 * Bounds the number of JSON values a parser would build from the n bytes at data: counts the
 * brackets, braces and commas outside strings (an upper bound of the values, close enough to
 * bound memory) without parsing. 0, or -EMSGSIZE when more than max. Malformed JSON is not
 * detected here; the parser refuses it later.
 */
int validate_json_values(const uint8_t *data, size_t n, size_t max, const char **why);

/*
 * A Connect batch of n lines or items starting at first_seq must end at a JSON-safe seq.
 * 0, or -ERANGE.
 */
int validate_seq_span(uint64_t first_seq, size_t n, const char **why);

/* ---- one validator per request message ---- */

/* NodeService */
int validate_register(const Grpc__NodeServiceRegisterRequest *r, const char **why);
int validate_heartbeat(const Grpc__NodeServiceSendHeartbeatRequest *r, const char **why);
int validate_node_subscribe(const Grpc__NodeServiceSubscribeRequest *r, const char **why);
int validate_resync(const Grpc__NodeServiceResyncRequest *r, const char **why);

/* TaskService. A PING on Connect carries nothing that is used, so only its code is checked;
 * SendNotification's node key may be empty (it is only recorded in the event). */
int validate_task_subscribe(const Grpc__TaskServiceSubscribeRequest *r, const char **why);
int validate_connect(const Grpc__TaskServiceConnectRequest *r, const char **why);
int validate_fetch(const Grpc__TaskServiceFetchTaskRequest *r, const char **why);
int validate_notification(const Grpc__TaskServiceSendNotificationRequest *r, const char **why);
int validate_report_status(const Grpc__TaskServiceReportStatusRequest *r, const char **why);

/* AdminService. SubmitTask's spec.id is ignored (the master assigns ids), so it is not checked. */
int validate_list_nodes(const Grpc__AdminListNodesRequest *r, const char **why);
int validate_metrics(const Grpc__AdminMetricsRequest *r, const char **why);
int validate_submit(const Grpc__AdminSubmitTaskRequest *r, const char **why);
int validate_list_tasks(const Grpc__AdminListTasksRequest *r, const char **why);
/* A schedule: its task spec as for submit, the expression and offset (core/cron.h), the target
 * node, the overlap and missed policies by name ("" for the default). */
int validate_create_schedule(const Grpc__AdminCreateScheduleRequest *r, const char **why);
int validate_schedule_request(const Grpc__AdminScheduleRequest *r, const char **why);
int validate_task_request(const Grpc__AdminTaskRequest *r, const char **why);
int validate_purge_tasks(const Grpc__AdminPurgeTasksRequest *r, const char **why);
/* ChangeNode: a node key or name, and one of the four actions. */
int validate_node_request(const Grpc__AdminNodeRequest *r, const char **why);
int validate_events(const Grpc__AdminEventsRequest *r, const char **why);

/* Spiders. A PushSpider message is checked on its own (its name and hash when given, its data's
 * size); which fields the first and the later messages carry is the handler's business. */
int validate_push_spider(const Grpc__AdminPushSpiderRequest *r, const char **why);
int validate_spider_request(const Grpc__AdminSpiderRequest *r, const char **why);
int validate_spider_fetch(const Grpc__SpiderFetchRequest *r, const char **why);

#endif
