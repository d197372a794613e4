/** /v1/drills: restore drills (src/jobs/drill.ts), their targets shown as locations only. */
import { CairnError } from '../../core/errors.js';
import { buildDrillSpec, DrillScheduler, startDrillJob, type DrillEnvironment, type DrillState } from '../../jobs/drill.js';
import type { SqliteDrillStore } from '../../catalog/drills.js';
import { openScratch, openSource, openTarget } from '../../sources/index.js';
import { isName } from '../access.js';
import { quote } from '../redact.js';
import { publicJob, type RouteKit } from './kit.js';

/** A drill name from a path. */
function drillName(value: string): string {
  if (!isName(value)) throw new CairnError('NOT_FOUND', `No drill named ${quote(value)}: drill names are lowercase letters, digits, - and _ (GET /v1/drills lists them).`);
  return value;
}

/**
 * How the server resolves a drill's names: sources from its registry (trusted: an admin wrote
 * them, as the drill's target URL), repositories as the scheduler opens them, every URL checked
 * against the data folder and the job catalog.
 */
export function serverDrillEnvironment(kit: Pick<RouteKit, 'registry' | 'access'>): DrillEnvironment {
  return {
    sourceUrl: (name) => kit.registry.url('source', name),
    sourceLocations: () => kit.registry.list('source').map((r) => r.location),
    checkTargetUrl: (url) => kit.access.checkDatabaseUrl(url, 'That drill target'),
    openRepository: (value) => kit.access.repository(value, 'server'),
    openSource: (url) => openSource(url),
    openTarget: (url) => openTarget(url),
    openScratch: (url) => openScratch(url),
  };
}

export function drillRoutes(kit: RouteKit): void {
  const { on } = kit;
  const drills = (): NonNullable<RouteKit['drills']> => {
    if (!kit.drills) throw new CairnError('NOT_FOUND', 'This server keeps no restore drills (started without a drill store).');
    return kit.drills;
  };
  const store = (): SqliteDrillStore => drills().store;
  const shown = (d: DrillState) => ({ ...d, nextRun: DrillScheduler.next(d, new Date())?.toISOString() ?? null });

  // A scoped token sees and runs the drills of its sources and repositories only.
  on('listDrills', (c) => {
    const scope = kit.scope(c);
    return c.json({ drills: store().list().filter((d) => scope.drill(d)).map(shown) });
  });
  on('createDrill', async (c, { body }) => {
    c.set('inputs', [body.target]); // an error may quote the URL: redacted
    store().refuseTaken(body.name);
    const env = serverDrillEnvironment(kit);
    const { spec, targetUrl } = await buildDrillSpec(body, env, new Date());
    await env.openRepository(spec.repository); // 404 / 502 now rather than at the first run
    return c.json({ drill: shown(store().add(spec, targetUrl)) }, 201);
  });
  on('getDrill', (c) => {
    const name = drillName(c.req.param('name') ?? '');
    const d = store().get(name);
    kit.scope(c).checkDrill(d);
    return c.json({ drill: shown(d), runs: store().runs(name, 20) });
  });
  on('runDrill', async (c) => {
    const name = drillName(c.req.param('name') ?? '');
    kit.scope(c).checkDrill(store().get(name));
    const job = await startDrillJob(drills().launcher, name, 'manual');
    kit.started('drill');
    return c.json({ job: publicJob(job) }, 202);
  });
  on('removeDrill', (c) => {
    const name = drillName(c.req.param('name') ?? '');
    store().remove(name);
    return c.json({ removed: name });
  });
}
