# Build an sdist, serve it from a PEP 503 index on the loopback and `pip install` it
# without --no-cache-dir: pip builds a wheel and keeps it (and the download) in
# /root/.cache/pip, which is the mistake.
set -eu
cd /build/pip
head -c 3000000 /dev/urandom > mistake_pkg/blob.bin
mkdir -p /build/index/simple/mistake-pkg
python3 setup.py -q sdist -d /build/index/simple/mistake-pkg
echo '<a href="mistake-pkg-1.0.tar.gz">mistake-pkg-1.0.tar.gz</a>' \
    > /build/index/simple/mistake-pkg/index.html
python3 -m http.server 8765 --bind 127.0.0.1 --directory /build/index >/dev/null 2>&1 &
server=$!
i=0
until python3 -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:8765/simple/")' \
        2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 100 ] || exit 1; sleep 0.1
done
pip install --break-system-packages --no-build-isolation \
    --index-url http://127.0.0.1:8765/simple mistake-pkg
kill "$server"
rm -rf /build/index
