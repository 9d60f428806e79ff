/* hugeslab(1): dispatches to the subcommands; see cli.h and man/hugeslab.1. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *to)
{
    fprintf(
        to,
        "usage: hugeslab COMMAND [ARGS]\n"
        "  run [--profile P] [--backing B] [--stats FILE] [--interval MS] [--verbose]\n"
        "      [--set NAME=VALUE]... [--lib PATH] -- CMD [ARGS...]\n"
        "                      run CMD with libhugeslab preloaded and these options\n"
        "  doctor              what this machine allows, and the command that fixes each finding\n"
        "  pool [--reserve SIZE | --release [SIZE]] [--node N | --spread] [--page-size SIZE]\n"
        "                      show, reserve or release hugetlb pages per node\n"
        "  stats PID...        the kernel's figures for a process, and hugeslab's own\n"
        "  top [--all] [--once] [--interval S]\n"
        "                      the same for every process running hugeslab, refreshed\n"
        "  version             the version of this command\n"
        "See hugeslab(1) and hugeslab(7).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0) return cli_run(argc - 1, argv + 1);
    if (strcmp(cmd, "doctor") == 0) return cli_doctor(argc - 1, argv + 1);
    if (strcmp(cmd, "pool") == 0) return cli_pool(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0) return cli_stats(argc - 1, argv + 1);
    if (strcmp(cmd, "top") == 0) return cli_top(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("hugeslab %s\n", HS_CLI_VERSION);
        return 0;
    }
    fprintf(stderr, "hugeslab: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
