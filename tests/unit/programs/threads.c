/* threads MODE PATH: a second thread opens PATH ("open") or execs PATH ("exec"). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *mode, *path;

static void *worker(void *arg) {
    (void)arg;
    if (strcmp(mode, "exec") == 0) {
        char *argv[] = {(char *)path, NULL};
        char *envp[] = {NULL};
        execve(path, argv, envp);
        _exit(126);
    }
    int fd = open(path, O_RDONLY);
    if (fd >= 0)
        close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    mode = argv[1];
    path = argv[2];
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 3;
    if (strcmp(mode, "exec") == 0)
        for (;;)
            pause(); /* the exec in the other thread replaces us */
    pthread_join(t, NULL);
    return 0;
}
