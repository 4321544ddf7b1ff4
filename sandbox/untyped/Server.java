import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A static site served by the JDK's own HTTP server the way a quick hand-written one
 * does: the bytes of /app/www/PATH with no Content-Type header at all.
 */
public class Server {
    static final Path ROOT = Path.of("/app/www");

    static void serve(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath();
        Path file = ROOT.resolve(path.substring(1)).normalize();
        if (path.endsWith("/")) {
            file = file.resolve("index.html");
        }
        byte[] body;
        int status = 200;
        if (!file.startsWith(ROOT) || !Files.isRegularFile(file)) {
            status = 404;
            body = "not found".getBytes();
        } else {
            body = Files.readAllBytes(file);
        }
        ex.sendResponseHeaders(status, body.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        }
    }

    public static void main(String[] args) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(8080), 0);
        server.createContext("/", Server::serve);
        server.start();
        System.out.println("listening on 8080");
    }
}
