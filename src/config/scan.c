/*
 * Command scanning: which words of argv are the command, which are options (and their values),
 * which are positional; then the command itself, from its words or, for a daemon, from --role
 * or CRAWLAB_NODE_MASTER; and last the positional words the command takes.
 */
#include <string.h>

#include "config/internal.h"
#include "core/rules.h"
#include "core/spider.h"
#include "core/task.h"

static const char *const command_names[] = {
    [CMD_MASTER] = "master",
    [CMD_WORKER] = "worker",
    [CMD_NODES] = "nodes",
    [CMD_SUBMIT] = "submit",
    [CMD_TASKS] = "tasks",
    [CMD_LOGS] = "logs",
    [CMD_RESULTS] = "results",
    [CMD_CANCEL] = "cancel",
    [CMD_SCHEDULE] = "schedule",
    [CMD_NODE] = "node",
    [CMD_METRICS] = "metrics",
    [CMD_EVENTS] = "events",
    [CMD_CERT_INIT] = "cert init",
    [CMD_CERT_ISSUE] = "cert issue",
    [CMD_HELP] = "help",
    [CMD_VERSION] = "version",
    [CMD_TASKS_PURGE] = "tasks purge",
    [CMD_TASK_RESTART] = "task restart",
    [CMD_SPIDER] = "spider",
};

const char *config_scan_command_name(enum config_command cmd)
{
    return command_names[cmd];
}

/* One option word, and its value from the next word when it takes one and has no "=value":
 * returns the index of the last word used. The table says which options take a value, so
 * "--name -h" reads "-h" as the name. */
static int scan_option(struct config_item *it, int i, int argc, char **argv)
{
    char *a = argv[i];
    it->token = a;
    if (a[1] != '-') {
        it->name_len = (int)strlen(a);
        it->id = strcmp(a, "-h") == 0 ? OPT_HELP : -1;
        it->problem = it->id < 0 ? P_UNKNOWN : P_NONE;
        return i;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    /* The name alone is quoted in messages: "--auth-keys=SECRET" must not echo SECRET. */
    it->name_len = (int)len + 2;
    it->id = config_options_find(name, len);
    if (it->id < 0) {
        it->problem = P_UNKNOWN;
    } else if (!config_options[it->id].metavar) {
        if (eq)
            it->problem = P_UNEXPECTED_VALUE;
    } else if (eq) {
        it->value = eq + 1;
    } else if (i + 1 < argc && strcmp(argv[i + 1], "--") != 0) {
        it->value = argv[++i];
    } else {
        it->problem = P_MISSING_VALUE;
    }
    return i;
}

void config_scan_args(struct config_scan *s, int argc, char **argv)
{
    bool has_command = argc > 1 && argv[1][0] != '-';
    /* "cert" takes a second word, the sub-command, before its options. */
    bool is_cert =
        has_command && (strcmp(argv[1], "cert") == 0 || strcmp(argv[1], "schedule") == 0 ||
                        strcmp(argv[1], "node") == 0 || strcmp(argv[1], "spider") == 0);
    bool has_sub = is_cert && argc > 2 && argv[2][0] != '-';
    s->command = has_command ? argv[1] : NULL;
    s->sub = has_sub ? argv[2] : NULL;

    for (int i = has_sub ? 3 : has_command ? 2 : 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            s->rest = argv + i + 1;
            s->n_rest = (size_t)(argc - i - 1);
            return;
        }
        if (a[0] != '-' || a[1] == '\0')
            s->positional[s->n_positional++] = a;
        else
            i = scan_option(&s->items[s->n_items++], i, argc, argv);
    }
}

bool config_scan_help(struct config_parser *p, const struct config_scan *s)
{
    for (size_t i = 0; i < s->n_items; i++) {
        if (s->items[i].problem == P_NONE &&
            (s->items[i].id == OPT_HELP || s->items[i].id == OPT_VERSION)) {
            p->c->command = s->items[i].id == OPT_HELP ? CMD_HELP : CMD_VERSION;
            return true;
        }
    }
    return false;
}

static int report_unknown(struct config_parser *p, const struct config_scan *s)
{
    for (size_t i = 0; i < s->n_items; i++) {
        const struct config_item *it = &s->items[i];
        if (it->problem == P_UNKNOWN)
            return config_fail(p, "unknown option '%.*s'", it->name_len, it->token);
    }
    return 0;
}

/* A daemon's role: the last --role wins, then CRAWLAB_NODE_MASTER. */
static int pick_role(struct config_parser *p, const struct config_scan *s,
                     config_getenv_fn *getenv_fn)
{
    const char *role = NULL;
    for (size_t i = 0; i < s->n_items; i++) {
        if (s->items[i].id == OPT_ROLE && s->items[i].problem == P_NONE)
            role = s->items[i].value;
    }
    if (role) {
        if (strcmp(role, "master") == 0)
            p->c->command = CMD_MASTER;
        else if (strcmp(role, "worker") == 0)
            p->c->command = CMD_WORKER;
        else
            return config_fail(p, "--role: expected master or worker, got '%.*s'", QUOTE_MAX, role);
        return 0;
    }
    const char *env = config_getenv(getenv_fn, "CRAWLAB_NODE_MASTER");
    if (env) {
        bool master;
        if (config_parse_yes_no(env, &master) != 0)
            return config_fail(p,
                               "CRAWLAB_NODE_MASTER: expected Y (master) or N (worker), got "
                               "'%.*s'",
                               QUOTE_MAX, env);
        p->c->command = master ? CMD_MASTER : CMD_WORKER;
        return 0;
    }
    /* "--rol=master" should be reported as the typo it is, not as a missing role. */
    int rc = report_unknown(p, s);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < s->n_items; i++) {
        if (s->items[i].id == OPT_ROLE && s->items[i].problem == P_MISSING_VALUE)
            return config_fail(p, "'--role' requires a value");
    }
    return config_fail(p, "--role is required: use --role=master or --role=worker, set "
                          "CRAWLAB_NODE_MASTER=Y or N, or give a command (see --help)");
}

static int pick_cert_command(struct config_parser *p, const struct config_scan *s)
{
    if (!s->sub)
        return config_fail(p, "'cert' needs a sub-command: init or issue");
    if (strcmp(s->sub, "init") == 0)
        p->c->command = CMD_CERT_INIT;
    else if (strcmp(s->sub, "issue") == 0)
        p->c->command = CMD_CERT_ISSUE;
    else
        return config_fail(p, "unknown sub-command 'cert %.*s' (cert init, cert issue)", QUOTE_MAX,
                           s->sub);
    return 0;
}

/*
 * A command whose second word is one of its actions (a NULL-terminated list): the command becomes
 * cmd and *action the word. Without one, or with another, the error lists them.
 */
static int pick_action(struct config_parser *p, const struct config_scan *s, const char *word,
                       enum config_command cmd, const char *const *actions, char **action)
{
    char list[128] = "";
    for (size_t i = 0; actions[i]; i++) {
        if (s->sub && strcmp(s->sub, actions[i]) == 0) {
            p->c->command = cmd;
            return config_set_string(p, action, actions[i]);
        }
        size_t at = strlen(list);
        snprintf(list + at, sizeof(list) - at, "%s%s", i ? ", " : "", actions[i]);
    }
    if (!s->sub)
        return config_fail(p, "'%s' needs a sub-command: %s", word, list);
    return config_fail(p, "unknown sub-command '%s %.*s' (%s)", word, QUOTE_MAX, s->sub, list);
}

/* The first two words after a sub-command (its positional words, then those after "--"), NULL
 * where there are fewer: the sub-commands take one, and a second is refused by name. */
static void first_words(const struct config_scan *s, const char *words[2])
{
    size_t n = 0;
    words[0] = words[1] = NULL;
    for (size_t i = 0; i < s->n_positional && n < 2; i++)
        words[n++] = s->positional[i];
    for (size_t i = 0; i < s->n_rest && n < 2; i++)
        words[n++] = s->rest[i];
}

static int pick_schedule_command(struct config_parser *p, const struct config_scan *s)
{
    static const char *const actions[] = {"add", "list", "show", "pause", "resume", "rm", NULL};
    return pick_action(p, s, "schedule", CMD_SCHEDULE, actions, &p->c->sched_action);
}

static int pick_node_command(struct config_parser *p, const struct config_scan *s)
{
    static const char *const actions[] = {"enable", "disable", "drain", "rm", NULL};
    return pick_action(p, s, "node", CMD_NODE, actions, &p->c->node_action);
}

static int pick_spider_command(struct config_parser *p, const struct config_scan *s)
{
    static const char *const actions[] = {"push", "list", "show", "rm", NULL};
    return pick_action(p, s, "spider", CMD_SPIDER, actions, &p->c->spider_action);
}

static int pick_client_command(struct config_parser *p, const char *word)
{
    for (int cmd = CMD_NODES; cmd <= CMD_EVENTS; cmd++) {
        if (strcmp(word, command_names[cmd]) == 0) {
            p->c->command = (enum config_command)cmd;
            return 0;
        }
    }
    if (strcmp(word, "master") == 0 || strcmp(word, "worker") == 0)
        return config_fail(p, "unknown command '%s': start a daemon with --role=%s", word, word);
    return config_fail(p,
                       "unknown command '%.*s' (commands: nodes, node, submit, tasks, task, logs, "
                       "results, cancel, schedule, spider, metrics, events, cert; daemons use "
                       "--role)",
                       QUOTE_MAX, word);
}

int config_scan_command(struct config_parser *p, const struct config_scan *s,
                        config_getenv_fn *getenv_fn)
{
    if (!s->command)
        return pick_role(p, s, getenv_fn);
    if (strcmp(s->command, "cert") == 0)
        return pick_cert_command(p, s);
    if (strcmp(s->command, "schedule") == 0)
        return pick_schedule_command(p, s);
    if (strcmp(s->command, "node") == 0)
        return pick_node_command(p, s);
    if (strcmp(s->command, "spider") == 0)
        return pick_spider_command(p, s);
    /* "tasks purge": tasks takes no other word, so "purge" may come after options too. */
    if (strcmp(s->command, "tasks") == 0 && s->n_positional &&
        strcmp(s->positional[0], "purge") == 0) {
        p->c->command = CMD_TASKS_PURGE;
        return 0;
    }
    /* "task restart ID": the one sub-command of "task", which may come after options too. */
    if (strcmp(s->command, "task") == 0) {
        if (!s->n_positional || strcmp(s->positional[0], "restart") != 0)
            return config_fail(p, "'task' needs a sub-command: task restart TASK_ID");
        p->c->command = CMD_TASK_RESTART;
        return 0;
    }
    return pick_client_command(p, s->command);
}

static int scan_submit_command(struct config_parser *p, const struct config_scan *s)
{
    struct config *c = p->c;
    if (s->n_positional > 0)
        return config_fail(p,
                           "unexpected argument '%.*s' for 'submit': put the task's command "
                           "after '--'",
                           QUOTE_MAX, s->positional[0]);
    if (s->n_rest == 0 || s->rest[0][0] == '\0')
        return config_fail(p, "'submit' needs a command after '--', e.g. crawlab-node submit -- "
                              "scrapy crawl quotes");
    for (size_t i = 0; i < s->n_rest; i++) {
        int rc = config_push_string(p, &c->argv_cmd, &c->n_argv_cmd, s->rest[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* schedule add EXPR -- CMD...; schedule show|pause|resume|rm ID; schedule list. */
static int scan_schedule_command(struct config_parser *p, const struct config_scan *s)
{
    struct config *c = p->c;
    const char *action = c->sched_action;
    if (strcmp(action, "add") == 0) {
        if (s->n_positional != 1)
            return config_fail(p, "'schedule add' takes one EXPR (quote it: '*/5 * * * *' or "
                                  "'@every 30s') and the command after '--'");
        if (s->n_rest == 0 || s->rest[0][0] == '\0')
            return config_fail(p, "'schedule add' needs a command after '--', e.g. crawlab-node "
                                  "schedule add @hourly -- scrapy crawl quotes");
        for (size_t i = 0; i < s->n_rest; i++) {
            int rc = config_push_string(p, &c->argv_cmd, &c->n_argv_cmd, s->rest[i]);
            if (rc != 0)
                return rc;
        }
        return config_set_string(p, &c->sched_expr, s->positional[0]);
    }
    const char *words[2];
    first_words(s, words);
    if (strcmp(action, "list") == 0) {
        if (words[0])
            return config_fail(p, "unexpected argument '%.*s' for 'schedule list'", QUOTE_MAX,
                               words[0]);
        return 0;
    }
    if (!words[0])
        return config_fail(p, "'schedule %s' needs a schedule ID", action);
    if (words[1])
        return config_fail(p, "unexpected argument '%.*s' for 'schedule %s': it takes one ID",
                           QUOTE_MAX, words[1], action);
    long long id = 0;
    const char *d = words[0];
    for (; *d >= '0' && *d <= '9' && id < 1000000000000LL; d++)
        id = id * 10 + (*d - '0');
    if (*d || id <= 0)
        return config_fail(p, "ID: expected a schedule id (a positive integer), got '%.*s'",
                           QUOTE_MAX, words[0]);
    c->sched_id = id;
    return 0;
}

/* node enable|disable|drain|rm KEY|NAME. */
static int scan_node_command(struct config_parser *p, const struct config_scan *s)
{
    const char *words[2];
    first_words(s, words);
    if (!words[0])
        return config_fail(p, "'node %s' needs a node key or name", p->c->node_action);
    if (words[1])
        return config_fail(p, "unexpected argument '%.*s' for 'node %s': it takes one node",
                           QUOTE_MAX, words[1], p->c->node_action);
    if (!name_valid(words[0]))
        return config_fail(p, "NODE: expected a node key or name, " RULE_NAME ", got '%.*s'",
                           QUOTE_MAX, words[0]);
    return config_set_string(p, &p->c->node_target, words[0]);
}

/* spider push DIR; spider list [NAME]; spider show|rm NAME[@VERSION]. */
static int scan_spider_command(struct config_parser *p, const struct config_scan *s)
{
    struct config *c = p->c;
    const char *action = c->spider_action;
    bool push = strcmp(action, "push") == 0, list = strcmp(action, "list") == 0;
    const char *words[2];
    first_words(s, words);
    if (words[1])
        return config_fail(p, "unexpected argument '%.*s' for 'spider %s'", QUOTE_MAX, words[1],
                           action);
    /* push: whether DIR is there is checked with the options (--test-archive takes its place) */
    if (push)
        return words[0] ? config_set_string(p, &c->spider_dir, words[0]) : 0;
    if (!words[0])
        return list ? 0 : config_fail(p, "'spider %s' needs NAME or NAME@VERSION", action);
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version;
    if (!spider_ref_parse(words[0], name, &version) || (list && version))
        return config_fail(p, "%s: expected %s, got '%.*s'", list ? "NAME" : "NAME[@VERSION]",
                           list ? RULE_SPIDER_NAME : RULE_SPIDER_REF, QUOTE_MAX, words[0]);
    return config_set_string(p, &c->spider_ref, words[0]);
}

int config_scan_positionals(struct config_parser *p, const struct config_scan *s)
{
    struct config *c = p->c;
    const char *cmd_name = command_names[c->command];

    if (c->command == CMD_SUBMIT)
        return scan_submit_command(p, s);
    if (c->command == CMD_SCHEDULE)
        return scan_schedule_command(p, s);
    if (c->command == CMD_NODE)
        return scan_node_command(p, s);
    if (c->command == CMD_SPIDER)
        return scan_spider_command(p, s);

    /* Outside submit, "--" only ends the options; what follows is positional. */
    const char *words[2] = {NULL, NULL};
    size_t n_words = 0;
    /* The word "purge" of "tasks purge" and "restart" of "task restart" are the command's. */
    bool two_words = c->command == CMD_TASKS_PURGE || c->command == CMD_TASK_RESTART;
    for (size_t i = two_words ? 1 : 0; i < s->n_positional && n_words < 2; i++)
        words[n_words++] = s->positional[i];
    for (size_t i = 0; i < s->n_rest && n_words < 2; i++)
        words[n_words++] = s->rest[i];
    const char *first = words[0], *second = words[1];
    bool wants_task_id = c->command == CMD_LOGS || c->command == CMD_RESULTS ||
                         c->command == CMD_CANCEL || c->command == CMD_TASK_RESTART;

    if (!wants_task_id) {
        if (first)
            return config_fail(p, "unexpected argument '%.*s' for '%s'", QUOTE_MAX, first,
                               cmd_name);
        return 0;
    }
    if (!first)
        return config_fail(p, "'%s' needs a TASK_ID", cmd_name);
    if (second)
        return config_fail(p, "unexpected argument '%.*s' for '%s': it takes one TASK_ID",
                           QUOTE_MAX, second, cmd_name);
    if (!task_id_prefix_valid(first))
        return config_fail(p,
                           "TASK_ID: expected a task id (24 lowercase hexadecimal digits) or at "
                           "least %d of its first digits, got '%.*s'",
                           TASK_ID_PREFIX_MIN, QUOTE_MAX, first);
    return config_set_string(p, &c->task_id, first);
}
