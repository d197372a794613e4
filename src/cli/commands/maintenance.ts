/** Repository upkeep: `cairn verify`, `prune`, `repair`, `unlock` and `stats`. */
import path from 'node:path';
import type { Command } from 'commander';
import { isBackupId } from '../../core/ids.js';
import { ArchiveStorage, isArchiveFile, scanArchive } from '../../storage/archive/reader.js';
import { databaseKey } from '../../jobs/database-key.js';
import { definitionProblems } from '../../sources/index.js';
import { formatBytes, plural, table } from '../format.js';
import { openLockingRepository, openRepository, parseGrace, printJson, repoCommand, retryLockOption, type CliContext, type CommonOptions, type RetryLockFlags } from '../options.js';

export function registerMaintenanceCommands(program: Command, { io, signal }: CliContext): void {
  repoCommand(program, 'verify [id]', 'check that backups can be restored (all backups when no id is given; `cairn verify FILE.cairn` checks an archive)', ['--read-data', 'download every pack and check every chunk (slow, thorough)']).addOption(retryLockOption()).action(async (id: string | undefined, opts: CommonOptions & RetryLockFlags & { readData?: boolean }) => {
    // `cairn verify FILE.cairn`: no backup id holds a "." or "/", so a file in its place is the archive to check.
    if (id !== undefined && !isBackupId(id) && (isArchiveFile(id) || /[./\\]/.test(id))) {
      // What import says of the same file: missing (exit 3), a folder (exit 2), not an archive (exit 6).
      if (!isArchiveFile(id)) await scanArchive(path.resolve(id));
      [opts, id] = [{ ...opts, repo: id }, undefined];
    }
    const repository = await openLockingRepository(opts.repo, opts, { io, signal });
    // An archive is checked whole first: every byte against the checksum in its end member.
    if (repository.rawStorage instanceof ArchiveStorage) await repository.rawStorage.verifyChecksum(signal);
    const all = id
      ? await repository.readManifestChecked(id, signal).then((r) => ({ manifests: [r.manifest], damaged: [], unchecksummed: r.checksummed ? [] : [id] }))
      : await repository.readAllManifests(signal);
    const { verifyBackupsLocked, verifyFailure } = await import('../../repo/verify.js');
    const report = await verifyBackupsLocked(repository, all.manifests, { readData: Boolean(opts.readData), signal });
    // A manifest that cannot be read is a backup that cannot be restored: it is a problem too.
    for (const d of all.damaged) report.problems.unshift({ object: `backups/${d.id}`, message: d.message, affects: [d.id] });
    // And one a restore would refuse (an edited definition under a recomputed checksum).
    report.problems.unshift(...definitionProblems(all.manifests));
    // Manifests written before checksums (format-1 repositories): readable, but an edit would go unnoticed.
    if (all.unchecksummed.length > 0 && !opts.json) {
      io.err(`cairn: warning: ${all.unchecksummed.length} manifest(s) carry no checksum (written before repository format 2), so an edit to them cannot be detected: ${all.unchecksummed.slice(0, 10).join(', ')}${all.unchecksummed.length > 10 ? ', …' : ''}.`);
    }
    if (opts.json) printJson(io, { ok: report.problems.length === 0, ...report, unchecksummed: all.unchecksummed });
    if (report.problems.length > 0) throw verifyFailure(report);
    if (!opts.json) {
      io.out(
        `Verified ${report.backups.length} backup(s): ${report.chunks} chunks in ${report.packs} packs` +
          (opts.readData ? `, ${formatBytes(report.bytesRead)} read and checked.` : ' present (add --read-data to check their content).'),
      );
    }
  });

  repoCommand(program, 'prune', 'remove data that no backup references (refuses, deleting nothing, while the repository is inconsistent)', ['--dry-run', 'report what would be removed, remove nothing'], ['--grace <duration>', 'delete or repack unreferenced packs only once they are this old on the storage clock: a running backup may still need them (30m, 1h, 1d; 0 = at once)', '1h']).addOption(retryLockOption()).action(async (opts: CommonOptions & RetryLockFlags & { dryRun?: boolean; grace: string }) => {
    const unindexedGraceMs = parseGrace(opts.grace);
    const repository = await openLockingRepository(opts.repo, opts, { io, signal });
    const { prune } = await import('../../repo/prune.js');
    const report = await prune(repository, { dryRun: Boolean(opts.dryRun), unindexedGraceMs, signal });
    if (opts.json) return printJson(io, report);
    for (const key of report.foreignObjects) io.err(`cairn: warning: ${key} is not a pack; prune left it alone.`);
    io.out(
      `${report.dryRun ? 'Would remove' : 'Removed'} ${report.packsDeleted} of ${report.packsTotal} packs` +
        (report.packsRepacked ? `, ${report.dryRun ? 'would repack' : 'repacked'} ${report.packsRepacked}` : '') +
        `, ${report.dryRun ? 'freeing about' : 'freed'} ${formatBytes(report.bytesFreed)}` +
        (report.packsKeptYoung ? `; kept ${plural(report.packsKeptYoung, 'unreferenced pack')} younger than --grace ${opts.grace}` : '') +
        (report.staleLocksRemoved ? `; removed ${report.staleLocksRemoved} stale lock(s)` : '') +
        '.',
    );
  });

  repoCommand(program, 'repair', 'rebuild the index from the packs present, salvage intact blobs of damaged packs, and record which backups lost what', ['--dry-run', 'report what would change, change nothing']).addOption(retryLockOption()).action(async (opts: CommonOptions & RetryLockFlags & { dryRun?: boolean }) => {
    const repository = await openLockingRepository(opts.repo, opts, { io, signal });
    const { repair } = await import('../../repo/repair.js');
    const report = await repair(repository, { dryRun: Boolean(opts.dryRun), signal });
    if (opts.json) return printJson(io, report);
    const would = report.dryRun ? 'would ' : '';
    io.out(
      `Read ${plural(report.packsRead, 'pack')}: ${report.packsIntact} intact, ${report.packsDamaged.length} damaged` +
        (report.packsDamaged.length ? ` (${report.blobsSalvaged} blob(s) ${would}saved, ${report.blobsLost} lost)` : '') +
        `; ${report.dryRun ? 'would write' : 'wrote'} one index document in place of ${plural(report.indexesReplaced, 'old one')}` +
        (report.indexesDamaged.length ? ` (${report.indexesDamaged.length} damaged)` : '') +
        '.',
    );
    for (const id of report.manifestsQuarantined) io.out(`Backup ${id}: its manifest is unreadable; ${would}moved to quarantine/backups/.`);
    for (const key of report.foreignLeftAlone) io.err(`cairn: warning: ${key} is not a cairn object; repair left it alone: move it out of the repository (prune refuses while it is there).`);
    for (const b of report.backupsDamaged) {
      io.out(`Backup ${b.id} lost data in ${b.collections.map((c) => `${c.name} (${plural(c.missingChunks, 'chunk')})`).join(', ')}; the other collections restore. The next backup of the same data uploads what is missing again.`);
    }
    for (const id of report.backupsHealed) io.out(`Backup ${id} is whole again: a later backup uploaded its missing chunks.`);
    if (report.backupsDamaged.length === 0 && report.manifestsQuarantined.length === 0) io.out('Every backup is complete.');
  });

  repoCommand(program, 'unlock', 'remove stale repository locks (of processes that died); --remove-all removes every lock', ['--remove-all', 'remove every lock, also of running processes: only when you are sure no cairn uses the repository']).action(async (opts: CommonOptions & { removeAll?: boolean }) => {
    const repository = await openRepository(opts.repo);
    const { listLocks, removeLocks } = await import('../../repo/lock.js');
    const removed = await removeLocks(repository.storage, { all: Boolean(opts.removeAll), signal });
    const left = await listLocks(repository.storage, signal);
    if (opts.json) return printJson(io, { removed, remaining: left.map((l) => ({ key: l.key, ...l.doc, problem: l.problem })) });
    io.out(`Removed ${plural(removed.length, 'lock')}${removed.length ? `: ${removed.join(', ')}` : ''}.`);
    for (const l of left) {
      io.out(
        l.doc
          ? `Still held: ${l.key}, "${l.doc.operation}" (${l.doc.exclusive ? 'exclusive' : 'shared'}, pid ${l.doc.pid} on ${l.doc.hostname}, since ${l.doc.createdAt}).`
          : `Still there: ${l.key}, unreadable (${l.problem ?? 'damaged'}); it expires by age, or --remove-all removes it.`,
      );
    }
  });

  repoCommand(program, 'stats', 'what a repository stores: pack bytes, logical bytes, dedup and compression ratios, and per source database (one row whatever URL or path reached it) its backups and the bytes only it uses').action(async (opts: CommonOptions) => {
    const repository = await openRepository(opts.repo);
    const { repositoryStats } = await import('../../repo/stats.js');
    const s = await repositoryStats(repository, { signal, sourceKey: databaseKey });
    if (opts.json) return printJson(io, s);
    const times = (r: number | null): string => (r === null ? '-' : `${r.toFixed(2)}x`);
    io.out(
      [
        `Repository ${s.repository}: ${plural(s.backups, 'backup')} in ${plural(s.packs, 'pack')}`,
        `  stored        ${formatBytes(s.storedBytes)} (packs)`,
        `  logical       ${formatBytes(s.logicalBytes)} (all backups, uncompressed)`,
        `  distinct      ${formatBytes(s.uniqueRawBytes)} in ${plural(s.uniqueChunks, 'chunk')}, ${formatBytes(s.uniqueStoredBytes)} compressed`,
        `  dedup         ${times(s.dedupRatio)} (logical / distinct)`,
        `  compression   ${times(s.compressionRatio)} (distinct / compressed)`,
      ].join('\n'),
    );
    if (s.sources.length > 0) {
      io.out(table(['SOURCE', 'KIND', 'BACKUPS', 'NEWEST', 'LOGICAL', 'ONLY ITS OWN'], s.sources.map((x) => [x.location, x.kind, String(x.backups), x.newest, formatBytes(x.logicalBytes), formatBytes(x.uniqueStoredBytes)])));
      io.out('ONLY ITS OWN: stored bytes of the chunks no other source uses (at most what deleting all its backups and pruning frees).');
      for (const x of s.sources.filter((x) => x.locations.length > 1)) io.out(`${x.location} also backed up as: ${x.locations.slice(1).join(', ')}`);
    }
    if (s.unindexedChunks > 0) io.err(`cairn: warning: ${plural(s.unindexedChunks, 'referenced chunk')} missing from the index, left out of the numbers; run cairn verify.`);
    for (const d of s.damaged) io.err(`cairn: warning: backup ${d.id} cannot be read, left out of the numbers: ${d.message}`);
  });
}
