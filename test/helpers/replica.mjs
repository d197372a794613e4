// One `cairn server` replica as a real process, for tests of several servers on one catalog
// (test/helpers/replicas.ts forks it). Plain ESM run with `node`: it imports the BUILT server
// (dist/, `npm run build` first), so what runs is what `cairn server` runs, with one difference:
// the clock schedules and drills are due by is this process's own, set by the parent.
//
// Options: the JSON in CAIRN_REPLICA_OPTIONS:
//   { server: { dataDir, catalogUrl, scheduleTickMs, leaseMs, …any other ServerOptions field },
//     env: { BACKUP_FILESYSTEM_PATH, … } (added to process.env; the default repository's variables),
//     clockStart: ISO time (default: the real time at start) }
// IPC (child_process.fork):
//   parent → child  { type: 'clock', at: ISO }   sets the clock (only forward: it never goes back)
//   child → parent  { type: 'clock-set', at }    the clock now (after every 'clock')
//                   { type: 'ready', url, interrupted }   listening
//                   { type: 'log', line }        each structured log line (JSON), also on stderr
//                   { type: 'failed', message }  start-up failed (then it exits 1)
// SIGTERM (or the parent going away) closes the server cleanly and exits 0; SIGKILL is a crash.
import { startServer } from '../../dist/server/index.js';
import { createLogger } from '../../dist/server/log.js';

const options = JSON.parse(process.env.CAIRN_REPLICA_OPTIONS ?? '{}');
let clock = options.clockStart ? Date.parse(options.clockStart) : Date.now();
if (!Number.isFinite(clock)) throw new Error(`invalid clockStart ${options.clockStart}`);

const send = (message) => {
  if (process.connected) process.send?.(message);
};

process.on('message', (message) => {
  if (message?.type !== 'clock') return;
  const at = Date.parse(message.at);
  // Monotonic: a replica's due times were computed from the clock it had; going back would
  // make a schedule's lastDue lie in its future.
  if (Number.isFinite(at) && at > clock) clock = at;
  send({ type: 'clock-set', at: new Date(clock).toISOString() });
});

const logger = createLogger({
  format: 'json',
  level: 'info',
  write: (line) => {
    process.stderr.write(`${line}\n`);
    send({ type: 'log', line });
  },
});

let server;
try {
  server = await startServer({
    port: 0,
    console: false,
    ...options.server,
    env: { ...process.env, ...(options.env ?? {}) },
    now: () => new Date(clock),
    logger,
  });
} catch (err) {
  send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 50);
}

if (server) {
  send({ type: 'ready', url: server.url, interrupted: server.interrupted });
  let closing;
  const stop = () => {
    closing ??= server.close().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`replica close failed: ${err?.message ?? err}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
}
