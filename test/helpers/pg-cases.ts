/**
 * The PostgreSQL failure cases of fixtures/postgres/cases/ (issue 14): each is loaded into a
 * fresh database created `TEMPLATE template0` with the options its kind needs, and a restore by
 * cairn is compared with what pg_dump | pg_restore makes of the same input (the reference).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDatabaseWith, pgEnv, psql, psqlFile } from './postgres.js';

export const CASES_DIR = fileURLToPath(new URL('../../fixtures/postgres/cases/', import.meta.url));

/** Database options by case (fixtures/postgres/cases/README.md). */
export const CASE_OPTIONS: Record<string, string> = {
  sqlascii: `ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'`,
  win1252: `ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C'`,
  icu: `LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8'`,
  icu_range: `LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8'`,
};

export function caseFile(name: string): string {
  return join(CASES_DIR, `${name}.sql`);
}

/**
 * Installs the test extension `bh_cfg` (a configuration table and sequence registered with
 * pg_extension_config_dump) into the server's extension folder. Returns why it cannot, or
 * undefined when it is installed.
 */
export function installCaseExtension(): string | undefined {
  const r = spawnSync('pg_config', ['--sharedir'], { encoding: 'utf8' });
  if (r.status !== 0) return 'pg_config is not installed (package postgresql-server-dev-all or libpq-dev)';
  const dir = join(r.stdout.trim(), 'extension');
  try {
    for (const f of ['bh_cfg.control', 'bh_cfg--1.0.sql']) {
      if (!existsSync(join(dir, f))) copyFileSync(join(CASES_DIR, f), join(dir, f));
    }
  } catch (e) {
    return `cannot write the test extension into ${dir} (${(e as Error).message}); run the tests as a user that may`;
  }
  return undefined;
}

/**
 * Creates `cairn_t_<prefix>_<random>` with the case's database options (`TEMPLATE template0`),
 * loads `fixtures/postgres/cases/<name>.sql` into it and returns the database name.
 */
export function createCaseDatabase(name: string, prefix = name): string {
  const db = createDatabaseWith(prefix, `TEMPLATE template0 ${CASE_OPTIONS[name] ?? ''}`);
  psqlFile(db, caseFile(name));
  return db;
}

/**
 * The reference: a new database, created with the same options, into which
 * `pg_dump --format=custom <db> | pg_restore` restored `db`. `pgRestoreArgs` are added to
 * pg_restore's (e.g. `--no-owner`). Returns the new database's name.
 */
export function pgDumpReference(db: string, caseName: string, pgRestoreArgs: string[] = []): string {
  const ref = createDatabaseWith(`${caseName}_ref`, `TEMPLATE template0 ${CASE_OPTIONS[caseName] ?? ''}`);
  const dump = spawnSync('pg_dump', ['--format=custom', '-d', db], { env: pgEnv(), maxBuffer: 256 * 1024 * 1024 });
  if (dump.status !== 0) throw new Error(`pg_dump ${db}: ${dump.stderr.toString()}`);
  const restore = spawnSync('pg_restore', ['--exit-on-error', '-d', ref, ...pgRestoreArgs], { env: pgEnv(), input: dump.stdout, maxBuffer: 64 * 1024 * 1024 });
  if (restore.status !== 0) throw new Error(`pg_restore into ${ref}: ${restore.stderr.toString()}`);
  return ref;
}

/** The database's encoding, locale provider, collate, ctype and ICU locale, as one line. */
export function databaseProperties(db: string): string {
  return psql(
    'postgres',
    `SELECT pg_encoding_to_char(encoding) || ' ' || datlocprovider::text || ' ' || datcollate || ' ' || datctype || ' ' || coalesce(daticulocale, '-')
       FROM pg_database WHERE datname = '${db.replace(/'/g, "''")}';`,
  ).trim();
}


