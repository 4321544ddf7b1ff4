#!/bin/sh
# Entrypoint of the layers sample. It rewrites a file of the image at run time (the
# minified image must carry the image's own bytes, not the running container's), reads
# files that live in different layers, and runs the copy of true(1) that has a file
# capability, then serves /srv/www.
set -e
echo "changed at run time" > /srv/www/state.txt
cat /srv/data/first /srv/data/fourth /srv/data/third /srv/data/opaque/new \
    /srv/data/file-to-dir/z /srv/data/dir-to-file /srv/data/owned /srv/data/bigid \
    /srv/data/future "$(printf '/srv/data/caf\351')" \
    /srv/data/llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll \
    > /dev/null
/usr/local/bin/capbox
exec busybox httpd -f -p 8080 -h /srv/www
