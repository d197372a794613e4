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
import fs from 'node:fs';
import os from 'node:os';
import { processExists } from '../core/process.js';

export interface Owner {
  host: string;
  pid: number;
  /** Start time in clock ticks since boot, or undefined when unknown. */
  start: number | undefined;
}

export const OWNER_TOKEN_PATTERN = '[0-9a-f]{10}-[0-9]+-(?:[0-9]+|x)';

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

let hostPart: string | undefined;

/** This process's host part (see the module comment). */
export function hostIdentity(): string {
  if (hostPart === undefined) {
    let pidNamespace = '';
    try {
      pidNamespace = fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      /* not Linux */
    }
    const parts = [os.hostname(), readText('/proc/sys/kernel/random/boot_id'), pidNamespace];
    hostPart = createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 10);
  }
  return hostPart;
}

/** Start time of a process in clock ticks since boot, or undefined (not Linux, or no such process). */
export function processStartTicks(pid: number): number | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[19]);
  return stat && Number.isSafeInteger(start) ? start : undefined;
}

let ownToken: string | undefined;

/** This process's token, `<host>-<pid>-<start>`. */
export function ownerToken(): string {
  ownToken ??= `${hostIdentity()}-${process.pid}-${processStartTicks(process.pid) ?? 'x'}`;
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
  if (!processExists(owner.pid)) return true;
  if (owner.start === undefined) return false;
  const now = processStartTicks(owner.pid);
  // The pid exists: it is the owner unless it provably started at another time (pid reused).
  return now !== undefined && now !== owner.start;
}
