/*
 * One rule, one answer: the wire validator, the store and the configuration accept and refuse the
 * same node keys, names, task ids, environment names, priorities and zone names, because each of
 * them asks core/rules.h (and core/task.h, core/tz.h). Every sample below goes through all the
 * places that check it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "scratch.h"

#include "config.h"
#include "core/rules.h"
#include "core/task.h"
#include "core/tz.h"
#include "store/store.h"
#include "rpc/validate.h"

struct sample {
    const char *text;
    bool valid;
};

/* 64 and 65 key characters, 128 and 129 name bytes, a 2-byte character that ends at 128 bytes. */
#define K64  "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij0123"
#define N128 K64 K64
#define N127 K64 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij012"

static const struct sample node_keys[] = {
    {"w1", true},    {"node.a_b:c-d", true}, {K64, true},    {K64 "x", false},
    {"", false},     {"a b", false},         {"a/b", false}, {"é", false},
    {"a\nb", false}, {"0123", true},         {"a=b", false},
};

static const struct sample names[] = {
    {"crawl", true},     {"a b", true},     {"é", true},
    {N128, true},        {N128 "x", false}, {N127 "\xc3\xa9", false},
    {"a\tb", false},     {"a\x7f", false},  {"\xff", false},
    {"\xc0\x80", false}, {"", false},
};

static const struct sample task_ids[] = {
    {"0123456789abcdef01234567", true},  {"0123456789ABCDEF01234567", false},
    {"0123456789abcdef0123456", false},  {"0123456789abcdef012345678", false},
    {"0123456789abcdef0123456g", false}, {"", false},
};

static const struct sample task_id_prefixes[] = {
    {"0123456789abcdef01234567", true},
    {"0123456789abcdef0123456", true},
    {"abcdef", true},
    {"abcde", false},
    {"ABCDEF", false},
    {"abcdeg", false},
    {"0123456789abcdef012345678", false},
    {"", false},
};

/* 63 and 64 key characters, 64 and 65 value bytes. */
#define K63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij012"
#define V64 K64

static const struct sample labels[] = {
    {"gpu=1", true},     {"gpu=", true},     {"a.b/c_d-e=x y", true}, {"k==v", true},
    {K63 "=" V64, true}, {K63 "x=1", false}, {"k=" V64 "x", false},   {"gpu", false},
    {"=1", false},       {"g pu=1", false},  {"k:x=1", false},        {"k=a\tb", false},
    {"k=\xff", false},   {"", false},
};

/* Zone names (the valid ones exist in Debian's tzdata: the configuration reads them). */
static const struct sample zone_names[] = {
    {"Europe/Berlin", true},    {"America/Argentina/Buenos_Aires", true},
    {"Etc/GMT+5", true},        {"../etc/passwd", false},
    {"/etc/localtime", false},  {"Europe//Berlin", false},
    {"Europe/./Berlin", false}, {"Europe/Ber lin", false},
};

static const struct sample env_names[] = {
    {"A", true},    {"_x1", true},  {"lower_case", true}, {"1A", false},
    {"A-B", false}, {"A B", false}, {"", false},
};

/* ---- the configuration ---- */

static int config_with(const char *a1, const char *a2, const char *a3)
{
    char *argv[] = {"crawlab-node", (char *)a1, (char *)a2, (char *)a3, NULL};
    int argc = a3 ? 4 : a2 ? 3 : 2;
    struct config c;
    char err[512];
    int rc = config_parse(&c, argc, argv, NULL, err, sizeof(err));
    config_free(&c);
    return rc;
}

static char *flag(const char *name, const char *value)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "--%s=%s", name, value);
    return buf;
}

/* A `submit --NAME=VALUE -- true`: 0 or the parser's error. */
static int config_submit(const char *name, const char *value)
{
    char *argv[] = {"crawlab-node", "submit", flag(name, value), "--", "true", NULL};
    struct config c;
    int rc = config_parse(&c, 5, argv, NULL, NULL, 0);
    config_free(&c);
    return rc;
}

/* ---- the store ---- */

static char data_dir[64];
static struct store *st;

static void store_setup(void)
{
    scratch_make(data_dir, sizeof(data_dir), "rules");
    ck_assert_int_eq(store_open(data_dir, &st), 0);
}

static void store_teardown(void)
{
    store_close(st);
    scratch_remove(data_dir);
}

/* ---- the wire ---- */

static int wire_register(const char *key, const char *name)
{
    Grpc__NodeServiceRegisterRequest r = GRPC__NODE_SERVICE_REGISTER_REQUEST__INIT;
    r.node_key = (char *)key;
    r.node_name = (char *)name;
    r.max_runners = 1;
    return validate_register(&r, NULL);
}

static int wire_submit(const char *name, const char *env_key, int priority)
{
    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    Grpc__TaskSpec__EnvEntry env = GRPC__TASK_SPEC__ENV_ENTRY__INIT, *envs[] = {&env};
    spec.cmd = "true";
    spec.name = (char *)name;
    spec.priority = priority;
    if (env_key) {
        env.key = (char *)env_key;
        env.value = "v";
        spec.n_env = 1;
        spec.env = envs;
    }
    Grpc__AdminSubmitTaskRequest r = GRPC__ADMIN_SUBMIT_TASK_REQUEST__INIT;
    r.spec = &spec;
    return validate_submit(&r, NULL);
}

static int wire_task(const char *id)
{
    Grpc__TaskServiceSubscribeRequest r = GRPC__TASK_SERVICE_SUBSCRIBE_REQUEST__INIT;
    r.task_id = (char *)id;
    return validate_task_subscribe(&r, NULL);
}

/* What the client commands send: a full id or a prefix. */
static int wire_admin_task(const char *id)
{
    Grpc__AdminTaskRequest r = GRPC__ADMIN_TASK_REQUEST__INIT;
    r.task_id = (char *)id;
    return validate_task_request(&r, NULL);
}

#define AGREE(s, what, ok) ck_assert_msg((ok) == (s)->valid, "%s '%s': %s", what, (s)->text, #ok)

/* ---- the rules alone, at their bounds ---- */

START_TEST(env_name_is_an_identifier_of_at_most_256_bytes)
{
    char n[LIMIT_ENV_NAME_MAX + 2];
    memset(n, 'N', sizeof(n));
    ck_assert(env_name_valid(n, LIMIT_ENV_NAME_MAX));
    ck_assert(!env_name_valid(n, LIMIT_ENV_NAME_MAX + 1));
    ck_assert(env_name_valid("A=B", 1));
    ck_assert(!env_name_valid("A=B", 3));
    ck_assert(!env_name_valid(NULL, 0));
}
END_TEST

START_TEST(text_line_counts_bytes_not_characters)
{
    ck_assert(text_line_valid("", 0));
    ck_assert(text_line_valid("\xc3\xa9", 2));
    ck_assert(!text_line_valid("\xc3\xa9", 1));
    ck_assert(!text_line_valid("\xc3", 8));
    ck_assert(!text_line_valid(NULL, 8));
    ck_assert(!name_valid("../../x\n"));
    ck_assert(!task_id_valid("../../../../etc/passwd.."));
}
END_TEST

/* ---- each sample through every checker ---- */

START_TEST(node_keys_agree)
{
    const struct sample *s = &node_keys[_i];
    AGREE(s, "rule", node_key_valid(s->text));
    AGREE(s, "wire", wire_register(s->text, "n") == 0);
    AGREE(s, "store", store_node_upsert(st, s->text, "n", 1, "", NULL, 1000) == 0);
    AGREE(s, "config", config_with("--role=worker", flag("node-key", s->text), NULL) == 0);
    struct task_new tn = {.cmd = "true", .node_key = s->text};
    char id[TASK_ID_LEN + 1];
    /* An empty target means "any node" to the store, not a key. */
    if (*s->text)
        AGREE(s, "store target", store_task_create(st, &tn, 1000, id) == 0);
}
END_TEST

START_TEST(names_agree)
{
    const struct sample *s = &names[_i];
    AGREE(s, "rule", name_valid(s->text));
    AGREE(s, "config node", config_with("--role=worker", flag("node-name", s->text), NULL) == 0);
    AGREE(s, "config task", config_submit("name", s->text) == 0);
    /* The wire and the store also take an empty name (upstream workers and unnamed tasks). */
    if (!*s->text)
        return;
    AGREE(s, "wire node", wire_register("w1", s->text) == 0);
    AGREE(s, "wire task", wire_submit(s->text, NULL, 0) == 0);
    AGREE(s, "store node", store_node_upsert(st, "w1", s->text, 1, "", NULL, 1000) == 0);
    struct task_new tn = {.cmd = "true", .name = s->text};
    char id[TASK_ID_LEN + 1];
    AGREE(s, "store task", store_task_create(st, &tn, 1000, id) == 0);
}
END_TEST

START_TEST(task_ids_agree)
{
    const struct sample *s = &task_ids[_i];
    AGREE(s, "rule", task_id_valid(s->text));
    AGREE(s, "wire", wire_task(s->text) == 0);
    struct task_row row;
    /* A well-formed id is unknown to an empty store; a malformed one is refused as such. */
    AGREE(s, "store", store_task_get(st, s->text, &row) == -ENOENT);
}
END_TEST

START_TEST(task_id_prefixes_agree)
{
    const struct sample *s = &task_id_prefixes[_i];
    char ids[2][TASK_ID_LEN + 1];
    AGREE(s, "rule", task_id_prefix_valid(s->text));
    AGREE(s, "wire", wire_admin_task(s->text) == 0);
    AGREE(s, "store", store_task_find_prefix(st, s->text, ids, 2) == 0);
    AGREE(s, "config", config_with("logs", s->text, NULL) == 0);
    AGREE(s, "config before", config_with("tasks", flag("before", s->text), NULL) == 0);
}
END_TEST

static int wire_label(const char *label)
{
    Grpc__NodeServiceRegisterRequest r = GRPC__NODE_SERVICE_REGISTER_REQUEST__INIT;
    char *one[] = {(char *)label};
    r.node_key = "w1";
    r.labels = one;
    r.n_labels = 1;
    return validate_register(&r, NULL);
}

START_TEST(labels_agree)
{
    const struct sample *s = &labels[_i];
    AGREE(s, "rule", label_valid(s->text, strlen(s->text)));
    AGREE(s, "wire", wire_label(s->text) == 0);
    AGREE(s, "config worker", config_with("--role=worker", flag("label", s->text), NULL) == 0);
    AGREE(s, "config task", config_submit("label", s->text) == 0);
    /* To the store, "" is no labels at all. */
    if (!*s->text)
        return;
    AGREE(s, "store node", store_node_upsert(st, "w1", "n", 1, "", s->text, 1000) == 0);
    struct task_new tn = {.cmd = "true", .labels = s->text};
    char id[TASK_ID_LEN + 1];
    AGREE(s, "store task", store_task_create(st, &tn, 1000, id) == 0);
}
END_TEST

/* A set: at most LIMIT_LABELS_MAX labels, no KEY twice; a selector matches a node that has every
 * one of its labels, whatever their order. */
START_TEST(label_sets_and_matching)
{
    char *set[LIMIT_LABELS_MAX + 1], text[LIMIT_LABELS_MAX + 1][16];
    for (size_t i = 0; i <= LIMIT_LABELS_MAX; i++) {
        snprintf(text[i], sizeof(text[i]), "k%zu=v", i);
        set[i] = text[i];
    }
    ck_assert(labels_valid(set, LIMIT_LABELS_MAX));
    ck_assert(!labels_valid(set, LIMIT_LABELS_MAX + 1));
    char joined[LIMIT_LABELS_TEXT_MAX + 1];
    ck_assert_int_eq(labels_join(set, LIMIT_LABELS_MAX, joined, sizeof(joined)), 0);
    ck_assert(labels_text_valid(joined));
    ck_assert_int_eq(labels_join(set, 2, joined, 8), -1);
    char *dup[] = {"gpu=1", "zone=eu", "gpu=2"};
    ck_assert(!labels_valid(dup, 3));
    ck_assert(!labels_text_valid("gpu=1\nzone=eu\ngpu=2"));
    ck_assert(!labels_text_valid("gpu=1\n"));
    ck_assert(!labels_text_valid("gpu=1\n\nzone=eu"));
    ck_assert(labels_text_valid(""));
    ck_assert_int_eq(labels_join(dup, 2, joined, sizeof(joined)), 0);
    ck_assert_str_eq(joined, "gpu=1\nzone=eu");

    ck_assert(labels_match("", "gpu=1"));
    ck_assert(labels_match(NULL, NULL));
    ck_assert(labels_match("zone=eu\ngpu=1", "gpu=1\nos=linux\nzone=eu"));
    ck_assert(!labels_match("gpu=1", ""));
    ck_assert(!labels_match("gpu=1", "gpu=10"));
    ck_assert(!labels_match("gpu=10", "gpu=1"));
    ck_assert(!labels_match("zone=eu\ngpu=1", "zone=eu"));
    ck_assert(!labels_match("gpu=", "gpu=1"));
}
END_TEST

START_TEST(env_names_agree)
{
    const struct sample *s = &env_names[_i];
    char kv[64];
    snprintf(kv, sizeof(kv), "%s=v", s->text);
    AGREE(s, "rule", env_name_valid(s->text, strlen(s->text)));
    AGREE(s, "wire", wire_submit("t", s->text, 0) == 0);
    AGREE(s, "config", config_submit("env", kv) == 0);
}
END_TEST

START_TEST(priorities_agree)
{
    const int samples[] = {
        -1,  LIMIT_PRIORITY_MIN, LIMIT_PRIORITY_DEFAULT, LIMIT_PRIORITY_MAX, LIMIT_PRIORITY_MAX + 1,
        1000};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        bool valid = priority_valid(samples[i]);
        ck_assert_int_eq(valid,
                         samples[i] >= LIMIT_PRIORITY_MIN && samples[i] <= LIMIT_PRIORITY_MAX);
        char num[16];
        snprintf(num, sizeof(num), "%d", samples[i]);
        ck_assert_int_eq(wire_submit("t", NULL, samples[i]) == 0, valid);
        ck_assert_int_eq(config_submit("priority", num) == 0, valid);
    }
    /* 0 is outside the rule; on the wire it is proto3's "not given" (the master uses 5). */
    ck_assert(!priority_valid(0));
    ck_assert_int_eq(config_submit("priority", "0"), -EINVAL);
    ck_assert_int_eq(wire_submit("t", NULL, 0), 0);
}
END_TEST

static int wire_retries(uint32_t retries, int64_t delay_ms)
{
    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    spec.cmd = "true";
    Grpc__AdminSubmitTaskRequest r = GRPC__ADMIN_SUBMIT_TASK_REQUEST__INIT;
    r.spec = &spec;
    r.retries = retries;
    r.retry_delay_ms = delay_ms;
    return validate_submit(&r, NULL);
}

static int store_retries(int retries, int64_t delay_ms)
{
    struct task_new tn = {.cmd = "true", .retries = retries, .retry_delay_ms = delay_ms};
    char id[TASK_ID_LEN + 1];
    return store_task_create(st, &tn, 1000, id);
}

START_TEST(retries_agree)
{
    const int counts[] = {0, 1, LIMIT_RETRIES_MAX, LIMIT_RETRIES_MAX + 1};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        bool valid = retries_valid(counts[i]);
        ck_assert_int_eq(valid, counts[i] <= LIMIT_RETRIES_MAX);
        char num[16];
        snprintf(num, sizeof(num), "%d", counts[i]);
        ck_assert_int_eq(wire_retries((uint32_t)counts[i], 0) == 0, valid);
        ck_assert_int_eq(config_submit("retries", num) == 0, valid);
        ck_assert_int_eq(store_retries(counts[i], 0) == 0, valid);
    }
    const struct {
        const char *text;
        int64_t ms;
    } delays[] = {{"0", 0},
                  {"100ms", 100},
                  {"24h", LIMIT_RETRY_DELAY_MAX_MS},
                  {"86400001ms", LIMIT_RETRY_DELAY_MAX_MS + 1}};
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        bool valid = retry_delay_valid(delays[i].ms);
        ck_assert_int_eq(valid, delays[i].ms <= LIMIT_RETRY_DELAY_MAX_MS);
        ck_assert_int_eq(wire_retries(1, delays[i].ms) == 0, valid);
        ck_assert_int_eq(config_submit("retry-delay", delays[i].text) == 0, valid);
        ck_assert_int_eq(store_retries(1, delays[i].ms) == 0, valid);
    }
}
END_TEST

static int wire_zone(const char *tz)
{
    Grpc__TaskSpec spec = GRPC__TASK_SPEC__INIT;
    spec.cmd = "true";
    Grpc__AdminCreateScheduleRequest r = GRPC__ADMIN_CREATE_SCHEDULE_REQUEST__INIT;
    r.spec = &spec;
    r.expr = "@daily";
    r.tz = (char *)tz;
    return validate_create_schedule(&r, NULL);
}

START_TEST(zone_names_agree)
{
    const struct sample *s = &zone_names[_i];
    AGREE(s, "rule", tz_name_valid(s->text));
    AGREE(s, "wire", wire_zone(s->text) == 0);
    char *argv[] = {"crawlab-node", "schedule", "add",  flag("tz", s->text),
                    "@daily",       "--",       "true", NULL};
    struct config c;
    int rc = config_parse(&c, 7, argv, NULL, NULL, 0);
    config_free(&c);
    AGREE(s, "config", rc == 0);
    struct schedule_new n = {.expr = "@daily", .cmd = "true", .tz_name = s->text};
    int64_t id;
    AGREE(s, "store", store_schedule_create(st, &n, 1000, &id) == 0);
}
END_TEST

START_TEST(status_names_round_trip)
{
    for (int s = 0; s < TASK_STATUS_COUNT; s++) {
        enum task_status back;
        ck_assert_int_eq(task_status_parse(task_status_name(s), &back), 0);
        ck_assert_int_eq(back, s);
        ck_assert_ptr_nonnull(strstr(TASK_STATUS_NAMES, task_status_name(s)));
        char *argv[] = {"crawlab-node", "tasks", flag("status", task_status_name(s)), NULL};
        struct config c;
        ck_assert_int_eq(config_parse(&c, 3, argv, NULL, NULL, 0), 0);
        config_free(&c);
    }
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *alone = tcase_create("alone");
    tcase_add_test(alone, env_name_is_an_identifier_of_at_most_256_bytes);
    tcase_add_test(alone, text_line_counts_bytes_not_characters);
    tcase_add_test(alone, label_sets_and_matching);
    suite_add_tcase(s, alone);
    TCase *tc = tcase_create("agree");
    tcase_add_checked_fixture(tc, store_setup, store_teardown);
    tcase_add_loop_test(tc, node_keys_agree, 0, N(node_keys));
    tcase_add_loop_test(tc, names_agree, 0, N(names));
    tcase_add_loop_test(tc, task_ids_agree, 0, N(task_ids));
    tcase_add_loop_test(tc, task_id_prefixes_agree, 0, N(task_id_prefixes));
    tcase_add_loop_test(tc, env_names_agree, 0, N(env_names));
    tcase_add_loop_test(tc, labels_agree, 0, N(labels));
    tcase_add_loop_test(tc, zone_names_agree, 0, N(zone_names));
    tcase_add_test(tc, priorities_agree);
    tcase_add_test(tc, retries_agree);
    tcase_add_test(tc, status_names_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = rules_suite};
