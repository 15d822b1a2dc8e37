#!/bin/sh
# An --on-event hook that posts a one-line message to a chat room through an incoming webhook
# (Slack, Mattermost and Rocket.Chat read {"text": ...}; for Matrix, point CHAT_URL at a hookshot
# or similar bridge that does):
#
#   crawlab-node --role=master --on-event='CHAT_URL=https://hooks.slack.com/services/... /path/to/hook-chat.sh'
#
# Only what a person wants to hear about goes to the room: failed, abnormal and empty tasks and
# nodes that go away; every other event is acknowledged (exit 0) and skipped. The message text is
# built with jq, which also escapes it for JSON.
set -eu
: "${CHAT_URL:?set CHAT_URL to the incoming webhook address of the room}"
case "$CRAWLAB_EVENT_KIND" in
task.error | task.abnormal | task.finished_empty | node.offline | hook.overflow) ;;
*) exit 0 ;;
esac
jq -c '
    def about: if (.kind | startswith("node.")) then "node " + (.data.name // "") + " (" + .node_key + ")"
        elif .task_id != "" then "task " + .task_id + " on node " + .node_key
        else "" end;
    def why: .data.error // .data.reason // "";
    {text: ("crawlab: " + .kind + " " + about + (if why != "" then ": " + why else "" end))}' |
    curl --silent --show-error --fail --max-time 20 \
        --header 'Content-Type: application/json' --data-binary @- "$CHAT_URL"
