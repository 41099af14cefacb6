/* probe: reports, from inside a container, what busybox cannot show.
 * Built at test time with `gcc -static` into the conformance rootfs.
 *   probe sys NR [ARG...]   raw syscall(NR, ARG...) -> "ret=R errno=E"
 *   probe mkdir PATH        mkdir(PATH, 0755)        -> "ret=R errno=E"
 *   probe personality       current persona          -> "persona=0xN"
 *   probe ioprio            ioprio_get(self)         -> "class=C prio=P"
 *   probe sched             scheduler of self        -> "policy=P prio=R nice=N"
 *   probe fds               open fds above 2         -> one "fd=N target=T" per line
 *   probe tty               isatty of 0,1,2          -> "tty=0/1/1"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(long ret) {
    printf("ret=%ld errno=%d\n", ret, ret < 0 ? errno : 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe MODE [ARGS]\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "sys") && argc >= 3) {
        long a[6] = {0};
        for (int i = 3; i < argc && i < 9; i++)
            a[i - 3] = strtol(argv[i], NULL, 0);
        errno = 0;
        return report(syscall(strtol(argv[2], NULL, 0), a[0], a[1], a[2], a[3], a[4], a[5]));
    }
    if (!strcmp(mode, "mkdir") && argc == 3) {
        errno = 0;
        return report(mkdir(argv[2], 0755));
    }
    if (!strcmp(mode, "personality")) {
        printf("persona=0x%x\n", (unsigned)personality(0xffffffff));
        return 0;
    }
    if (!strcmp(mode, "ioprio")) {
        long v = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
        if (v < 0) {
            printf("error errno=%d\n", errno);
            return 1;
        }
        printf("class=%ld prio=%ld\n", v >> 13, v & 0xff);
        return 0;
    }
    if (!strcmp(mode, "sched")) {
        struct sched_param sp;
        int pol = sched_getscheduler(0);
        sched_getparam(0, &sp);
        errno = 0;
        int nice = getpriority(PRIO_PROCESS, 0);
        printf("policy=%d prio=%d nice=%d\n", pol, sp.sched_priority, nice);
        return 0;
    }
    if (!strcmp(mode, "fds")) {
        DIR *d = opendir("/proc/self/fd");
        if (!d) {
            perror("opendir");
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            int fd = atoi(e->d_name);
            if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
                continue;
            char path[64], target[512];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(path, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = 0;
            printf("fd=%d target=%s\n", fd, target);
        }
        closedir(d);
        return 0;
    }
    if (!strcmp(mode, "tty")) {
        printf("tty=%d/%d/%d\n", isatty(0), isatty(1), isatty(2));
        return 0;
    }
    fprintf(stderr, "probe: unknown mode %s\n", mode);
    return 2;
}
