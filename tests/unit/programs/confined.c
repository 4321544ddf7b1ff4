/* confined: a stand-in for a container's PID 1, confined in every way the launcher
 * copies: umask 027, SIGUSR1 ignored, RLIMIT_NOFILE 512/1024, oom_score_adj 500,
 * CAP_NET_ADMIN out of the bounding set, CAP_CHOWN inheritable, no_new_privs, and a
 * seccomp filter denying uname with EOPNOTSUPP and unshare with EPERM. Prints "ready"
 * and sleeps until killed. Run as root. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DENY(nr, err) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err))

int main(void) {
    umask(027);
    signal(SIGUSR1, SIG_IGN);
    struct rlimit nofile = {512, 1024};
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
        return 3;
    int oom = open("/proc/self/oom_score_adj", O_WRONLY);
    if (oom < 0 || write(oom, "500", 3) != 3)
        return 4;
    close(oom);
    if (prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) != 0)
        return 5;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0)
        return 6;
    data[0].inheritable = 1u << CAP_CHOWN;
    data[1].inheritable = 0;
    if (syscall(SYS_capset, &hdr, data) != 0)
        return 7;
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        DENY(SYS_uname, EOPNOTSUPP),
        DENY(SYS_unshare, EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return 8;
    puts("ready");
    fflush(stdout);
    for (;;)
        pause();
}
