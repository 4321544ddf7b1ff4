// A small Node.js web app: a local module, a JSON data file, a page linking an API.
const http = require("http");
const fs = require("fs");
const path = require("path");
const { greet } = require("./lib/greet");

const items = JSON.parse(fs.readFileSync(path.join(__dirname, "data", "items.json"), "utf8"));

http.createServer((req, res) => {
  if (req.url === "/") {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end('<a href="/api/items">items</a> <a href="/api/greet">greet</a>');
  } else if (req.url === "/api/items") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(items));
  } else if (req.url === "/api/greet") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ greeting: greet(process.env.GREET_NAME || "world") }));
  } else {
    res.writeHead(404);
    res.end("not found");
  }
}).listen(3000, () => console.log("listening on 3000"));
