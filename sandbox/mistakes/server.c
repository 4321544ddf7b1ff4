/* The mistakes sample's app: a tiny HTTP server, linked statically. GET of any path
 * answers with /srv/www/index.html. */
#include <netinet/in.h>
#include <stdio.h>
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
    printf("mistakes-server listening on 8080\n");
    fflush(stdout);
    for (;;) {
        char req[2048], body[1024], head[256];
        int c = accept(srv, NULL, NULL);
        if (c < 0)
            continue;
        if (read(c, req, sizeof req - 1) < 0) {
            close(c);
            continue;
        }
        FILE *f = fopen("/srv/www/index.html", "r");
        size_t n = f ? fread(body, 1, sizeof body, f) : 0;
        if (f)
            fclose(f);
        int len = snprintf(head, sizeof head,
                           "HTTP/1.0 %s\r\nContent-Length: %zu\r\n\r\n",
                           f ? "200 OK" : "404 Not Found", n);
        if (write(c, head, len) == len && n)
            (void)!write(c, body, n);
        close(c);
    }
}
