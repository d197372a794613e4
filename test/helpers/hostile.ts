/**
 * Hostile repositories for the restore security tests: a real backup written to a file-system
 * repository, whose manifest is then edited on disk as an attacker who can write the
 * repository would. Every test that edits a manifest goes through editManifest, which recomputes
 * the manifest's checksum as such an attacker can; when repositories gain authentication (a key
 * the attacker lacks), these tests keep showing the second line of defence, the restore's own checks.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BackupManifestSchema, type BackupManifest, type CollectionEntry } from '../../src/core/schemas.js';
import { decodeMetadata, encodeManifest } from '../../src/repo/metadata.js';
import { manifestKey, Repository } from '../../src/repo/repository.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import type { ConflictPolicy } from '../../src/sources/types.js';

/** A repository in `dir` holding one backup of `sourceUrl`; returns the repository and the backup id. */
export async function backupInto(dir: string, sourceUrl: string): Promise<{ repo: Repository; id: string; root: string }> {
  const root = path.join(dir, 'repo');
  const repo = await Repository.init(new FileSystemStorage(root));
  const manifest = await runBackup({ repo, source: openSource(sourceUrl), jobs: 1, compressionWorkers: 0 });
  return { repo, id: manifest.id, root };
}

/**
 * Rewrites the manifest of backup `id` in the file-system repository at `root` with `edit`
 * (which changes the parsed JSON in place), encoded as the repository writes manifests.
 */
export function editManifest(root: string, id: string, edit: (manifest: BackupManifest) => void): void {
  const file = path.join(root, ...manifestKey(id).split('/'));
  const manifest = decodeMetadata(fs.readFileSync(file), BackupManifestSchema, 'manifest') as BackupManifest;
  edit(manifest);
  fs.chmodSync(file, 0o600);
  // With a fresh checksum, as an attacker who can write the repository can compute one (no key
  // protects it until repositories are encrypted): what stops these edits is the restore's own
  // checks. Edits that keep the old checksum are caught earlier (test/security/repo-hostile).
  fs.writeFileSync(file, encodeManifest(manifest));
}

/** The collection named `name` of a manifest (throws when missing, so a test cannot edit nothing). */
export function collection(manifest: BackupManifest, name: string): CollectionEntry {
  const found = manifest.collections.find((c) => c.name === name);
  if (found === undefined) throw new Error(`no collection ${name} in the manifest`);
  return found;
}

/** Restores backup `id` into `targetUrl`; resolves to the error thrown, or undefined on success. */
export async function restoreError(repo: Repository, id: string, targetUrl: string, onConflict: ConflictPolicy = 'fail'): Promise<unknown> {
  try {
    await runRestore({ repo, backupId: id, target: openTarget(targetUrl), onConflict, jobs: 1 });
    return undefined;
  } catch (err) {
    return err;
  }
}

/** Every file under `dir` (recursively), relative paths, sorted: to show a restore created nothing. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}
