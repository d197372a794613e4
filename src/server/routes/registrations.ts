/**
 * /v1/sources and /v1/repositories: names registered on the server. Their URLs (which may hold
 * passwords) stay in the catalog; answers carry names and locations only.
 */
import { CairnError, UsageError } from '../../core/errors.js';
import { validateName, type RegistrationKind } from '../../catalog/registry.js';
import { deleteScheduledBackupsOf, enabledSchedulesUsing, sourceInUse } from '../../jobs/scheduled-backup.js';
import { Repository } from '../../repo/repository.js';
import { openSource } from '../../sources/index.js';
import { openStorage } from '../../storage/index.js';
import { isName } from '../access.js';
import { quote } from '../redact.js';
import { registeredName, type RouteKit } from './kit.js';

const ROUTE_IDS = {
  source: { plural: 'sources', register: 'registerSource', list: 'listSources', remove: 'removeSource' },
  repository: { plural: 'repositories', register: 'registerRepository', list: 'listRepositories', remove: 'removeRepository' },
} as const;

export function registrationRoutes({ on, registry, access, schedules, serverRepo }: RouteKit): void {
  for (const kind of ['source', 'repository'] as RegistrationKind[]) {
    const ids = ROUTE_IDS[kind];
    on(ids.register, async (c, { body: req }) => {
      let location: string;
      if (kind === 'source') {
        location = openSource(req.url).location;
        access.checkDatabaseUrl(req.url, 'That source');
      } else {
        validateName(kind, req.name); // before any I/O: "default" is the BACKUP_* repository
        const resolved = isName(req.url) ? await access.resolveConfigName(req.url) : req.url;
        const storage = openStorage(resolved);
        access.checkStorage(storage);
        location = (await Repository.open(storage)).location; // it must exist: `cairn repo init` first
        req.url = resolved;
      }
      return c.json({ [kind]: registry.add(kind, req.name, req.url, location) }, 201);
    });
    on(ids.list, (c) => c.json({ [ids.plural]: registry.list(kind) }));
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
