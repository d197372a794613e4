/**
 * Who owns a staging object (a restore's staging file), written into its name so that a later
 * run can tell, from the name alone, whether the process that made it is provably gone.
 *
 * The token is `<host>-<pid>-<start>`:
 * - host: 10 hex digits of SHA-256 over the hostname, the kernel's boot id and the PID namespace
 *   (Linux: /proc/sys/kernel/random/boot_id, /proc/self/ns/pid). Two processes with the same
 *   host part see the same process table: same machine, same boot, same PID namespace.
 * - pid: the owner's process id, decimal.
 * - start: the owner's start time in clock ticks since boot (/proc/<pid>/stat field 22), or `x`
 *   where unknown: it tells a reused pid from the owner.
 * An owner is provably dead only when its host part equals ours and its pid is gone or now
 * belongs to a process that started at another time. Anything else (another machine, container
 * or boot, an unparsable token) may be alive and is left alone: nothing is removed on a guess.
 */
import { createHash } from 'node:crypto';
import { currentProcessIdentity, processExists, processStartTicks } from './process.js';

export interface Owner {
  host: string;
  pid: number;
  /** Start time in clock ticks since boot, or undefined when unknown. */
  start: number | undefined;
}

export const OWNER_TOKEN_PATTERN = '[0-9a-f]{10}-[0-9]+-(?:[0-9]+|x)';

let hostPart: string | undefined;

/** This process's host part (see the module comment), from the identity locks use as well. */
export function hostIdentity(): string {
  if (hostPart === undefined) {
    const self = currentProcessIdentity();
    const parts = [self.hostname, self.bootId ?? '', self.pidNamespace ?? ''];
    hostPart = createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 10);
  }
  return hostPart;
}

let ownToken: string | undefined;

/** This process's token, `<host>-<pid>-<start>`. */
export function ownerToken(): string {
  ownToken ??= `${hostIdentity()}-${process.pid}-${currentProcessIdentity().startTicks ?? 'x'}`;
  return ownToken;
}

export function parseOwnerToken(token: string): Owner | undefined {
  const m = /^([0-9a-f]{10})-([0-9]+)-([0-9]+|x)$/.exec(token);
  if (!m) return undefined;
  const pid = Number(m[2]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { host: m[1] as string, pid, start: m[3] === 'x' ? undefined : Number(m[3]) };
}

/** Whether the owner is provably gone (see the module comment); false whenever in doubt. */
export function ownerIsDead(owner: Owner): boolean {
  if (owner.host !== hostIdentity()) return false;
  // /proc of another PID namespace (unshare without --mount-proc) proves nothing here.
  if (currentProcessIdentity().startTicks === undefined) return false;
  if (!processExists(owner.pid)) return true;
  if (owner.start === undefined) return false;
  const now = processStartTicks(owner.pid);
  // The pid exists: it is the owner unless it provably started at another time (pid reused).
  return now !== undefined && Number(now) !== owner.start;
}
