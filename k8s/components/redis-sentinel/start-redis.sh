#!/bin/sh
# Starts one Redis of the Sentinel group: a replica of the master the Sentinels name, or,
# before any Sentinel knows one (first start), redis-0 is the master and the others follow it.
set -eu
me="$(hostname).redis-headless"
# The Sentinels have no password: REDISCLI_AUTH (for the probes) must not be sent to them.
master=$(env -u REDISCLI_AUTH redis-cli -h redis-sentinel -p 26379 \
    sentinel get-master-addr-by-name "$REDIS_SENTINEL_MASTER" 2>/dev/null | head -n 1 || true)
case $master in
    "" | *ERR* | *rror*) master="" ;;
esac
if [ -z "$master" ] && [ "$(hostname)" != redis-0 ]; then
    master=redis-0.redis-headless
fi
set -- --replica-announce-ip "$me" --masterauth "$REDIS_PASSWORD"
if [ -n "$master" ] && [ "$master" != "$me" ]; then
    set -- "$@" --replicaof "$master" 6379
fi
exec redis-server /etc/redis/redis.conf --requirepass "$REDIS_PASSWORD" "$@"
