#!/usr/bin/env bash
# Starts the local database servers the integration tests talk to, when they are down.
set -u
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || echo "warning: could not start PostgreSQL" >&2
fi
if [ -x /usr/sbin/mariadbd ] && ! mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || echo "warning: could not start MariaDB" >&2
fi
# OpenStack Swift's S3 API (Debian's python3-swift) is the second S3 server of the storage tests;
# the tests start it themselves (test/helpers/swift/start-swift.sh) and skip it, saying why,
# when the package is missing.
if command -v apt-get >/dev/null 2>&1 && ! /usr/bin/python3 -c 'import swift' >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends python3-swift >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends python3-swift >/dev/null 2>&1; } \
    || echo "warning: could not install python3-swift (the Swift S3 tests will be skipped)" >&2
fi
exit 0
