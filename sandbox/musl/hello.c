/* A tiny HTTP server linked dynamically against musl: like an Alpine image's binary. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int one = 1, srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(8080)};
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(srv, (struct sockaddr *)&addr, sizeof addr) || listen(srv, 16)) {
        perror("listen");
        return 1;
    }
    printf("listening on 8080\n");
    fflush(stdout);
    for (;;) {
        char req[2048], body[256], resp[512];
        int c = accept(srv, NULL, NULL);
        if (c < 0) continue;
        read(c, req, sizeof req - 1);
        FILE *f = fopen("/etc/motd-musl", "r");
        size_t n = f ? fread(body, 1, sizeof body - 1, f) : 0;
        if (f) fclose(f);
        body[n] = 0;
        int len = snprintf(resp, sizeof resp, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: %zu\r\n\r\n%s", n, body);
        write(c, resp, len);
        close(c);
    }
}
