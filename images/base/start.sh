#!/bin/bash
# The images' entry point (under tini): run the start hooks, then the command
# (jupyterhub-singleuser by default, or whatever `docker run IMAGE CMD` gives).
#
# Hooks run in order: /usr/local/bin/start-notebook.d, then before-notebook.d.
# `*.sh` files are sourced, so they can export variables for the server and its
# kernels; other executable files are run. A failing hook stops the start, so a
# half-configured server never reaches the user.
set -euo pipefail

run_hooks() {
  local hook
  for hook in "$1"/*; do
    case "$hook" in
      *.sh) echo "start.sh: sourcing $hook" >&2; source "$hook" ;;
      *) if [ -f "$hook" ] && [ -x "$hook" ]; then echo "start.sh: running $hook" >&2; "$hook"; fi ;;
    esac
  done
}

shopt -s nullglob
run_hooks /usr/local/bin/start-notebook.d
run_hooks /usr/local/bin/before-notebook.d
shopt -u nullglob
exec "$@"
