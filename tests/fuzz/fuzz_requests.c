/*
 * libFuzzer target: any bytes as a request to any method of NodeService, TaskService and
 * AdminService. The first byte picks the request type; the rest goes through codec_unpack (the
 * server's decoding, from a gRPC byte buffer of one or two slices) and the type's validator, as
 * unary_on_message and srv_call_decode do.
 *
 * Beyond "never crashes, never leaks" (ASan, UBSan, LSan), it checks:
 *   - the validator answers 0, -EINVAL, -ERANGE or -EMSGSIZE, with a reason exactly on failure;
 *   - the answer survives a round trip: the decoded request packed and decoded again gets the
 *     same answer and packs to the same bytes;
 *   - what passes is what the handlers rely on: keys, ids and statuses parse, and every string
 *     that the master puts into JSON is accepted by jansson (an independent UTF-8 check).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <jansson.h>

#include "fuzz.h"
#include "core/task.h"
#include "rpc/codec.h"
#include "core/rules.h"
#include "rpc/validate.h"
#include "../common/requests.h"

/* jansson must take the string as a JSON string: it checks UTF-8 on its own. */
static void json_safe(const char *s)
{
    json_t *j = json_string(s);
    CHECK(j != NULL);
    json_decref(j);
}

/* A line of text in a log or a table: nothing below U+0020, no DEL. */
static void one_line(const char *s)
{
    json_safe(s);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        CHECK(*p >= 0x20 && *p != 0x7F);
}

static void task_state_usable(const Grpc__TaskState *st, bool any_status)
{
    enum task_status s;
    CHECK(task_id_valid(st->task_id));
    CHECK((any_status && !*st->status) || task_status_parse(st->status, &s) == 0);
    CHECK(st->log_lines <= LIMIT_SAFE_INT_MAX && st->data_items <= LIMIT_SAFE_INT_MAX);
    CHECK(strlen(st->error) <= LIMIT_ERROR_MAX);
    json_safe(st->error);
}

/* What a handler takes for granted once the request passed. */
static void passed_is_usable(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &grpc__node_service_register_request__descriptor) {
        const Grpc__NodeServiceRegisterRequest *r = (const void *)m;
        CHECK(node_key_valid(r->node_key));
        CHECK(strlen(r->node_name) <= LIMIT_NAME_MAX);
        CHECK(strlen(r->version) <= LIMIT_VERSION_MAX);
        CHECK(strlen(r->machine_id) <= LIMIT_NODE_KEY_MAX);
        one_line(r->node_name);
        one_line(r->version);
        CHECK(labels_valid(r->labels, r->n_labels));
        for (size_t i = 0; i < r->n_labels; i++)
            one_line(r->labels[i]);
    } else if (d == &grpc__node_service_resync_request__descriptor) {
        const Grpc__NodeServiceResyncRequest *r = (const void *)m;
        CHECK(node_key_valid(r->node_key));
        for (size_t i = 0; i < r->n_tasks; i++)
            task_state_usable(r->tasks[i], true);
    } else if (d == &grpc__task_service_report_status_request__descriptor) {
        const Grpc__TaskServiceReportStatusRequest *r = (const void *)m;
        CHECK(r->state != NULL);
        task_state_usable(r->state, false);
    } else if (d == &grpc__task_service_connect_request__descriptor) {
        const Grpc__TaskServiceConnectRequest *r = (const void *)m;
        if (r->code != GRPC__TASK_SERVICE_CONNECT_CODE__PING) {
            CHECK(r->code == GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA ||
                  r->code == GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_LOGS);
            CHECK(task_id_valid(r->task_id));
            CHECK(r->seq <= LIMIT_SAFE_INT_MAX);
        }
    } else if (d == &grpc__admin_submit_task_request__descriptor) {
        const Grpc__AdminSubmitTaskRequest *r = (const void *)m;
        const Grpc__TaskSpec *spec = r->spec;
        CHECK(spec && *spec->cmd);
        json_safe(spec->cmd);
        json_safe(spec->param);
        one_line(spec->name);
        /* The env object on_submit builds holds every entry. */
        json_t *env = json_object();
        for (size_t i = 0; i < spec->n_env; i++) {
            CHECK(env_name_valid(spec->env[i]->key, strlen(spec->env[i]->key)));
            CHECK(json_object_set_new(env, spec->env[i]->key, json_string(spec->env[i]->value)) ==
                  0);
        }
        json_decref(env);
        /* A key or a name: the registry looks it up either way. */
        for (size_t i = 0; i < r->n_node_keys; i++)
            CHECK(name_valid(r->node_keys[i]));
        /* on_submit joins the selector into a buffer of this size. */
        char joined[LIMIT_LABELS_TEXT_MAX + 1];
        CHECK(labels_join(r->labels, r->n_labels, joined, sizeof(joined)) == 0);
        CHECK(labels_text_valid(joined));
    } else if (d == &grpc__admin_list_tasks_request__descriptor) {
        const Grpc__AdminListTasksRequest *r = (const void *)m;
        enum task_status s;
        CHECK(!*r->status || task_status_parse(r->status, &s) == 0);
        CHECK(!*r->node_key || node_key_valid(r->node_key));
    } else if (d == &grpc__admin_task_request__descriptor) {
        /* A full id or a unique prefix of one: the store looks it up by prefix. */
        const Grpc__AdminTaskRequest *r = (const void *)m;
        CHECK(task_id_prefix_valid(r->task_id));
    } else if (d == &grpc__admin_node_request__descriptor) {
        const Grpc__AdminNodeRequest *r = (const void *)m;
        CHECK(name_valid(r->node));
    }
}

/*
 * Unknown fields are kept by protobuf-c and packed again as they came, including a field number 0
 * that protobuf-c 1.4 accepts in a multi-byte key (80 00) but refuses once packed in one byte: the
 * round trip is about what the master reads, so unknown fields are hidden while it runs. Records
 * each message's count in saved (at most cap entries) and returns how many were recorded.
 */
struct hidden {
    ProtobufCMessage *m;
    unsigned n;
};

static size_t hide_unknown(ProtobufCMessage *m, struct hidden *saved, size_t used, size_t cap)
{
    CHECK(used < cap);
    saved[used++] = (struct hidden){m, m->n_unknown_fields};
    m->n_unknown_fields = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        char *field = (char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(size_t *)((char *)m + f->quantifier_offset);
            ProtobufCMessage **subs = *(ProtobufCMessage ***)field;
            for (size_t k = 0; k < n; k++)
                used = hide_unknown(subs[k], saved, used, cap);
        } else if (*(ProtobufCMessage **)field) {
            used = hide_unknown(*(ProtobufCMessage **)field, saved, used, cap);
        }
    }
    return used;
}

static void restore_unknown(struct hidden *saved, size_t n)
{
    for (size_t i = 0; i < n; i++)
        saved[i].m->n_unknown_fields = saved[i].n;
}

static int check_validation(const ProtobufCMessage *m)
{
    const char *why = "unset";
    int rc = validate_request(m, &why);
    CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE || rc == -EMSGSIZE);
    CHECK(rc == 0 ? why == NULL : why != NULL && *why);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t pick = data[0];
    const ProtobufCMessageDescriptor *d = request_types[pick % n_request_types];
    data++;
    size--;

    /* One slice, or two when the first byte says so: readall must join them. */
    grpc_slice slices[2];
    size_t n_slices = 1, cut = size / 2;
    if ((pick / n_request_types) & 1) {
        slices[0] = grpc_slice_from_copied_buffer((const char *)data, cut);
        slices[1] = grpc_slice_from_copied_buffer((const char *)data + cut, size - cut);
        n_slices = 2;
    } else {
        slices[0] = grpc_slice_from_copied_buffer((const char *)data, size);
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n_slices);
    for (size_t i = 0; i < n_slices; i++)
        grpc_slice_unref(slices[i]);

    ProtobufCMessage *m = NULL;
    int rc = codec_unpack(bb, d, &m);
    grpc_byte_buffer_destroy(bb);
    if (rc < 0) {
        CHECK(rc == -EINVAL);
        return 0;
    }
    CHECK(m && m->descriptor == d);

    rc = check_validation(m);
    if (rc == 0)
        passed_is_usable(m);

    /* Round trip: the same answer again, and the same bytes. Every message but the outermost
     * takes at least two bytes of the input. */
    size_t cap = size / 2 + 2;
    struct hidden *saved = malloc(cap * sizeof(*saved));
    CHECK(saved);
    size_t n_saved = hide_unknown(m, saved, 0, cap);
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *packed = malloc(len ? len : 1);
    CHECK(packed);
    CHECK(protobuf_c_message_pack(m, packed) == len);
    ProtobufCMessage *again = protobuf_c_message_unpack(d, NULL, len, packed);
    CHECK(again);
    CHECK(check_validation(again) == rc);
    CHECK(protobuf_c_message_get_packed_size(again) == len);
    uint8_t *repacked = malloc(len ? len : 1);
    CHECK(repacked);
    protobuf_c_message_pack(again, repacked);
    CHECK(memcmp(packed, repacked, len) == 0);

    restore_unknown(saved, n_saved);
    free(saved);
    free(repacked);
    free(packed);
    protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
