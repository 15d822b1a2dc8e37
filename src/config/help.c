/* The --help text, written from the option table. */
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

/* Writes text as lines of at most USAGE_WIDTH columns, each indented, so that the help reads
 * well on an 80-column terminal whatever the length of the table's sentences. */
static void print_wrapped(FILE *out, const char *text)
{
    enum { INDENT = 6, USAGE_WIDTH = 79 };
    int col = 0;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > INDENT && col + 1 + (int)word > USAGE_WIDTH) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            col = fprintf(out, "%*s", INDENT, "");
        else
            col += fprintf(out, " ");
        col += fprintf(out, "%.*s", (int)word, text);
        text += word;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

void config_usage(FILE *out)
{
    fputs("Usage:\n"
          "  crawlab-node --role=master [OPTIONS]          run the master\n"
          "  crawlab-node --role=worker [OPTIONS]          run a worker\n"
          "  crawlab-node nodes [OPTIONS]                  list the nodes\n"
          "  crawlab-node node enable|disable|drain|rm [OPTIONS] KEY|NAME\n"
          "                                                take a node in or out of work\n"
          "  crawlab-node submit [OPTIONS] -- COMMAND...   queue a task running COMMAND\n"
          "  crawlab-node tasks [OPTIONS]                  list the tasks, newest first\n"
          "  crawlab-node tasks purge --before=TIME        purge tasks that ended before TIME\n"
          "  crawlab-node logs [OPTIONS] TASK_ID           print a task's log\n"
          "  crawlab-node results [OPTIONS] TASK_ID        print a task's results\n"
          "  crawlab-node cancel [OPTIONS] TASK_ID         cancel a task\n"
          "  crawlab-node task restart [OPTIONS] TASK_ID   run a task again as a new, linked task\n"
          "  crawlab-node schedule add [OPTIONS] EXPR -- COMMAND...\n"
          "                                                run COMMAND on a schedule\n"
          "  crawlab-node schedule list|show ID|pause ID|resume ID|rm ID [OPTIONS]\n"
          "                                                list or change the schedules\n"
          "  crawlab-node spider push DIR --name=NAME [OPTIONS]\n"
          "                                                store DIR as the next version of NAME\n"
          "  crawlab-node spider list [NAME]|show NAME[@VERSION]|rm NAME[@VERSION] [OPTIONS]\n"
          "                                                list, show or remove spiders\n"
          "  crawlab-node metrics [OPTIONS]                print the master's metrics\n"
          "  crawlab-node events [OPTIONS]                 print the events (--follow: and new "
          "ones)\n"
          "  crawlab-node cert init --dir=DIR --master-host=NAME[,NAME|IP...]\n"
          "                                                create a CA and certificates\n"
          "  crawlab-node cert issue --dir=DIR --name=NAME [--role=worker|admin]\n"
          "                                                another certificate from the CA\n"
          "  crawlab-node --help | --version\n"
          "\n"
          "Durations are 500ms, 5s, 2m, 1h, 30d, 1h30m or 1.5s; a bare number is seconds.\n"
          "A TASK_ID may be shortened to a unique prefix of at least 6 digits.\n"
          "Sizes are bytes or binary multiples: 64K, 512M, 1G. Flags win over the\n"
          "environment; an empty environment variable counts as unset.\n"
          "TLS 1.3 is on for the master with --tls-cert, for the others with --tls-ca.\n"
          "Workers present the node key (the master's auth.key), client commands the\n"
          "admin key (admin.key); neither opens the other's calls.\n"
          "\n"
          "Options:\n",
          out);
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->hidden)
            continue;
        fprintf(out, "  --%s%s%s\n", o->name, o->metavar ? "=" : "", o->metavar ? o->metavar : "");
        print_wrapped(out, o->help);
        if (o->def)
            fprintf(out, "      Default: %s.\n", o->def);
        if (o->env)
            fprintf(out, "      Environment: %s.\n", o->env);
        if (o->commands == EVERY) {
            fputs("      For: every command.\n", out);
            continue;
        }
        if (o->commands == ALL) {
            fputs("      For: every command but cert.\n", out);
            continue;
        }
        fputs("      For:", out);
        const char *sep = " ";
        for (enum config_command cmd = CMD_MASTER; cmd <= CMD_SPIDER; cmd++) {
            if (o->commands & M(cmd)) {
                fprintf(out, "%s%s", sep, config_scan_command_name(cmd));
                sep = ", ";
            }
        }
        fputs(".\n", out);
    }
}
