#!/bin/sh
# An --on-event hook that mails failed and abnormal tasks through the local sendmail (Postfix,
# msmtp, nullmailer and the like all provide /usr/sbin/sendmail):
#
#   crawlab-node --role=master --on-event='MAIL_TO=ops@example.com /path/to/hook-mail.sh'
#
# (SENDMAIL names another program taking the same -t.) sendmail exits non-zero when it cannot take the message, and the master then gives the same
# event again after a backoff: a message may be sent twice, never silently dropped.
set -eu
: "${MAIL_TO:?set MAIL_TO to the address to mail}"
case "$CRAWLAB_EVENT_KIND" in
task.error | task.abnormal) ;;
*) exit 0 ;;
esac
event=$(cat)
{
    printf 'To: %s\n' "$MAIL_TO"
    printf 'Subject: crawlab: %s, task %s\n' "$CRAWLAB_EVENT_KIND" "$CRAWLAB_EVENT_TASK_ID"
    printf 'Content-Type: text/plain; charset=utf-8\n\n'
    printf 'Task %s ended %s on node %s.\n\n' "$CRAWLAB_EVENT_TASK_ID" "$CRAWLAB_EVENT_KIND" \
        "$CRAWLAB_EVENT_NODE_KEY"
    printf 'Its log: crawlab-node logs %s\n\nThe event:\n%s\n' "$CRAWLAB_EVENT_TASK_ID" "$event"
} | "${SENDMAIL:-/usr/sbin/sendmail}" -t
