/* execer PROGRAM [ARGS...]: execve PROGRAM (an absolute path). */
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    char *envp[] = {NULL};
    execve(argv[1], argv + 1, envp);
    return 126;
}
