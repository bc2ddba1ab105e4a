#!/bin/sh
# Entrypoint of the node services' image. Compose hands the Redis and Postgres passwords over as
# Docker secrets (REDIS_PASSWORD_FILE, POSTGRES_PASSWORD_FILE): they go into REDIS_URL and
# DATABASE_URL here, so they never sit in compose's environment or `docker inspect`. A password
# still `change-me` (the example's) stops the start unless ALLOW_DEFAULT_PASSWORDS=true.
set -eu

fail() {
  echo "service-entrypoint: $*" >&2
  exit 1
}

# with_password URL FILE VARIABLE: URL with the password from FILE as its userinfo's password.
with_password() {
  [ -r "$2" ] || fail "$3=$2 cannot be read by uid $(id -u) (owner and mode: $(stat -c '%U %a' "$2" 2>/dev/null || echo 'no such file'))"
  password="$(cat "$2")"
  [ -n "$password" ] || fail "$3=$2 is empty: write a password into it (openssl rand -hex 24 > $(basename "$2"))"
  case "$password" in
    *[!A-Za-z0-9._~-]*) fail "$3=$2: use a password of letters, digits and . _ ~ - only (openssl rand -hex 24)" ;;
  esac
  if [ "$password" = change-me ] && [ "${ALLOW_DEFAULT_PASSWORDS:-false}" != true ]; then
    fail "$3=$2 still holds the example password change-me: write a real one (openssl rand -hex 24 > secrets/$(basename "$2")), or set ALLOW_DEFAULT_PASSWORDS=true for a throwaway stack"
  fi
  scheme="${1%%://*}"
  rest="${1#*://}"
  case "$rest" in
    *@*) echo "$scheme://${rest%%@*}:$password@${rest#*@}" ;;
    *) echo "$scheme://:$password@$rest" ;;
  esac
}

if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
  REDIS_URL="$(with_password "${REDIS_URL:?REDIS_URL is required with REDIS_PASSWORD_FILE}" "$REDIS_PASSWORD_FILE" REDIS_PASSWORD_FILE)"
  export REDIS_URL
fi
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  DATABASE_URL="$(with_password "${DATABASE_URL:?DATABASE_URL is required with POSTGRES_PASSWORD_FILE}" "$POSTGRES_PASSWORD_FILE" POSTGRES_PASSWORD_FILE)"
  export DATABASE_URL
fi
unset REDIS_PASSWORD_FILE POSTGRES_PASSWORD_FILE ALLOW_DEFAULT_PASSWORDS
exec "$@"
