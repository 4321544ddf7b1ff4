#!/bin/sh
# Print how many items a list holds and its first item in sorted order, then exit.
set -eu
count=$(wc -l < "$1")
first=$(sort "$1" | head -n 1)
echo "items: $count"
echo "first: $first"
