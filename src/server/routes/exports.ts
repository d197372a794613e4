/**
 * Archives through the API: POST /v1/exports (a job writing a .cairn archive into the data
 * folder's exports/), GET /v1/exports/{jobId}/file (that archive, streamed), POST /v1/imports
 * (the request body is an archive: streamed to the data folder's imports/, its structure checked,
 * then an import job that removes the upload when it ends). Roles as for copies: operator.
 */
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ConflictError, NotFoundError, UsageError } from '../../core/errors.js';
import { randomId, validateBackupId } from '../../core/ids.js';
import { runExport } from '../../jobs/export.js';
import { runImport } from '../../jobs/import.js';
import { Repository } from '../../repo/repository.js';
import { scanArchive } from '../../storage/archive/reader.js';
import { jobId, publicJob, type RouteKit } from './kit.js';

/** What an export job's result names its archive by (a file in exports/). */
const EXPORT_FILE = /^[0-9a-f]{32}\.cairn$/;

/** `dataDir/<name>`, made 0700 when missing. */
function folder(dataDir: string, name: 'exports' | 'imports'): string {
  const dir = path.join(dataDir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Ends a write stream and waits until the file is closed. */
function close(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    out.once('close', resolve);
    out.end((err?: Error | null) => (err ? reject(err) : undefined));
  });
}

export function archiveRoutes({ on, center, openRepo, started, dataDir, scope }: RouteKit): void {
  on('createExport', async (c, { body: req }) => {
    const repo = await openRepo(c, req.repository);
    const ids = req.all ? await repo.listBackupIds() : (req.backups ?? []).map((id) => validateBackupId(id));
    if (ids.length === 0) throw new UsageError(`${repo.location} holds no backups to export.`);
    // 404 before a job exists.
    for (const id of ids) if (!(await repo.hasBackup(id))) throw new NotFoundError(`Backup "${id}" not found in ${repo.location}.`);
    // A token scoped to sources exports only their backups (403 naming one that is not).
    if (scope(c).limited) for (const id of ids) scope(c).checkBackup(id, (await repo.readManifest(id)).source.location);
    const compression = req.compression ? { algorithm: req.compression, level: req.level ?? ('default' as const) } : undefined;
    const dir = folder(dataDir, 'exports');
    const file = `${randomId(16)}.cairn`;
    const job = await center.start({
      kind: 'export',
      params: { repository: repo.location, backups: ids, ...(compression ? { compression: compression.algorithm, level: compression.level } : {}) },
      run: async (ctx) => {
        // Written under a temporary name: GET …/file never serves a partial archive.
        const temp = path.join(dir, `.${file}.part`);
        const out = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
        try {
          const result = await runExport({
            repo,
            backupIds: ids,
            output: out,
            ...(compression ? { compression } : {}),
            signal: ctx.signal,
            onProgress: (p) => ctx.progress({ phase: p.phase === 'done' ? 'done' : 'transferring', collectionsDone: p.packsDone, collectionsTotal: p.packsTotal, rows: 0, bytes: p.bytesRead, bytesTotal: p.bytesTotal }),
          });
          await close(out);
          await rename(temp, path.join(dir, file));
          return { ...result, file };
        } catch (err) {
          out.destroy();
          await rm(temp, { force: true });
          throw err;
        }
      },
    });
    started('export');
    return c.json({ job: publicJob(job) }, 202);
  });

  on('exportFile', async (c) => {
    const id = jobId(c.req.param('id') ?? '');
    const job = await center.get(id);
    scope(c).checkJob(job);
    if (job.kind !== 'export') throw new NotFoundError(`Job ${id} is a ${job.kind} job, not an export: only POST /v1/exports jobs have a file.`);
    if (job.state !== 'SUCCESS') throw new ConflictError(`Export job ${id} is ${job.state}: its archive can be downloaded once it ends SUCCESS (GET /v1/jobs/${id}).`);
    const file = job.result?.file;
    if (typeof file !== 'string' || !EXPORT_FILE.test(file)) throw new NotFoundError(`Export job ${id} names no archive file.`);
    const full = path.join(dataDir, 'exports', file);
    const size = await stat(full).then(
      (s) => s.size,
      () => {
        throw new NotFoundError(`The archive of export job ${id} is no longer in the server's data folder: export again.`);
      },
    );
    const backups = Array.isArray(job.result?.backups) ? (job.result.backups as string[]) : [];
    const name = backups.length === 1 ? `${backups[0]}.cairn` : `${id}.cairn`;
    return new Response(Readable.toWeb(createReadStream(full)) as unknown as ReadableStream, {
      status: 200,
      headers: { 'content-type': 'application/x-tar', 'content-length': String(size), 'content-disposition': `attachment; filename="${name}"` },
    });
  });

  on('createImport', async (c, { query }) => {
    const to = await openRepo(c, query.repository);
    to.requireWritable('import into it');
    const asId = query.as !== undefined ? validateBackupId(query.as) : undefined;
    const body = c.req.raw.body;
    if (!body) throw new UsageError('Send the .cairn archive as the request body (Content-Type: application/octet-stream).');
    const file = path.join(folder(dataDir, 'imports'), `${randomId(16)}.cairn`);
    let handedOver = false;
    try {
      await pipeline(Readable.fromWeb(body as WebReadableStream<Uint8Array>), createWriteStream(file, { flags: 'wx', mode: 0o600 }));
      // The structure now (422 for a damaged or hostile archive, before a job exists); its checksum in the job.
      const { head } = await scanArchive(file);
      if (asId !== undefined && head.backups.length !== 1) {
        throw new UsageError(`as renames the one backup of an archive; this one holds ${head.backups.length} (${head.backups.join(', ')}).`);
      }
      for (const id of head.backups) {
        const target = asId ?? id;
        if (await to.hasBackup(target)) {
          throw new ConflictError(
            `A backup with id "${target}" already exists in ${to.location}. Nothing was imported. ${head.backups.length === 1 ? 'Import it under another id with as=<new id>, or delete the existing one first.' : 'Delete the existing one first.'}`,
          );
        }
      }
      const job = await center.start({
        kind: 'import',
        params: { repository: to.location, backups: head.backups, ...(asId !== undefined ? { as: asId } : {}) },
        run: async (ctx) => {
          try {
            const result = await runImport({
              file,
              to,
              // The server holds no archive's password: an encrypted archive opens only with the
              // keys of the repository it was exported from (the same id), when that is the target.
              openArchive: (s) =>
                Repository.openWithKeysOf(
                  s,
                  to,
                  `The archive is encrypted with the keys of another repository, whose password the server does not hold. Import it with the CLI (cairn import FILE --repo ${to.location}, giving the archive's password with CAIRN_FROM_PASSWORD, CAIRN_FROM_PASSWORD_FILE or --from-password-command), or into the repository it was exported from.`,
                ),
              ...(asId !== undefined ? { asId } : {}),
              signal: ctx.signal,
              onProgress: (p) => ctx.progress({ phase: p.phase === 'checking' ? 'starting' : p.phase, collectionsDone: p.backupsDone, collectionsTotal: p.backupsTotal, rows: 0, bytes: p.bytesCopied, bytesTotal: p.bytesTotal }),
            });
            // The upload's temporary name means nothing to the client.
            const { file: _upload, ...shown } = result;
            return shown;
          } finally {
            await rm(file, { force: true });
          }
        },
      });
      handedOver = true;
      started('import');
      return c.json({ job: publicJob(job) }, 202);
    } finally {
      if (!handedOver) await rm(file, { force: true });
    }
  });
}
