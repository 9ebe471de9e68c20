#!/bin/sh
# Writes the Sentinel's (rewritable) configuration and starts it. The monitored master is
# the one the other Sentinels know (after a failover), else redis-0.
set -eu
master=""
for peer in redis-sentinel-0 redis-sentinel-1 redis-sentinel-2; do
    [ "$peer" = "$(hostname)" ] && continue
    master=$(redis-cli -h "$peer.redis-sentinel-headless" -p 26379 \
        sentinel get-master-addr-by-name "$REDIS_SENTINEL_MASTER" 2>/dev/null | head -n 1 || true)
    case $master in *.redis-headless) break ;; *) master="" ;; esac
done
cat >/data/sentinel.conf <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $(hostname).redis-sentinel-headless
sentinel monitor $REDIS_SENTINEL_MASTER ${master:-redis-0.redis-headless} 6379 2
sentinel auth-pass $REDIS_SENTINEL_MASTER $REDIS_PASSWORD
sentinel down-after-milliseconds $REDIS_SENTINEL_MASTER 5000
sentinel failover-timeout $REDIS_SENTINEL_MASTER 60000
sentinel parallel-syncs $REDIS_SENTINEL_MASTER 1
CONF
exec redis-server /data/sentinel.conf --sentinel
