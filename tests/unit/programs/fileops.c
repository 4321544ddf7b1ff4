/* fileops DIR: stat, lstat, readlink, access, statx, mkdir, unlink, rename on paths in
 * DIR (which holds a file "f" and a symlink "l" -> "f"), a few getpid calls, then exit 7. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) != 0)
        return 2;
    struct stat st;
    struct statx stx;
    char buf[256];
    if (stat("f", &st) || lstat("l", &st) || readlink("l", buf, sizeof buf) < 0)
        return 3;
    if (access("f", R_OK) || statx(AT_FDCWD, "f", 0, STATX_BASIC_STATS, &stx) != 0)
        return 4;
    if (mkdir("newdir", 0755) || rename("f", "g") || unlink("g"))
        return 5;
    for (int i = 0; i < 3; i++)
        syscall(SYS_getpid);
    if (write(1, "done\n", 5) != 5)
        return 6;
    return 7;
}
