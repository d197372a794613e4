/** /v1/schedules: scheduled backups, shown without secrets (public.ts), with their next run. */
import type { ScheduleSpec } from '../../catalog/schedules.js';
import { cronPreview, describeCron, nextRuns } from '../../jobs/cron-preview.js';
import { previewRetention, rulesGiven } from '../../jobs/retention-preview.js';
import { madeBySchedule } from '../../jobs/scheduled-backup.js';
import { cronOf } from '../../jobs/scheduler.js';
import { quote } from '../redact.js';
import { applyScheduleChanges, buildScheduleSpec, scheduleEdit } from '../../jobs/schedule-spec.js';
import { openSource } from '../../sources/index.js';
import { DEFAULT_REPOSITORY, type DatabaseRef } from '../access.js';
import { publicRuns, publicSchedule } from '../public.js';
import type { Context } from 'hono';
import { publicJob, scheduleName, type Env, type RouteKit } from './kit.js';

export function scheduleRoutes({ on, center, schedules, scheduler, openRepo, sourceUrl, access, serverRepo, scope }: RouteKit): void {
  /** The schedule a path names, 403 when its source or repositories are outside the token's scope. */
  const scoped = (c: Context<Env>, name: string): ScheduleSpec => {
    const s = schedules.get(name);
    scope(c).checkSchedule(s);
    return s;
  };
  /** A schedule as listed: with its next due time (null while disabled). */
  /** Checks a schedule's source as the scheduler will open it (an ad-hoc URL untrusted). */
  const checkSource = (ref: DatabaseRef): void => void openSource(ref.url, { untrusted: ref.untrusted });
  const shown = <T extends ScheduleSpec>(s: T) => {
    const now = new Date();
    return {
      ...publicSchedule(s),
      nextRun: s.enabled ? scheduler.next(s, now)?.toISOString() ?? null : null,
      description: describeCron(s.cron, s.timezone),
      nextRuns: s.enabled ? nextRuns(s.cron, s.timezone, 5, now) : [],
    };
  };

  on('listSchedules', (c) => c.json({ schedules: schedules.list().filter((s) => scope(c).schedule(s)).map(shown) }));
  on('createSchedule', async (c, { body: req }) => {
    const spec = buildScheduleSpec({ ...req, repository: req.repository ?? DEFAULT_REPOSITORY }, new Date());
    checkSource(sourceUrl(c, spec.source));
    await openRepo(c, spec.repository);
    if (spec.copyTo !== undefined) await openRepo(c, spec.copyTo);
    schedules.add(spec);
    return c.json({ schedule: shown(spec) }, 201);
  });
  on('getSchedule', (c) => {
    const s = scoped(c, scheduleName(c.req.param('name') ?? ''));
    return c.json({ schedule: shown(s), runs: publicRuns(schedules.runs(s.name, 50), s) });
  });
  on('updateSchedule', async (c, { body: changes }) => {
    const name = scheduleName(c.req.param('name') ?? '');
    const now = new Date();
    // Checked first against the schedule as it is now (400 for an invalid result, before any
    // storage is touched). Only what changes is checked against this token's role: a schedule an
    // admin made with a URL stays editable by an operator who leaves that URL alone.
    const { spec } = applyScheduleChanges(scoped(c, name), changes, now);
    if (changes.source !== undefined) checkSource(sourceUrl(c, spec.source));
    if (changes.repository !== undefined) await openRepo(c, spec.repository);
    if (changes.copyTo != null && spec.copyTo !== undefined) await openRepo(c, spec.copyTo);
    // The checks above await; another edit may have landed meanwhile. The changes are merged
    // again onto the row as it is inside the store's write transaction, so neither edit is lost
    // (the checked fields come from `changes`, so they are the same in the merged spec).
    const updated = schedules.update(name, scheduleEdit(changes, now));
    return c.json({ schedule: shown(updated) });
  });
  for (const [id, enabled] of [['enableSchedule', true], ['disableSchedule', false]] as const) {
    on(id, (c) => {
      const name = scheduleName(c.req.param('name') ?? '');
      scoped(c, name);
      schedules.setEnabled(name, enabled);
      return c.json({ schedule: publicSchedule(schedules.get(name)) });
    });
  }
  on('runSchedule', async (c) => {
    // 409 only when a job holds the schedule's database; otherwise the error that stopped it.
    const name = scheduleName(c.req.param('name') ?? '');
    const spec = scoped(c, name);
    c.set('inputs', [spec.source, spec.repository]); // the error may quote its URL
    const jobId = await scheduler.runNow(name);
    return c.json({ job: publicJob(await center.get(jobId)) }, 202);
  });
  on('cronPreview', (c, { query }) => c.json(cronPreview(query.cron, query.timezone ?? 'UTC', query.count !== undefined ? Number(query.count) : 5)));
  on('retentionPreview', async (c, { body: req }) => {
    const spec = req.schedule !== undefined ? scoped(c, scheduleName(req.schedule)) : undefined;
    // A schedule's source and repository as its runs open them; a request's as its role may name them.
    const ref = spec ? access.databaseUrl(spec.source, 'server') : sourceUrl(c, req.source ?? '');
    const sourceLocation = openSource(ref.url, { untrusted: ref.untrusted }).location;
    const repo = req.repository !== undefined || !spec ? await openRepo(c, req.repository) : await serverRepo(spec.repository);
    const rules = rulesGiven(req) ?? (spec ? spec.retention : {});
    const timezone = req.timezone ?? spec?.timezone ?? 'UTC';
    cronOf('@daily', timezone); // the zone checked as a schedule's (400 naming it)
    const manifests = await repo.listManifests();
    // The candidates of a scheduled run's retention: its own backups; for a source, every
    // schedule's backups of it. Manual backups never are.
    const candidates = manifests.filter((m) => (spec ? madeBySchedule(m, spec, sourceLocation) : m.type === 'scheduled' && m.source.location === sourceLocation));
    const decision = previewRetention(candidates, rules, new Date(), timezone);
    const of = spec ? `the backups schedule ${quote(spec.name)} made` : `the scheduled backups of ${sourceLocation}`;
    return c.json({
      repository: repo.location,
      timezone,
      rules,
      ...decision,
      note: `Over ${of} (${candidates.length}); manual backups are never removed by retention. Nothing was deleted.`,
    });
  });
  on('removeSchedule', (c) => {
    const name = scheduleName(c.req.param('name') ?? '');
    scoped(c, name);
    schedules.remove(name);
    return c.json({ removed: name, note: 'its backups are kept' });
  });
}
