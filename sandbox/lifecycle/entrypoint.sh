#!/bin/bash
# Runs as root, or as the --user given. Its stdout and stderr are reopened by name, as
# nginx and Apache do with logs symlinked to /dev/stdout and /dev/stderr (`>` opens
# with O_TRUNC).
echo "entrypoint: starting as $(id -un)" > /dev/stderr
echo "entrypoint: stdout reopened" > /dev/stdout
echo "entrypoint: stderr reopened" > /proc/self/fd/2
# A helper stopped the classic way: SIGTERM to the whole process group (as root it
# could signal any process in that group, whoever owns it).
trap 'echo "entrypoint: caught TERM"' TERM
sleep 30 &
# Signalled once it runs: a child killed before its exec would make whether sleep runs
# at all a race, in the original as in the minified image.
until read -r comm < /proc/$!/comm && [ "$comm" = sleep ]; do :; done
kill -TERM 0
wait
trap - TERM
printf 'c\na\nb\n' | sort > /srv/site/sorted.txt
# Only when the container is started again: compress what the first start wrote.
if [ -e /srv/state/started ]; then
    echo "entrypoint: started again"
    gzip -n -c /srv/site/sorted.txt > /srv/state/sorted.txt.gz \
        && mv /srv/state/sorted.txt.gz /srv/site/sorted.txt.gz
fi
touch /srv/state/started
exec "$@"
