import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Whether a process of this host still exists: decides if a lock or a staging object left by
 * that pid is abandoned. EPERM means it exists under another user. Anything that is not a
 * plausible pid counts as existing, so nothing is ever cleaned up on a guess.
 */
export function processExists(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * What tells one process apart from every other, now and later, on Linux: the pid is only unique
 * among live processes of one PID namespace, so it is qualified by the namespace (a container
 * with its own PID namespace reuses small pids), the boot (pids restart after a reboot) and the
 * process's start time (a pid reused by a later process starts later). Fields this system cannot
 * tell (no /proc: macOS, Windows) are undefined, and then nothing is ever judged dead from them.
 */
export interface ProcessIdentity {
  hostname: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks from boot to the process start, as a decimal string. */
  startTicks?: string;
  /** /proc/sys/kernel/random/boot_id: changes on every boot. */
  bootId?: string;
  /** readlink /proc/self/ns/pid, e.g. "pid:[4026531836]". */
  pidNamespace?: string;
}

let own: ProcessIdentity | undefined;

/** This process's identity (read once: none of it changes while the process lives). */
export function currentProcessIdentity(): ProcessIdentity {
  // /proc shows the pids of the PID namespace it was mounted for. In a namespace entered without
  // remounting /proc (`unshare --pid --fork`), /proc/<pid> names some other process: then no
  // start time is recorded or compared, and nothing is ever proven dead from here.
  const procIsOurs = procStatPid('/proc/self/stat') === process.pid;
  own ??= {
    hostname: hostname(),
    pid: process.pid,
    startTicks: procIsOurs ? processStartTicks(process.pid) : undefined,
    bootId: readText('/proc/sys/kernel/random/boot_id'),
    pidNamespace: readLink('/proc/self/ns/pid'),
  };
  return own;
}

/**
 * Field 22 (starttime) of /proc/<pid>/stat, or undefined when the process does not exist or /proc
 * is not there. The command name (field 2) is in parentheses and may hold spaces or ")", so the
 * fields are counted from the last ")".
 */
export function processStartTicks(pid: number): string | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const ticks = fields[19];
  return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : undefined;
}

/**
 * Whether the process `holder` names is proven gone, as seen from this process: only when both
 * run on the same host, in the same boot and in the same PID namespace (so its pid means the same
 * process here), and that pid is free or now belongs to a process with another start time.
 * Anything not known on either side means "not proven": false.
 */
export function processProvenGone(holder: Partial<ProcessIdentity>, self: ProcessIdentity = currentProcessIdentity()): boolean {
  if (holder.hostname !== self.hostname) return false;
  // No start time of our own: /proc is missing or belongs to another PID namespace.
  if (!self.startTicks) return false;
  if (!holder.bootId || !self.bootId || holder.bootId !== self.bootId) return false;
  if (!holder.pidNamespace || !self.pidNamespace || holder.pidNamespace !== self.pidNamespace) return false;
  if (!holder.startTicks || holder.pid === undefined || !Number.isSafeInteger(holder.pid) || holder.pid <= 0) return false;
  if (holder.pid === self.pid) return holder.startTicks !== self.startTicks;
  if (!processExists(holder.pid)) return true;
  const now = processStartTicks(holder.pid);
  // Exists, but /proc does not tell its start (it ended between the two looks, or /proc is
  // hidden): not proven.
  return now !== undefined && now !== holder.startTicks;
}

/** Field 1 (pid) of a /proc/…/stat file. */
function procStatPid(path: string): number | undefined {
  const stat = readText(path);
  const pid = stat === undefined ? Number.NaN : Number(stat.slice(0, stat.indexOf(' ')));
  return Number.isSafeInteger(pid) ? pid : undefined;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path) || undefined;
  } catch {
    return undefined;
  }
}
