#!/usr/bin/env bash
# start-swift.sh WORKDIR PROXY_PORT
#
# Starts a throw-away, single-node OpenStack Swift (Debian 12 "bookworm", Swift 2.30) with its S3 API
# (s3api + tempauth) on 127.0.0.1, for integration tests. Everything lives under WORKDIR:
#
#   WORKDIR/etc   swift.conf, the four server configs, the rings, two small Python helpers
#   WORKDIR/srv   the "devices" dir; one plain directory d1 (mount_check = false, no XFS)
#   WORKDIR/run   one pid file per server (read by stop-swift.sh)
#   WORKDIR/log   one log per server (stderr of the server; Swift logs there with -v/verbose)
#
# Ports: proxy = PROXY_PORT, account = +1, container = +2, object = +3, memcached = +4 (only if
# SWIFT_MEMCACHED=1; the proxy's cache filter points there either way, see below).
#
# On success prints exactly one line on stdout and exits 0:
#   endpoint=http://127.0.0.1:PORT access_key=test:tester secret_key=testing
# Exit codes: 2 usage, 3 a port is taken (pick another and retry), 4 python3-swift missing,
#             5 a server failed to start or the S3 smoke test failed (logs are printed to stderr).
#
# Needs (as root, tests run as root): apt-get install -y --no-install-recommends python3-swift
# No systemd, no swift-init, no /etc/swift, no rsync, no memcached needed.
#
# Environment knobs (all optional):
#   SWIFT_PYTHON          interpreter with python3-swift (default /usr/bin/python3; NOT the `python3`
#                         on PATH, which here is a pyenv shim without Debian's dist-packages)
#   SWIFT_START_TIMEOUT   seconds to wait for readiness (default 30)
#   SWIFT_SMOKE=0         skip the end-to-end S3 check (bucket + object round trip, SigV2)
#   SWIFT_BUCKETS         space-separated bucket names to create once ready (kept, not deleted)
#   SWIFT_MIN_SEGMENT_SIZE  s3api minimum multipart part size (default 5242880 = 5 MiB, like S3)
#   SWIFT_LOG_LEVEL       INFO (default) | DEBUG | WARNING
#   SWIFT_MEMCACHED=1     also start memcached on PORT+4 (only needed for Swift-native token auth)
#   SWIFT_WATCH_PID       a pid (e.g. the test runner's); each Swift server exits when it is gone,
#                         so a crashed test run leaves no orphan servers
set -euo pipefail

usage() { echo "usage: $0 WORKDIR PROXY_PORT" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
PORT=$2
if ! [[ $PORT =~ ^[0-9]+$ ]] || (( PORT < 1024 || PORT > 65530 )); then
  echo "start-swift: PROXY_PORT must be a number in 1024..65530" >&2; exit 2
fi

PY=${SWIFT_PYTHON:-/usr/bin/python3}
TIMEOUT=${SWIFT_START_TIMEOUT:-30}
MINSEG=${SWIFT_MIN_SEGMENT_SIZE:-5242880}
LOGLEVEL=${SWIFT_LOG_LEVEL:-INFO}
MEMCACHED=${SWIFT_MEMCACHED:-0}
ACCESS_KEY='test:tester'   # tempauth user "tester" in account "test": S3 access key is account:user
SECRET_KEY='testing'       # ... and the S3 secret is that user's tempauth key

mkdir -p "$1"
WORK=$(cd "$1" && pwd -P)   # absolute: Swift servers chdir('/') when they start
ETC=$WORK/etc DEV=$WORK/srv RUN=$WORK/run LOG=$WORK/log
ACC=$((PORT + 1)) CON=$((PORT + 2)) OBJ=$((PORT + 3)) MC=$((PORT + 4))

# ---------------------------------------------------------------------------------------------
# Helpers shared in spirit with stop-swift.sh (kept inline so each script stands alone).

# True if pid is alive, not a zombie, and is one of ours: a Swift server whose command line
# names this work dir, or a memcached (its pid file is in our run/). Guards against a recycled pid.
ours() {
  local pid=$1 cmd state
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$WORK/etc/"* || $cmd == memcached\ * || $cmd == */memcached\ * ]]
}

# TERM every process named by a pid file under run/, wait up to 5 s, then KILL what is left.
stop_all() {
  local f pid pids=() _
  for f in "$RUN"/*.pid; do
    [[ -e $f ]] || continue
    pid=$(<"$f")
    if ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
    rm -f "$f"
  done
  (( ${#pids[@]} )) || return 0
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do ours "$pid" && alive=1; done
    (( alive )) || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do ours "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
}

# True if something already listens on 127.0.0.1:$1 (bash's /dev/tcp connect succeeds).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

dump_logs() {
  local f
  for f in "$LOG"/*.log; do
    [[ -e $f ]] || continue
    echo "----- $f (last 40 lines) -----" >&2
    tail -n 40 "$f" >&2 || true
  done
}

fail() { echo "start-swift: $*" >&2; dump_logs; stop_all; exit 5; }

# ---------------------------------------------------------------------------------------------
# Preconditions.

if [[ ! -x $PY ]] || ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("swift.common.middleware.s3api") is None)' 2>/dev/null; then
  echo "start-swift: $PY cannot import swift's s3api; install it with:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends python3-swift" >&2
  exit 4
fi
if [[ $MEMCACHED == 1 ]] && ! command -v memcached >/dev/null; then
  echo "start-swift: SWIFT_MEMCACHED=1 but memcached is not installed (apt-get install -y memcached)" >&2
  exit 4
fi

# A previous run in the same work dir that was never stopped: stop it first.
stop_all

for p in "$PORT" "$ACC" "$CON" "$OBJ" "$MC"; do
  if port_in_use "$p"; then echo "start-swift: port $p on 127.0.0.1 is in use" >&2; exit 3; fi
done

mkdir -p "$ETC" "$DEV/d1" "$RUN" "$LOG"
rm -f "$LOG"/*.log
printf 'PROXY=%s\nACCOUNT=%s\nCONTAINER=%s\nOBJECT=%s\nMEMCACHE=%s\n' "$PORT" "$ACC" "$CON" "$OBJ" "$MC" >"$WORK/ports"
START_NS=$(date +%s%N)

# ---------------------------------------------------------------------------------------------
# Config files.

# swift.conf: the hash prefix/suffix are mandatory (servers refuse to start without one). Fixed
# values are fine for a throw-away cluster. Swift reads this file from /etc/swift/swift.conf,
# hard-coded; launch.py (below) points it at $ETC/swift.conf instead, so /etc stays untouched.
cat >"$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = cairn-test-suffix
swift_hash_path_prefix = cairn-test-prefix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
# Defaults kept: max_file_size = 5 GiB (S3's single-PUT limit), max_object_name_length = 1024.
EOF

# Settings common to the three storage servers:
#  - workers = 0: one process, no fork, so the pid we record is the server (Swift's forking parent
#    would also os.killpg(0, SIGTERM) on stop); drop_privileges() only runs in forked workers, so
#    `user` is moot, but root is the truth.
#  - mount_check = false: devices are plain directories, not mount points.
#  - fallocate_reserve = 0: the default 1% answers 507 Insufficient Storage on a nearly full disk.
#  - bind_timeout = 5: Swift retries a busy port for 30 s by default; fail fast instead.
common_server_defaults() {
  cat <<EOF
bind_ip = 127.0.0.1
bind_port = $1
bind_timeout = 5
workers = 0
user = root
swift_dir = $ETC
devices = $DEV
mount_check = false
fallocate_reserve = 0
log_level = $LOGLEVEL
EOF
}

{
  echo '[DEFAULT]'
  common_server_defaults "$ACC"
  cat <<EOF
log_name = account-server

[pipeline:main]
pipeline = account-server

[app:account-server]
use = egg:swift#account
EOF
} >"$ETC/account-server.conf"

# Container server: conn/node timeouts are for its updates to the account server (a container
# that fails to reach the account server is missing from ListBuckets until an updater runs, and
# no updater runs here). Defaults (0.5 s / 3 s) are too tight on a loaded 2-core CI machine.
{
  echo '[DEFAULT]'
  common_server_defaults "$CON"
  cat <<EOF
log_name = container-server

[pipeline:main]
pipeline = container-server

[app:container-server]
use = egg:swift#container
conn_timeout = 3
node_timeout = 30
EOF
} >"$ETC/container-server.conf"

# Object server: container_update_timeout (default 1 s!) bounds the synchronous container listing
# update done on every PUT/DELETE; when it times out the update is queued as an async_pending for
# the object-updater, which we do not run, so ListObjects would miss the object. Hence 30 s.
# allowed_headers: the object metadata S3 clients may set (Content-Disposition etc.).
{
  echo '[DEFAULT]'
  common_server_defaults "$OBJ"
  cat <<EOF
log_name = object-server
disable_fallocate = true

[pipeline:main]
pipeline = object-server

[app:object-server]
use = egg:swift#object
conn_timeout = 3
node_timeout = 30
container_update_timeout = 30
allowed_headers = Content-Disposition, Content-Encoding, X-Delete-At, X-Object-Manifest, X-Static-Large-Object, Cache-Control, Content-Language, Expires, X-Robots-Tag
EOF
} >"$ETC/object-server.conf"

# Proxy. Pipeline order matters:
#  - s3api just before tempauth (s3api checks this at startup); slo after s3api, or multipart
#    uploads are switched off (with only a warning in the log).
#  - cache (memcache filter) must be present: tempauth raises "Memcache required" without it. A
#    running memcached is NOT needed for S3 requests (signature auth is checked per request; cache
#    misses just fall through), so by default nothing listens on $MC: errors are logged, then the
#    server is error-limited. A dedicated port keeps two test clusters from sharing a cache.
#  - listing_formats, copy, dlo, versioned_writes would be auto-inserted anyway; listed for clarity.
cat >"$ETC/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PORT
bind_timeout = 5
workers = 0
user = root
swift_dir = $ETC
log_name = proxy-server
log_level = $LOGLEVEL
client_timeout = 120
expose_info = true

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
# Create the account AUTH_test on its first container PUT (S3 CreateBucket). No account admin API.
account_autocreate = true
allow_account_management = false
conn_timeout = 3
node_timeout = 30
recoverable_node_timeout = 30

[filter:s3api]
use = egg:swift#s3api
# Region for GetBucketLocation and the SigV4 credential scope: clients must sign for us-east-1.
location = us-east-1
dns_compliant_bucket_names = true
s3_acl = false
allow_multipart_uploads = true
# S3 allows 10000 parts; s3api defaults to 1000 (then slo's max_manifest_segments must follow).
max_upload_part_num = 10000
# Parts other than the last must be >= this (EntityTooSmall otherwise), as on S3.
min_segment_size = $MINSEG
allowable_clock_skew = 900

[filter:tempauth]
use = egg:swift#tempauth
# user_<account>_<user> = <key> [groups]. .admin = owner of the account (may create buckets).
# S3 access key = "<account>:<user>", S3 secret = <key>.
user_test_tester = testing .admin
# A second, separate account, for tests that need a foreign owner.
user_test2_tester2 = testing2 .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC

[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF

# ---------------------------------------------------------------------------------------------
# launch.py: what Debian's /usr/bin/swift-*-server scripts do (run_wsgi(conf, section, verbose)),
# plus: read swift.conf from $ETC instead of the hard-coded /etc/swift/swift.conf, and optionally
# exit when SWIFT_WATCH_PID dies. Works with just python3-swift installed.
cat >"$ETC/launch.py" <<'PY'
"""Run one Swift WSGI server in the foreground: launch.py SWIFT_DIR CONF_FILE APP_SECTION"""
import os
import sys


def watch_parent(pid):
    # A plain OS thread, started before Swift imports eventlet and monkey-patches threading.
    import threading
    import time

    def loop():
        while True:
            time.sleep(1)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass

    threading.Thread(target=loop, name='watch-parent', daemon=True).start()


def main():
    swift_dir, conf_file, app_section = sys.argv[1:4]
    try:
        os.setsid()  # own session and process group (Swift's own hygiene does the same)
    except OSError:
        pass
    if os.environ.get('SWIFT_WATCH_PID'):
        watch_parent(int(os.environ['SWIFT_WATCH_PID']))

    from swift.common import utils
    if hasattr(utils, 'set_swift_dir'):
        utils.set_swift_dir(swift_dir)  # re-reads the hash prefix/suffix, exits if missing
    else:
        utils.SWIFT_CONF_FILE = os.path.join(swift_dir, 'swift.conf')
        utils.HASH_PATH_SUFFIX = utils.HASH_PATH_PREFIX = b''
        utils.validate_configuration()
    from swift.common import constraints, storage_policy
    constraints.reload_constraints()
    storage_policy.reload_storage_policies()

    from swift.common.wsgi import run_wsgi
    kwargs = {'verbose': True}  # log to stderr (our log file) as well as syslog
    if app_section == 'object-server':
        from swift.obj import server as object_server  # as bin/swift-object-server does
        kwargs['global_conf_callback'] = object_server.global_conf_callback
    return run_wsgi(conf_file, app_section, **kwargs)


if __name__ == '__main__':
    sys.exit(main())
PY

# build_rings.py: the same as `swift-ring-builder X.builder create 8 1 0; ... add
# r1z1-127.0.0.1:PORT/d1 100; ... rebalance`, for the three rings, in one process (each
# swift-ring-builder call is a separate ~0.5 s Python start, and that tool is only in the `swift`
# package). 1 replica, 2^8 partitions, one device: nothing ever needs replicating.
cat >"$ETC/build_rings.py" <<'PY'
"""build_rings.py SWIFT_DIR PART_POWER ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT"""
import os
import sys

from swift.common.ring.builder import RingBuilder


def main():
    swift_dir, part_power = sys.argv[1], int(sys.argv[2])
    ports = dict(zip(('account', 'container', 'object'), map(int, sys.argv[3:6])))
    for name, port in ports.items():
        builder = RingBuilder(part_power, 1, 0)  # part_power, replicas, min_part_hours
        builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port,
                         'replication_ip': '127.0.0.1', 'replication_port': port,
                         'device': 'd1', 'weight': 100.0, 'meta': ''})
        builder.rebalance()
        builder.get_ring().save(os.path.join(swift_dir, name + '.ring.gz'))
        if hasattr(builder, 'save'):  # the .builder file is only for humans / swift-ring-builder
            builder.save(os.path.join(swift_dir, name + '.builder'))


if __name__ == '__main__':
    main()
PY

# ready.py: waits until every server answers HTTP, checks /info lists s3api, then (unless
# SWIFT_SMOKE=0) does an S3 round trip signed with SigV2 (stdlib only: no SDK in Python here):
# create bucket, put, get, list, delete object, delete bucket. Finally creates SWIFT_BUCKETS.
cat >"$ETC/ready.py" <<'PY'
"""ready.py NAME:PORT:PID ... (env: READY_TIMEOUT, S3_ACCESS, S3_SECRET, SWIFT_SMOKE, SWIFT_BUCKETS)"""
import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import socket
import sys
import time
import uuid

DEADLINE = time.monotonic() + float(os.environ.get('READY_TIMEOUT', '30'))


def fail(msg):
    sys.stderr.write('start-swift: %s\n' % msg)
    sys.exit(1)


def alive(pid):
    # A crashed child of start-swift.sh stays a zombie until the script reaps it: kill(pid, 0)
    # would still succeed, so look at the state letter after the ')' in /proc/PID/stat.
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(')') + 2:][:1] not in ('Z', 'X')


def request(port, method, path, headers=None, body=None, timeout=10):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def answers(name, port):
    try:
        if name == 'memcached':
            socket.create_connection(('127.0.0.1', port), timeout=2).close()
            return True
        if name == 'proxy':
            return request(port, 'GET', '/healthcheck', timeout=2)[0] == 200
        request(port, 'GET', '/', timeout=2)  # a storage server: any HTTP answer will do
        return True
    except (OSError, http.client.HTTPException):
        return False


def main():
    servers = []
    for spec in sys.argv[1:]:
        name, port, pid = spec.split(':')
        servers.append((name, int(port), int(pid)))
    proxy = next(port for name, port, _ in servers if name == 'proxy')

    pending = list(servers)
    while pending:
        for server in list(pending):
            name, port, pid = server
            if not alive(pid):
                fail('%s (pid %d) exited during startup' % (name, pid))
            if answers(name, port):
                pending.remove(server)
        if pending:
            if time.monotonic() > DEADLINE:
                fail('not answering in time: %s' % ', '.join(s[0] for s in pending))
            time.sleep(0.2)

    status, body = request(proxy, 'GET', '/info')
    try:
        info = json.loads(body)
    except ValueError:
        info = {}
    if status != 200 or 's3api' not in info or 'tempauth' not in info:
        fail('/info answered %d without s3api/tempauth: %r' % (status, body[:300]))

    access, secret = os.environ['S3_ACCESS'], os.environ['S3_SECRET']

    def s3(method, path, body=None, ctype=''):
        # AWS signature V2: StringToSign = VERB\nContent-MD5\nContent-Type\nDate\nResource
        date = email.utils.formatdate(usegmt=True)
        to_sign = '\n'.join((method, '', ctype, date, path)).encode()
        sig = base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha1).digest()).decode()
        headers = {'Date': date, 'Authorization': 'AWS %s:%s' % (access, sig)}
        if ctype:
            headers['Content-Type'] = ctype
        return request(proxy, method, path, headers, body, timeout=30)

    def step(method, path, want, body=None, ctype='', expect_body=None, retry_on=(500, 503)):
        while True:
            status, got = s3(method, path, body, ctype)
            ok = status == want and (expect_body is None or expect_body(got))
            if ok:
                return
            if status in retry_on and time.monotonic() < DEADLINE:
                time.sleep(0.3)
                continue
            fail('S3 smoke test: %s %s answered %d (wanted %d): %r' % (method, path, status, want, got[:500]))

    if os.environ.get('SWIFT_SMOKE', '1') != '0':
        bucket = '/cairn-ready-' + uuid.uuid4().hex[:12]
        step('PUT', bucket, 200, body=b'')
        step('PUT', bucket + '/probe', 200, body=b'ok', ctype='text/plain')
        step('GET', bucket + '/probe', 200, expect_body=lambda b: b == b'ok')
        step('GET', bucket, 200, expect_body=lambda b: b'<Key>probe</Key>' in b)
        step('DELETE', bucket + '/probe', 204)
        step('DELETE', bucket, 204, retry_on=(409, 500, 503))

    for name in os.environ.get('SWIFT_BUCKETS', '').split():
        step('PUT', '/' + name, 200, body=b'')


if __name__ == '__main__':
    main()
PY

# ---------------------------------------------------------------------------------------------
# Rings, then servers. Storage servers do not need the rings; the proxy loads them at startup.

"$PY" "$ETC/build_rings.py" "$ETC" 8 "$ACC" "$CON" "$OBJ" >>"$LOG/rings.log" 2>&1 \
  || fail "building the rings failed"

# Each server: stdin from /dev/null and stdout/stderr to its log, so that a caller waiting on this
# script's pipes (Node's execFile) is not held open by the servers. $! is the server's own pid
# (bash forks and execs python directly; the script has no job control).
start_server() {  # NAME CONF SECTION
  "$PY" "$ETC/launch.py" "$ETC" "$ETC/$2" "$3" </dev/null >>"$LOG/$1.log" 2>&1 &
  echo $! >"$RUN/$1.pid"
}
start_server account account-server.conf account-server
start_server container container-server.conf container-server
start_server object object-server.conf object-server
start_server proxy proxy-server.conf proxy-server
specs=("account:$ACC:$(<"$RUN/account.pid")" "container:$CON:$(<"$RUN/container.pid")"
       "object:$OBJ:$(<"$RUN/object.pid")" "proxy:$PORT:$(<"$RUN/proxy.pid")")

if [[ $MEMCACHED == 1 ]]; then
  # -U 0: no UDP. -u root: memcached refuses to run as root without it. Foreground (no -d) so $!
  # is its pid. It does not watch SWIFT_WATCH_PID: stop-swift.sh must run.
  memcached -u root -l 127.0.0.1 -p "$MC" -U 0 -m 64 </dev/null >>"$LOG/memcached.log" 2>&1 &
  echo $! >"$RUN/memcached.pid"
  specs+=("memcached:$MC:$(<"$RUN/memcached.pid")")
fi

READY_TIMEOUT=$TIMEOUT S3_ACCESS=$ACCESS_KEY S3_SECRET=$SECRET_KEY "$PY" "$ETC/ready.py" "${specs[@]}" \
  || fail "Swift did not become ready (work dir $WORK)"

printf 'ENDPOINT=http://127.0.0.1:%s\nACCESS_KEY=%s\nSECRET_KEY=%s\n' "$PORT" "$ACCESS_KEY" "$SECRET_KEY" >"$WORK/s3.env"
echo "start-swift: ready in $(( ($(date +%s%N) - START_NS) / 1000000 )) ms, logs in $LOG" >&2
echo "endpoint=http://127.0.0.1:$PORT access_key=$ACCESS_KEY secret_key=$SECRET_KEY"
