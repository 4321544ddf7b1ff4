# Pack a package, serve it from a registry on the loopback and `npm install` it like
# from the public registry: npm keeps the tarball and metadata in /root/.npm/_cacache,
# which is the mistake.
set -eu
cd /build/npm
head -c 2000000 /dev/urandom > blob.bin
tgz=$(npm pack --silent)
node registry.js "$tgz" &
server=$!
i=0
until node -e 'require("http").get("http://127.0.0.1:8766/mistake-npm", r => process.exit(r.statusCode === 200 ? 0 : 1)).on("error", () => process.exit(1))'; do
    i=$((i + 1)); [ "$i" -lt 100 ] || exit 1; sleep 0.1
done
mkdir -p /srv/app
cd /srv/app
npm install --no-audit --no-fund --no-update-notifier \
    --registry http://127.0.0.1:8766/ mistake-npm
kill "$server"
