// A one-package npm registry on the loopback: the packument and the tarball.
const crypto = require("crypto");
const fs = require("fs");
const http = require("http");

const tarball = fs.readFileSync(process.argv[2]);
const base = "http://127.0.0.1:8766";
const doc = {
  name: "mistake-npm", "dist-tags": {latest: "1.0.0"},
  versions: {"1.0.0": {
    name: "mistake-npm", version: "1.0.0", main: "index.js",
    dist: {tarball: `${base}/mistake-npm/-/mistake-npm-1.0.0.tgz`,
           shasum: crypto.createHash("sha1").update(tarball).digest("hex"),
           integrity: "sha512-" + crypto.createHash("sha512").update(tarball).digest("base64")}}},
};
http.createServer((req, res) => {
  if (req.url === "/mistake-npm") {
    res.writeHead(200, {"Content-Type": "application/json"});
    res.end(JSON.stringify(doc));
  } else if (req.url === "/mistake-npm/-/mistake-npm-1.0.0.tgz") {
    res.writeHead(200, {"Content-Type": "application/octet-stream"});
    res.end(tarball);
  } else {
    res.writeHead(404);
    res.end();
  }
}).listen(8766, "127.0.0.1");
