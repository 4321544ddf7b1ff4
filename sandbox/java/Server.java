import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** A tiny JVM web app: the JDK's own HTTP server, a page, JSON, and a data file. */
public class Server {
    static void send(HttpExchange ex, int status, String type, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    public static void main(String[] args) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(8080), 0);
        server.createContext("/", ex -> send(ex, 200, "text/html",
            "<html><body><a href=\"/hello\">hello</a> <a href=\"/quote\">quote</a></body></html>"));
        server.createContext("/hello", ex -> send(ex, 200, "application/json",
            "{\"hello\": \"" + System.getProperty("user.name") + "\", \"java\": \""
            + System.getProperty("java.specification.version") + "\"}"));
        server.createContext("/quote", ex -> send(ex, 200, "text/plain",
            Files.readString(Path.of("/app/data/quote.txt"))));
        server.start();
        System.out.println("listening on 8080");
    }
}
