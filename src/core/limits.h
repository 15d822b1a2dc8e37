/*
 * Every bound of the domain, in one place: what the wire validator (rpc/validate.c), the store,
 * the configuration and the worker enforce. A limit is a fact about the cluster, not about the
 * module that checks it, so each is defined here once and checked by the rules of core/rules.h.
 *
 * Lengths are in bytes, without a terminating NUL.
 */
#ifndef CRAWLAB_CORE_LIMITS_H
#define CRAWLAB_CORE_LIMITS_H

#include <stdint.h>

/* A task id: 24 lowercase hex digits (an ObjectID as Crawlab writes it). */
#define TASK_ID_LEN 24

/* Largest integer a JSON reader keeps exactly (2^53 - 1): the bound of seq and of totals. */
#define LIMIT_SAFE_INT_MAX ((UINT64_C(1) << 53) - 1)

#define LIMIT_NODE_KEY_MAX  64     /* a node key (also a machine id) */
#define LIMIT_NAME_MAX      128    /* node and task names, labels */
#define LIMIT_VERSION_MAX   32     /* a worker's version string, and its containment's name */
#define LIMIT_LABELS_MAX    64     /* labels of one node, or of one task's selector */
#define LIMIT_LABEL_KEY_MAX 63     /* the KEY of a KEY=VALUE label */
#define LIMIT_LABEL_VAL_MAX 64     /* its VALUE: KEY=VALUE fits in LIMIT_NAME_MAX */
#define LIMIT_RUNNERS_MAX   100000 /* max_runners and running */
#define LIMIT_CMD_MAX       65536  /* cmd and param */
#define LIMIT_ENV_MAX       256    /* env entries of one task */
#define LIMIT_ENV_NAME_MAX  256
#define LIMIT_ENV_VALUE_MAX 65536
#define LIMIT_ERROR_MAX     4096 /* a task's error text */
/* Task priority as Crawlab has it: lower runs first, 1 (high) to 10 (low), 5 when not given
 * (docs/protocol.md, "Priority"). On the wire 0 means "not given". */
#define LIMIT_PRIORITY_MIN     1
#define LIMIT_PRIORITY_MAX     10
#define LIMIT_PRIORITY_DEFAULT 5
/* Retries of a task that ends error or abnormal, and the delay before the first of them; the
 * window of later ones doubles, up to the same bound. */
#define LIMIT_RETRIES_MAX        100
#define LIMIT_RETRY_DELAY_MAX_MS (24 * 3600 * 1000)
#define LIMIT_SUBMIT_NODES       10000  /* node keys of one SubmitTask */
#define LIMIT_RESYNC_TASKS       100000 /* tasks listed in one Resync */
/* Masters a worker or a client command is given (--master=A,B,...): tried in turn. */
#define LIMIT_MASTERS_MAX 8
/*
 * Registrations of one node key: LIMIT_REGISTER_BURST at once, then LIMIT_REGISTER_PER_S a second.
 * A worker registers once per connection and reconnects after a backoff, so only a client that
 * loops on Register meets the limit; the calls over it are refused before they cost a store write.
 */
#define LIMIT_REGISTER_BURST 5
#define LIMIT_REGISTER_PER_S 1.0
#define LIMIT_DATA_MAX       (4u << 20) /* a Connect message's data */
/* The longest text of one result item: alone in a Connect message's data ("[" item "]") or in a
 * ReadResults chunk, it leaves room under the 4 MiB message limit for the rest of the message. */
#define LIMIT_ITEM_MAX (LIMIT_DATA_MAX - 66)
/*
 * JSON values in one INSERT_DATA message's data, as validate_json_values counts them (log lines
 * are read without building a tree). Parsed JSON costs far more memory than its text: 4 MiB of
 * "[{},{},...]" is 1.4 million objects and 314 MiB in jansson; this bound caps it near 70 MiB. It
 * stays above what our worker can send: a message holds one output line of at most 1 MiB (about
 * 524,000 values at most) or 256 KiB of smaller items.
 */
#define LIMIT_DATA_VALUES_MAX 600000

/* Labels as the store and the registry keep them: KEY=VALUE lines joined by '\n'. */
#define LIMIT_LABELS_TEXT_MAX (LIMIT_LABELS_MAX * (LIMIT_NAME_MAX + 1))

/*
 * A page of a listing (AdminService ListTasks, ListNodes): at most LIMIT_PAGE_ITEMS entries, and
 * entries are added only while the page's encoded size stays under LIMIT_PAGE_BYTES, which leaves
 * room under the 4 MiB message limit for the one entry that is always allowed (a task is at most
 * about 140 KiB: cmd and param 64 KiB each, error 4 KiB, names) and for the envelope.
 */
#define LIMIT_PAGE_ITEMS 1000
#define LIMIT_PAGE_BYTES (3u << 20)
/* A page token as the master writes it (two decimal numbers), with room to spare. */
#define LIMIT_PAGE_TOKEN_MAX 64

/*
 * Spiders (core/spider.h). The master's bounds on a pushed archive (--spider-max-bytes, applied to
 * the archive and to the sum of its files' sizes; --spider-max-files, entries of any type) may be
 * set up to these; the worker refuses anything past them whatever the master accepted.
 */
#define LIMIT_SPIDER_NAME_MAX  64
#define LIMIT_SPIDER_PATH_MAX  1024                /* one entry's path in the archive */
#define LIMIT_SPIDER_BYTES_MAX (UINT64_C(1) << 32) /* 4 GiB */
#define LIMIT_SPIDER_FILES_MAX 1000000
#define LIMIT_SPIDER_CHUNK     (256u << 10) /* bytes of one PushSpider or FetchSpider message */

#endif
