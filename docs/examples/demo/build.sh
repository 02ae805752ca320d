#!/bin/sh
set -e
echo "building $(pwd | xargs basename)"
for i in 1 2 3; do echo "compiling part $i"; done
echo "warning: this is a demo" >&2
echo "build ok"
