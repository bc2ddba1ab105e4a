#!/bin/sh
# Entrypoint of the llama.cpp inference container: starts llama-server in router mode with the
# arguments that the orchestrator's `prepare` (compose service init) wrote, one per line: the models
# folder, the models preset beside the arguments file, no autoload, no limit of its own (the gateway
# decides what loads). Per-model options live in the preset, never here: the router lays its own
# command line over every model's options.
set -eu

args_file="${LLAMA_ARGS_FILE:-/data/llama-server.args}"
if [ ! -s "$args_file" ]; then
  echo "inference: $args_file is missing or empty; the init service writes it (docker compose logs init)" >&2
  exit 1
fi

set --
while IFS= read -r arg || [ -n "$arg" ]; do
  set -- "$@" "$arg"
done <"$args_file"

# The key the gateway presents; from a file so it never shows in `ps` or `docker inspect`. The router
# checks it and forwards requests to its children (on loopback, ports of their own) with it.
if [ -n "${INFERENCE_API_KEY_FILE:-}" ]; then
  if [ ! -s "$INFERENCE_API_KEY_FILE" ]; then
    echo "inference: INFERENCE_API_KEY_FILE=$INFERENCE_API_KEY_FILE is missing or empty" >&2
    exit 1
  fi
  set -- "$@" --api-key-file "$INFERENCE_API_KEY_FILE"
fi

echo "inference: llama-server $*" >&2
exec "${LLAMA_SERVER_BIN:-/app/llama-server}" "$@" \
  --host "${INFERENCE_HOST:-0.0.0.0}" --port "${INFERENCE_PORT:-8180}" --metrics --slots --no-webui
