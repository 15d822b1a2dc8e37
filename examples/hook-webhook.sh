#!/bin/sh
# An --on-event hook that POSTs each event, as the JSON the master writes on stdin, to a webhook:
#
#   crawlab-node --role=master --on-event='WEBHOOK_URL=https://example.com/hook /path/to/hook-webhook.sh'
#
# curl exits non-zero when the request fails or the receiver answers with an HTTP error (--fail),
# and the master then gives the same event again after a backoff, so the receiver sees each event
# at least once, in order; the event's "id" tells a repeat apart. Give a timeout shorter than
# --on-event-timeout (30 s by default) so that curl, rather than the master, ends a stuck request.
set -eu
: "${WEBHOOK_URL:?set WEBHOOK_URL to the address to POST the events to}"
exec curl --silent --show-error --fail --max-time 20 \
    --header 'Content-Type: application/json' \
    --header "X-Crawlab-Event: $CRAWLAB_EVENT_KIND" \
    --data-binary @- "$WEBHOOK_URL"
