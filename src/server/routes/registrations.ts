/**
 * /v1/sources and /v1/repositories: names registered on the server. Their URLs (which may hold
 * passwords) stay in the catalog; answers carry names and locations only.
 */
import path from 'node:path';
import { CairnError, SourceError, UsageError } from '../../core/errors.js';
import { readPasswordSource, type PasswordSource } from '../../core/password-source.js';
import { validateName, type RegistrationKind } from '../../catalog/registry.js';
import { deleteScheduledBackupsOf, enabledSchedulesUsing, sourceInUse } from '../../jobs/scheduled-backup.js';
import { Repository } from '../../repo/repository.js';
import { openSource } from '../../sources/index.js';
import type { SourceCheckReport } from '../../sources/types.js';
import { openStorage } from '../../storage/index.js';
import { isName } from '../access.js';
import { answerMessage, quote } from '../redact.js';
import { registeredName, type RouteKit } from './kit.js';
import { parseRpo } from '../../jobs/health.js';

const ROUTE_IDS = {
  source: { plural: 'sources', register: 'registerSource', list: 'listSources', remove: 'removeSource' },
  repository: { plural: 'repositories', register: 'registerRepository', list: 'listRepositories', remove: 'removeRepository' },
} as const;

export function registrationRoutes(kit: RouteKit): void {
  const { on, registry, access, schedules, serverRepo } = kit;
  sourceCheckRoute(kit);
  for (const kind of ['source', 'repository'] as RegistrationKind[]) {
    const ids = ROUTE_IDS[kind];
    on(ids.register, async (c, { body: req }) => {
      let location: string;
      let passwordSource: PasswordSource | undefined;
      if (kind === 'source') {
        location = openSource(req.url).location;
        access.checkDatabaseUrl(req.url, 'That source');
      } else {
        validateName(kind, req.name); // before any I/O: "default" is the BACKUP_* repository
        const { passwordFile, passwordCommand } = req as { passwordFile?: string; passwordCommand?: string };
        if (passwordFile !== undefined && !path.isAbsolute(passwordFile)) throw new UsageError(`passwordFile must be an absolute path on the server, not ${quote(passwordFile)}.`);
        passwordSource = passwordFile !== undefined ? { file: passwordFile } : passwordCommand !== undefined ? { command: passwordCommand } : undefined;
        const resolved = isName(req.url) ? await access.resolveConfigName(req.url) : req.url;
        const storage = openStorage(resolved);
        access.checkStorage(storage);
        // It must exist (`cairn repo init` first) and, encrypted, open with the source given: a
        // wrong password is a KEY error now rather than at every later request.
        const repo = await Repository.open(storage, { password: () => registrationPassword(passwordSource, storage.location) });
        if (passwordSource !== undefined && !repo.encrypted) {
          throw new UsageError(`The repository ${repo.location} is not encrypted: register it without passwordFile or passwordCommand.`);
        }
        location = repo.location;
        req.url = resolved;
      }
      const rpo = kind === 'source' ? (req as { rpo?: string }).rpo : undefined;
      const rpoSeconds = rpo === undefined ? null : parseRpo(rpo);
      return c.json({ [kind]: registry.add(kind, req.name, req.url, location, passwordSource, rpoSeconds ?? undefined) }, 201);
    });
    // A scoped token sees the names of its scope only.
    on(ids.list, (c) => {
      const scope = kit.scope(c);
      return c.json({ [ids.plural]: registry.list(kind).filter((r) => (kind === 'source' ? scope.sourceName(r.name) : scope.repositoryName(r.name))) });
    });
    on(ids.remove, async (c, { query }) => {
      const name = registeredName(c.req.param('name') ?? '', kind);
      // Checked by the route table for sources; given for a repository, a mistake to refuse, not to ignore.
      if (kind === 'repository' && c.req.query('deleteScheduledBackups') !== undefined) throw new UsageError('deleteScheduledBackups applies to sources only.');
      const flag = kind === 'source' && (query as { deleteScheduledBackups?: string }).deleteScheduledBackups === 'true';
      const force = query.force === 'true';
      const url = registry.url(kind, name);
      if (url === undefined) throw new CairnError('NOT_FOUND', `No ${kind} named ${quote(name)} is registered.`);
      // Enabled schedules naming it would fail at every run: refused, or disabled with force=true.
      const using = enabledSchedulesUsing(schedules.list(), name, kind);
      if (using.length > 0 && !force) throw sourceInUse(name, using, 'force=true', kind);
      // Scheduled backups of this source can go with it, on request; manual backups always stay.
      const deleted = flag ? await deleteScheduledBackupsOf(name, openSource(url).location, schedules.list(), serverRepo) : [];
      for (const s of using) schedules.setEnabled(s, false);
      registry.remove(kind, name);
      return c.json({
        removed: name,
        ...(kind === 'source' ? { deletedScheduledBackups: deleted } : {}),
        disabledSchedules: using,
        note: kind === 'repository' ? 'the repository and its backups are untouched' : deleted.length ? 'manual backups are kept; prune reclaims the space' : 'its backups are kept',
      });
    });
  }
}

/** How long a connection test may take before it answers ok: false. */
const CHECK_TIMEOUT_MS = 20_000;

/** POST /v1/sources/{name}/check: DatabaseSource.check, its failure an answer (code, message), never a secret. */
function sourceCheckRoute({ on, registry, scope }: RouteKit): void {
  on('checkSource', async (c) => {
    const name = registeredName(c.req.param('name') ?? '', 'source');
    scope(c).checkSource(name);
    const url = registry.url('source', name);
    if (url === undefined) throw new CairnError('NOT_FOUND', `No source named ${quote(name)} is registered: list them with GET /v1/sources.`);
    const started = performance.now();
    const source = openSource(url);
    const base = { name, kind: source.kind, location: source.location };
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SourceError(`${source.location} did not answer within ${CHECK_TIMEOUT_MS / 1000} s. Check the host, port and firewall.`)), CHECK_TIMEOUT_MS);
      });
      const report: SourceCheckReport = await Promise.race([source.check?.() ?? Promise.resolve({}), timeout]);
      const ok = (report.tools ?? []).every((t) => t.ok);
      return c.json({ ...base, ok, ...report, durationMs: Math.round(performance.now() - started) });
    } catch (err) {
      const code = err instanceof CairnError ? err.code : 'SOURCE';
      const message = answerMessage(err instanceof Error ? err.message : String(err), [url]);
      return c.json({ ...base, ok: false, error: { code, message }, durationMs: Math.round(performance.now() - started) });
    } finally {
      clearTimeout(timer);
    }
  });
}

/**
 * The password a registration checks the repository with: read from the source the request
 * gives (by the server, without a terminal); none given for an encrypted repository is a
 * UsageError saying how to register it. Never echoed: errors name the field, not the value.
 */
async function registrationPassword(source: PasswordSource | undefined, location: string): Promise<string> {
  if (source === undefined) {
    throw new UsageError(`The repository ${location} is encrypted: register it with the source of its password, passwordFile (a file on the server whose first line is the password) or passwordCommand (run with sh -c on the server; its first line).`);
  }
  return readPasswordSource(source, 'file' in source ? 'passwordFile' : 'passwordCommand', { interactive: false });
}
