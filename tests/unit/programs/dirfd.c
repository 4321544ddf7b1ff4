/* dirfd DIR NAME: openat(open("/etc"), "passwd"), then chdir(DIR) and openat(AT_FDCWD,
 * NAME), then a failing open of DIR/missing-file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    int d = open("/etc", O_RDONLY | O_DIRECTORY);
    if (d < 0 || openat(d, "passwd", O_RDONLY) < 0)
        return 3;
    if (chdir(argv[1]) != 0 || openat(AT_FDCWD, argv[2], O_RDONLY) < 0)
        return 4;
    if (openat(AT_FDCWD, "missing-file", O_RDONLY) >= 0)
        return 5;
    return 0;
}
