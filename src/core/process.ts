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
