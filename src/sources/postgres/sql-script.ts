/**
 * `cairn export --format sql` of a PostgreSQL backup: one script that
 * `psql -X -v ON_ERROR_STOP=1 -d <new database> -f file` loads with nothing of cairn installed
 * (the loading host needs psql only; cairn's host runs pg_restore to turn the stored schema
 * archive into SQL). The same steps as a restore into a new database (new-database.ts), written
 * out instead of run, in one transaction:
 *
 *   the archive's pre-data section (`pg_restore -f - --section=pre-data -L list`: schemas,
 *   extensions, types, functions, tables, views, sequences, comments, owners and grants),
 *   filtered to the selection exactly as a restore filters it (toc.ts filterToc);
 *   each table's rows as a `COPY … FROM stdin` block of the stored COPY text, byte for byte;
 *   the post-data section (primary keys, unique and foreign keys, indexes, triggers, rules,
 *   policies), after the data; every sequence set to its backed-up value (setval);
 *   materialized views that held data refreshed; renamed collections renamed (as load.ts
 *   applyRenames: created under their source names, then moved).
 *
 * Not carried: roles (the script creates none: owners and grants name roles that must exist on
 * the loading server — restore the backup's roles with cairn, or create them, first), database-
 * level properties (ALTER DATABASE … SET, the database's comment and grants), foreign tables'
 * data, statistics (run ANALYZE after loading). Partitions are loaded through their topmost
 * exported partitioned table, so each row lands in the partition the loading database picks
 * (as pg_dump --load-via-partition-root; the same partition wherever the hash is portable).
 *
 * The script is in the source database's encoding (its archive's and its data's), and says so
 * (`SET client_encoding`): load it into a database created with the encoding and locale the
 * header names. The schema archive is the backup's own SQL, as a restore runs it; a COPY data
 * line that would end the data early (`\.`, which COPY text never writes for a value) is refused
 * as damage rather than written, so the rows cannot smuggle statements or psql commands.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CorruptionError, SourceError, stoppedBySignal, throwIfAborted } from '../../core/errors.js';
import type { SqlScriptContext } from '../driver.js';
import type { RestoreItem } from '../types.js';
import { identQuoter, quoteIdent } from './catalog.js';
import type { PgConnectionSettings } from './connection.js';
import type { PgSequenceState } from './definitions.js';
import { textLiteral } from './dump.js';
import { TMP_PREFIX } from './leftovers.js';
import { LOAD_SESSION_SETTINGS } from './load.js';
import { display } from './naming.js';
import { databaseOptions } from './new-database.js';
import { ALTER_WORD, checkedToc, planItems, supportSequences, tocSelection, type Plan, type PlannedCollection, type QName } from './plan.js';
import { assertRoutinesHaveTheirRelations } from './routine-restore.js';
import { droppedFkExportWarning, filterToc, listFile, parseToc, readFkReferences } from './toc.js';
import { archiveScript, firstErrors, runTool } from './tools.js';
import { assertViewsHaveTheirRelations } from './view-needs.js';

/**
 * Settings for the tools that only read the archive file (`pg_restore -l`, `pg_restore -f -`):
 * they connect to no server; untrusted, so that nothing of this host's libpq settings is read.
 */
const NO_SERVER: PgConnectionSettings = { host: '/nonexistent', port: 5432, user: 'cairn', database: 'cairn', password: undefined, params: {}, untrusted: true };

const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

/**
 * The script's bytes (see the module comment). Errors before the first byte: SourceError /
 * CorruptionError / UsageError for what a restore would refuse (a definition, the archive's
 * table of contents, a view or routine without the relations it needs), SourceError when
 * pg_restore is missing or cannot read the archive; while streaming: CorruptionError for
 * damaged data or a row count that differs from the manifest's; the signal's reason on abort.
 */
export async function* postgresSqlScript(context: SqlScriptContext): AsyncGenerator<Buffer> {
  const { signal } = context;
  const items: RestoreItem[] = context.entries.map(({ entry, targetName }) => ({ entry, targetName, data: () => context.read(entry) }));
  const plan = planItems(items);
  const encoding = plan.schemaDef.encoding;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}export-`));
  // Private whatever the umask: the archive and list files in it are 0600 too.
  fs.chmodSync(tmp, 0o700);
  let schema: { pre: Buffer; post: Buffer; restrictKey: string | undefined; notes: string[] };
  try {
    schema = await schemaSections(plan, tmp, encoding, signal, [...(context.noOwner ? ['--no-owner'] : []), ...(context.noPrivileges ? ['--no-privileges'] : [])]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const dataEncoding = plan.schemaDef.dataEncoding ?? 'UTF8';
  // Identifiers cairn writes, in the script's encoding (Unicode escapes outside UTF8).
  const raw = dataEncoding === 'UTF8' || dataEncoding === 'SQL_ASCII';
  const quote = identQuoter(dataEncoding, dataEncoding);
  const qn = (n: QName): string => `${quote(n.schema)}.${quote(n.name)}`;

  for (const n of schema.notes) context.onWarning?.(n);
  const head = [header(context, plan, schema.notes)];
  // psql 13.22 / 14.19 / 15.14 / 16.10 / 17.6 and later: no psql meta-command but \unrestrict
  // runs until the end (pg_dump's own guard against commands hidden in a schema); a pg_restore
  // that writes the guard has a psql that knows it.
  if (schema.restrictKey) head.push(`\\restrict ${schema.restrictKey}\n`);
  head.push('BEGIN;\n\n');
  yield Buffer.from(head.join(''), 'utf8');
  yield schema.pre;
  yield Buffer.from(
    `\n-- Data\n${LOAD_SESSION_SETTINGS.map((s) => `${s};\n`).join('')}SET client_encoding = ${textLiteral(dataEncoding, true)};\n\n`,
    'utf8',
  );
  const tables = [...plan.collections.filter((c) => c.table !== undefined && c.item.entry.dataFormat !== undefined), ...plan.extensionTables];
  const into = loadTargets(plan);
  for (const t of tables) {
    throwIfAborted(signal);
    yield* copyBlock(t, qn(into.get(t) ?? t.source), quote);
  }
  yield Buffer.from('\n-- Constraints, indexes, triggers\n', 'utf8');
  yield schema.post;
  const tail = [
    '\n-- Sequences\n',
    sequences(plan, raw),
    refreshMaterializedViews(plan, qn),
    renames(plan, raw),
    'COMMIT;\n',
    ...(schema.restrictKey ? [`\\unrestrict ${schema.restrictKey}\n`] : []),
  ];
  yield Buffer.from(tail.join(''), 'utf8');
}

/** The script's opening comment: what it is, how to load it, what it does not carry. */
function header(context: SqlScriptContext, plan: Plan, notes: string[]): string {
  const { manifest } = context;
  const line = (text: string): string => `-- ${text.replace(/[\r\n]+/g, ' ')}\n`;
  const partial = context.entries.length !== manifest.collections.length || context.entries.some((e) => e.targetName !== e.entry.name);
  let create: string;
  try {
    create = `CREATE DATABASE <name> TEMPLATE template0 ${databaseOptions(plan.schemaDef, 999_999, '<name>')};`;
  } catch {
    create = 'CREATE DATABASE <name> TEMPLATE template0;';
  }
  return [
    line(`cairn plain-SQL export of backup ${manifest.id} (PostgreSQL ${manifest.source.serverVersion}, database ${manifest.source.location}, taken ${manifest.createdAt}).`),
    ...(partial ? [line('Part of the backup (--include / --exclude / --rename).')] : []),
    line('Load it into a new, empty database:'),
    line(`  ${create}`),
    line('  psql -X -v ON_ERROR_STOP=1 -d <name> -f <this file>'),
    line('One transaction: a failed load leaves nothing behind. The text is in the source database\'s encoding.'),
    line('Roles are not created by this script: the owners and grants it sets name roles that must exist on the'),
    line('server that loads it (restore them with cairn restore --roles, or create them). Not carried either:'),
    line('database-level settings (ALTER DATABASE ... SET), foreign tables\' data, planner statistics (run ANALYZE).'),
    ...notes.map((n) => line(`Warning: ${n}`)),
    '\n',
  ].join('');
}

/**
 * The archive's pre-data and post-data SQL for the selection, as a restore into a new database
 * runs them (the same checks first), and pg_restore's `\restrict` key when it writes one. The
 * SQL keeps the archive's bytes (its encoding), without pg_restore's own \restrict lines.
 */
async function schemaSections(
  plan: Plan,
  tmp: string,
  encoding: string,
  signal: AbortSignal | undefined,
  /** pg_restore's --no-owner / --no-privileges, as asked. */
  leaveOut: string[] = [],
): Promise<{ pre: Buffer; post: Buffer; restrictKey: string | undefined; notes: string[] }> {
  const archive = path.join(tmp, 'schema.dump');
  await pipeline(Readable.from(plan.schemaItem.data()), fs.createWriteStream(archive, { mode: 0o600 }), ...(signal ? [{ signal }] : [])).catch((err: unknown) => {
    throwIfAborted(signal);
    throw err;
  });
  const listing = await runTool('pg_restore', ['-l', archive], { settings: NO_SERVER, database: NO_SERVER.database, signal, what: 'Cannot read the schema archive', encoding });
  const toc = checkedToc(parseToc(listing.stdout));
  const script = (list: string) => archiveScript(NO_SERVER, archive, list, undefined, signal, [], encoding);
  const fkReferences = await readFkReferences(toc, tmp, script);
  // A view or routine exported without the relations it reads would not load: refused here, as a restore refuses it.
  await assertViewsHaveTheirRelations(plan, toc, tmp, script, () => Promise.resolve(new Set<string>()), true);
  await assertRoutinesHaveTheirRelations(plan, () => Promise.resolve(new Set<string>()), true);
  const filtered = filterToc(toc, tocSelection(plan, fkReferences, () => false));
  const list = path.join(tmp, 'export.list');
  fs.writeFileSync(list, listFile(filtered.kept), { mode: 0o600 });
  const pre = await pgRestoreScript(['-f', '-', '--section=pre-data', ...leaveOut, '-L', list, archive], signal);
  const post = await pgRestoreScript(['-f', '-', '--section=post-data', ...leaveOut, '-L', list, archive], signal);
  return { pre: pre.sql, post: post.sql, restrictKey: pre.key ?? post.key, notes: filtered.droppedFks.map(droppedFkExportWarning) };
}

/**
 * `pg_restore <args>` (which reads the archive file only) → its script's bytes, without the
 * `\restrict` / `\unrestrict` lines (the export writes one pair around the whole script), and
 * the key they carried. Errors: SourceError when pg_restore is missing or fails.
 */
async function pgRestoreScript(args: string[], signal: AbortSignal | undefined): Promise<{ sql: Buffer; key: string | undefined }> {
  throwIfAborted(signal);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('PG')) delete env[name];
  const child = spawn('pg_restore', args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new SourceError('pg_restore is not installed or not on PATH: the export turns the backup\'s schema archive into SQL with it. Install the PostgreSQL client tools (Debian: apt-get install postgresql-client).'));
      else reject(e);
    });
    child.on('close', (c, how) => {
      const stopped = stoppedBySignal('pg_restore', how);
      if (stopped) reject(stopped);
      else resolve(c ?? -1);
    });
  }).catch((e: unknown) => {
    throwIfAborted(signal);
    throw e;
  });
  if (code !== 0) throw new SourceError(`Cannot read the schema archive: pg_restore failed (exit ${code}): ${firstErrors(Buffer.concat(err).toString('utf8'))}`);
  // latin1 maps each byte to one character and back: the archive's encoding is kept as it is.
  let key: string | undefined;
  const text = Buffer.concat(out)
    .toString('latin1')
    .replace(/^\\(un)?restrict ([A-Za-z0-9]+)\r?\n/gm, (_m, _un: string | undefined, k: string) => {
      key ??= k;
      return '';
    });
  return { sql: Buffer.from(text, 'latin1'), key };
}

/**
 * Where each table's rows go: a partition through its topmost exported partitioned ancestor
 * (see the module comment), every other table into itself (absent from the map).
 */
function loadTargets(plan: Plan): Map<PlannedCollection, QName> {
  const bySource = new Map(plan.collections.filter((c) => c.table !== undefined).map((c) => [display(c.source), c]));
  const into = new Map<PlannedCollection, QName>();
  for (const c of plan.collections) {
    if (c.relkind !== 'r' || !c.table?.partitionOf) continue;
    let root: PlannedCollection | undefined;
    const seen = new Set<PlannedCollection>();
    for (let up = bySource.get(c.table.partitionOf); up !== undefined && !seen.has(up); up = up.table?.partitionOf ? bySource.get(up.table.partitionOf) : undefined) {
      seen.add(up);
      root = up;
    }
    if (root !== undefined) into.set(c, root.source);
  }
  return into;
}

/**
 * One table's `COPY … FROM stdin;` block: the stored COPY text as it is, then `\.`. The chunks
 * pass through unchanged (memory: one chunk). Errors: CorruptionError for a line `\.` inside
 * the data, or a row count that differs from the manifest's.
 */
async function* copyBlock(t: PlannedCollection, into: string, quote: (name: string) => string): AsyncGenerator<Buffer> {
  const def = t.table as NonNullable<PlannedCollection['table']>;
  const entry = t.item.entry;
  // No list for a table with no columns to name: COPY reads one (empty) line per row.
  const cols = def.copyColumns.length > 0 ? ` (${def.copyColumns.map(quote).join(', ')})` : '';
  yield Buffer.from(`COPY ${into}${cols} FROM stdin;\n`, 'utf8');
  const lines = new CopyLines(entry.name);
  for await (const chunk of t.item.data()) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (b.length === 0) continue;
    lines.scan(b);
    yield b;
  }
  const unterminated = lines.finish();
  if (lines.rows !== entry.rowCount) {
    throw new CorruptionError(`Cannot export table "${entry.name}": the backup recorded ${entry.rowCount} rows but its data holds ${lines.rows}. Run cairn verify --read-data on the backup, or leave it out with --exclude.`, {
      objects: [],
      collections: [entry.name],
    });
  }
  yield Buffer.from(`${unterminated ? '\n' : ''}\\.\n\n`, 'utf8');
}

/**
 * Counts the rows of a COPY text stream as it passes and refuses a line that is `\.` (COPY's
 * end-of-data marker, which COPY text never writes for a value: a backslash in a value is
 * written `\\`), which would end the data early and run what follows as SQL.
 */
class CopyLines {
  rows = 0;
  /** At a line start: how much of `\.` the line has begun with (0, 1, 2); -1 inside a line. */
  private state = 0;
  private last = LF;

  constructor(private readonly table: string) {}

  scan(b: Buffer): void {
    let i = 0;
    while (i < b.length) {
      if (this.state >= 0) {
        const c = b[i] as number;
        if (this.state === 0 && c === BACKSLASH) {
          this.state = 1;
          i++;
          continue;
        }
        if (this.state === 1 && c === DOT) {
          this.state = 2;
          i++;
          continue;
        }
        if (this.state === 2 && (c === LF || c === CR)) throw this.marker();
        this.state = -1;
      }
      const nl = b.indexOf(LF, i);
      if (nl < 0) break;
      this.rows++;
      this.state = 0;
      i = nl + 1;
    }
    this.last = b[b.length - 1] as number;
  }

  /** Whether the stream ended inside a line (counted as a row; the block adds its line break). */
  finish(): boolean {
    if (this.state === 2) throw this.marker();
    if (this.last === LF) return false;
    this.rows++;
    return true;
  }

  private marker(): CorruptionError {
    return new CorruptionError(
      `Cannot export table "${this.table}": its data holds a line "\\.", which COPY never writes for a row; the backup was altered or damaged. Run cairn verify --read-data on it, or leave the table out with --exclude.`,
      { objects: [], collections: [this.table] },
    );
  }
}

/**
 * setval of every sequence the load creates, to its backed-up value: the exported tables' own
 * (serial, identity), the exported standalone sequences, the others a new database gets
 * (plan.ts supportSequences) and the extensions' configuration sequences. A sequence the
 * archive did not create is passed over (to_regclass is NULL).
 */
function sequences(plan: Plan, raw: boolean): string {
  const states: PgSequenceState[] = [];
  for (const c of plan.collections) {
    states.push(...(c.table?.sequences ?? []));
    if (c.sequence) states.push(c.sequence);
  }
  states.push(...supportSequences(plan).map((s) => s.state), ...(plan.schemaDef.extensionSequences ?? []));
  const seen = new Set<string>();
  let out = '';
  for (const s of states) {
    const name = `${quoteIdent(s.schema)}.${quoteIdent(s.name)}`;
    if (seen.has(name) || !/^-?\d{1,19}$/.test(s.lastValue)) continue;
    seen.add(name);
    out += `SELECT pg_catalog.setval(c.oid, ${s.lastValue}, ${s.isCalled === true}) FROM (SELECT pg_catalog.to_regclass(${textLiteral(name, raw)}) AS oid) c WHERE c.oid IS NOT NULL;\n`;
  }
  return out;
}

/** A dollar-quote tag that `body` does not hold. */
function dollarTag(body: string): string {
  for (let n = 0; ; n++) {
    const tag = n === 0 ? '$cairn$' : `$cairn${n}$`;
    if (!body.includes(tag)) return tag;
  }
}

/**
 * REFRESH of the exported materialized views that held data at backup time, as a restore does
 * them (load.ts refreshMaterializedViews): one that reads another waits for it (retried while
 * some succeed); one whose query still fails on the loaded data is left unpopulated with a
 * WARNING, rather than failing the load.
 */
function refreshMaterializedViews(plan: Plan, qn: (n: QName) => string): string {
  const views = plan.collections.filter((c) => c.relkind === 'm' && c.populated !== false);
  if (views.length === 0) return '';
  // The names as SQL text (qn: quoted identifiers) inside a text array: quote_ident is not needed again.
  const names = views.map((v) => `'${qn(v.source).replace(/'/g, "''")}'`).join(', ');
  const body = `
DECLARE
  pending text[] := ARRAY[${names}]::text[];
  failed text[];
  v text;
BEGIN
  LOOP
    failed := '{}';
    FOREACH v IN ARRAY pending LOOP
      BEGIN
        EXECUTE 'REFRESH MATERIALIZED VIEW ' || v;
      EXCEPTION WHEN OTHERS THEN
        failed := failed || v;
      END;
    END LOOP;
    EXIT WHEN cardinality(failed) = 0 OR cardinality(failed) = cardinality(pending);
    pending := failed;
  END LOOP;
  IF cardinality(failed) > 0 THEN
    RAISE WARNING 'materialized views left unpopulated (their query failed on the loaded data; run REFRESH MATERIALIZED VIEW once it allows): %', array_to_string(failed, ', ');
  END IF;
END
`;
  const tag = dollarTag(body);
  return `\n-- Materialized views\nDO ${tag}${body}${tag};\n`;
}

/**
 * The renames of the export, as a restore applies them (load.ts applyRenames), in one DO block
 * (it must read the catalog for the indexes and owned sequences of a table that moves schema):
 * every renamed relation first takes a parked name, then its final one; a table moving schema
 * takes its indexes and owned sequences along under parked names, which then get their own
 * names back where free, else the table's new name in place of its old one, else a numbered one.
 */
function renames(plan: Plan, raw: boolean): string {
  const moves = plan.collections.filter((c) => c.source.schema !== c.target.schema || c.source.name !== c.target.name);
  if (moves.length === 0) return '';
  const lit = (s: string): string => textLiteral(s, raw);
  const rows = moves.map((c) => `ARRAY[${[ALTER_WORD[c.relkind], c.source.schema, c.source.name, c.target.schema, c.target.name].map(lit).join(', ')}]`);
  const tag = randomBytes(4).toString('hex');
  const body = `
DECLARE
  moves text[] := ARRAY[${rows.join(', ')}]::text[];
  comp record;
  k int;
  parked text;
  cword text;
  base text;
  chosen text;
  -- companion i: [move index, kind word, parked name, original name]
  companions text[] := '{}';
  c text[];
BEGIN
  FOR i IN 1 .. array_length(moves, 1) LOOP
    parked := 'cairn_rename_${tag}_' || i;
    IF moves[i][2] <> moves[i][4] AND moves[i][1] NOT IN ('SEQUENCE', 'VIEW') THEN
      k := 0;
      FOR comp IN
        SELECT r.relname AS name, r.relkind::text AS kind FROM pg_catalog.pg_class r
          JOIN pg_catalog.pg_index x ON x.indexrelid = r.oid WHERE x.indrelid = format('%I.%I', moves[i][2], moves[i][3])::regclass
        UNION ALL
        SELECT r.relname, r.relkind::text FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class r ON r.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = format('%I.%I', moves[i][2], moves[i][3])::regclass
           AND d.deptype IN ('a', 'i') AND r.relkind = 'S'
        ORDER BY 1
      LOOP
        cword := CASE WHEN comp.kind = 'S' THEN 'SEQUENCE' ELSE 'INDEX' END;
        EXECUTE format('ALTER %s %I.%I RENAME TO %I', cword, moves[i][2], comp.name, parked || '_' || k);
        companions := companions || ARRAY[ARRAY[i::text, cword, parked || '_' || k, comp.name]];
        k := k + 1;
      END LOOP;
    END IF;
    EXECUTE format('ALTER %s %I.%I RENAME TO %I', moves[i][1], moves[i][2], moves[i][3], parked);
  END LOOP;
  FOR i IN 1 .. array_length(moves, 1) LOOP
    parked := 'cairn_rename_${tag}_' || i;
    IF moves[i][2] <> moves[i][4] THEN
      EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', moves[i][4]);
      EXECUTE format('ALTER %s %I.%I SET SCHEMA %I', moves[i][1], moves[i][2], parked, moves[i][4]);
    END IF;
    EXECUTE format('ALTER %s %I.%I RENAME TO %I', moves[i][1], moves[i][4], parked, moves[i][5]);
    FOR j IN 1 .. coalesce(array_length(companions, 1), 0) LOOP
      c := companions[j:j][1:4];
      CONTINUE WHEN c[1][1] <> i::text;
      base := CASE WHEN left(c[1][4], length(moves[i][3])) = moves[i][3] THEN moves[i][5] || substr(c[1][4], length(moves[i][3]) + 1) ELSE c[1][4] END;
      SELECT x INTO chosen FROM unnest(ARRAY[c[1][4], base] || ARRAY(SELECT base || '_' || g FROM generate_series(1, 99) g)) WITH ORDINALITY AS u(x, o)
       WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = moves[i][4] AND r.relname = left(u.x, 63))
       ORDER BY o LIMIT 1;
      IF chosen IS NULL THEN
        RAISE EXCEPTION 'cannot name the % "%" of %.% in schema %: 101 names tried are taken', lower(c[1][2]), c[1][4], moves[i][4], moves[i][5], moves[i][4];
      END IF;
      EXECUTE format('ALTER %s %I.%I RENAME TO %I', c[1][2], moves[i][4], c[1][3], left(chosen, 63));
    END LOOP;
  END LOOP;
END
`;
  const dollar = dollarTag(body);
  return `\n-- Renames (--rename)\nDO ${dollar}${body}${dollar};\n`;
}
