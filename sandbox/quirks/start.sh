#!/bin/sh
# Entrypoint of the quirks sample, reached through the symlink /usr/local/bin/start.
set -e
# Use the setuid binary once (a copy of id(1), mode 4755).
/usr/local/bin/suid-tool > /dev/null
exec busybox httpd -f -p 8080 -h /srv/www
