/**
 * `--roles` with MySQL/MariaDB against the local server: the users that hold privileges in the
 * backed-up database come back with their grants aimed at the database restored into (another
 * name here), database-level grants (written as a LIKE pattern or escaped) and table-level ones
 * alike. Without --roles-with-passwords no password hash is in the manifest, and a user that
 * had a password comes back locked (never password-less); with it, the user logs in with its
 * password. Scratch users are named with the process id and dropped afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/jobs/backup.js';
import { runRestore } from '../../src/jobs/restore.js';
import { Repository } from '../../src/repo/repository.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import { CairnClient } from '../../src/sdk/index.js';
import { catalogFile, startServer } from '../../src/server/index.js';
import { aimGrant } from '../../src/sources/mysql/grants-restore.js';
import { manifestForDisplay } from '../../src/sources/redact.js';
import { cairn, cairnRun } from '../helpers/cli.js';
import { FileSystemStorage } from '../../src/storage/fs.js';
import { column, createDatabase, dropDatabase, ensureMysql, ident, lit, MY_HOST, MY_PORT, myUrl, sql } from '../helpers/mysql.js';

const P = process.pid;
const SRC = `cairn_t_roles_src_${P}`;
const made: string[] = [SRC];
const users: string[] = [];
let dir: string;
let repoDir: string;
let repo: Repository;
let backups = 0;

/** A scratch account `cairn_r_<pid>_<tag>`@`%` (dropped in afterAll). */
function user(tag: string): { name: string; account: string; password: string } {
  const name = `cairn_r_${P}_${tag}`;
  users.push(name);
  return { name, account: `${lit(name)}@'%'`, password: `pw ${tag} ${P}` };
}

function fresh(tag: string): string {
  const name = `cairn_t_roles_${tag}_${P}_${made.length}`;
  made.push(name);
  return name;
}

/** Connects as `name` with `password` and returns the count of `t` in `database`, or the server's error message. */
async function countAs(name: string, password: string, database: string): Promise<string> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({ host: MY_HOST, port: MY_PORT, user: name, password, rowsAsArray: true });
    const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT count(*) FROM ${ident(database)}.t`);
    return `rows ${String((rows[0] as unknown[])[0])}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await conn?.end().catch(() => undefined);
  }
}

const grantsOf = async (account: string): Promise<string[]> => column('', `SHOW GRANTS FOR ${account}`);

beforeAll(async () => {
  ensureMysql();
  dir = mkdtempSync(join(tmpdir(), 'cairn-mysql-roles-'));
  repoDir = join(dir, 'repo');
  repo = await Repository.init(new FileSystemStorage(repoDir), { compression: { algorithm: 'none', level: 'default' } });
  await createDatabase(SRC);
  await sql(SRC, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')`);
});

afterAll(async () => {
  for (const u of users) await sql('', `DROP USER IF EXISTS ${lit(u)}@'%'`);
  for (const d of made) await dropDatabase(d);
  rmSync(dir, { recursive: true, force: true });
});

describe.sequential('MySQL --roles into a database of another name', () => {
  it('without --roles-with-passwords: grants on the new name, no hash in the manifest, the user locked until given a password', async () => {
    const a = user('a');
    // A database-level grant written as the plain name (a LIKE pattern: `_` matches any
    // character) and a table-level one.
    await sql('', `CREATE USER ${a.account} IDENTIFIED BY ${lit(a.password)}; GRANT SELECT ON ${ident(SRC)}.* TO ${a.account}; GRANT INSERT ON ${ident(SRC)}.t TO ${a.account}`);
    expect(await countAs(a.name, a.password, SRC)).toBe('rows 2');
    const hash = (await column('', `SELECT authentication_string FROM mysql.global_priv CROSS JOIN JSON_TABLE(Priv, '$' COLUMNS (authentication_string TEXT PATH '$.authentication_string')) j WHERE User = ${lit(a.name)}`))[0] as string;
    expect(hash).toMatch(/^\*[0-9A-F]{40}$/);

    const id = `roles-${++backups}`;
    await runBackup({ repo, source: openSource(myUrl(SRC), { roles: true }), id, compressionWorkers: 0 });
    const manifest = await repo.readManifest(id);
    const json = JSON.stringify(manifest);
    expect(json).toContain(a.name);
    expect(json).not.toContain(hash);
    expect(json).not.toContain(hash.slice(1));
    expect(json).not.toMatch(/IDENTIFIED BY PASSWORD|USING '/);
    const grants = manifest.collections.find((c) => c.kind === 'mysql_grants');
    expect(grants?.definition.database).toBe(SRC);

    await sql('', `DROP USER ${a.account}`);
    const dst = fresh('dst');
    const result = await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), roles: true });
    const shown = await grantsOf(a.account);
    expect(shown.join('\n')).not.toContain(SRC);
    // Written plain as the source's was (both names hold `_`: patterns alike).
    expect(shown).toContain(`GRANT SELECT ON ${ident(dst)}.* TO ${ident(a.name)}@\`%\``);
    expect(shown).toContain(`GRANT INSERT ON ${ident(dst)}.${ident('t')} TO ${ident(a.name)}@\`%\``);
    // No password was recorded: the account is locked rather than open to anyone without one.
    expect(await countAs(a.name, '', dst)).toMatch(/locked/i);
    expect(await countAs(a.name, a.password, dst)).toMatch(/denied|locked/i);
    expect(result.warnings?.join('\n')).toMatch(new RegExp(`${a.name}.*locked.*ALTER USER`, 's'));
    // Given a password and unlocked, it reads the restored database, not the source.
    await sql('', `ALTER USER ${a.account} IDENTIFIED BY ${lit(a.password)} ACCOUNT UNLOCK`);
    expect(await countAs(a.name, a.password, dst)).toBe('rows 2');
    expect(await countAs(a.name, a.password, SRC)).toMatch(/denied/i);
  }, 60_000);

  it('with --roles-with-passwords: the user logs in with its password after the restore, on the new name', async () => {
    const b = user('b');
    // The database-level grant escaped, as careful administrators write it.
    await sql('', `CREATE USER ${b.account} IDENTIFIED BY ${lit(b.password)}; GRANT SELECT ON ${ident(SRC.replace(/_/g, '\\_'))}.* TO ${b.account}`);
    const hash = (await column('', `SELECT authentication_string FROM mysql.global_priv CROSS JOIN JSON_TABLE(Priv, '$' COLUMNS (authentication_string TEXT PATH '$.authentication_string')) j WHERE User = ${lit(b.name)}`))[0] as string;
    expect(hash).toMatch(/^\*[0-9A-F]{40}$/);
    const id = `roles-${++backups}`;
    // Through the CLI (a subprocess), so that every output a user sees is checked below.
    const created = cairn(['backup', 'create', '--source', myUrl(SRC), '--repo', repoDir, '--id', id, '--roles', '--roles-with-passwords', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const plain = cairn(['backup', 'create', '--source', myUrl(SRC), '--repo', repoDir, '--id', `${id}-again`, '--roles', '--roles-with-passwords']);
    expect(plain.code, plain.stderr).toBe(0);
    // The hash is data (chunks), never the manifest, so no listing or answer prints it.
    const manifest = await repo.readManifest(id);
    const grants = manifest.collections.find((c) => c.name === '(users and grants)')!;
    expect(grants.dataFormat).toBe('mysql-grants-sql-v1');
    expect(grants.chunks.length).toBeGreaterThan(0);
    const outputs: [string, string][] = [
      ['stored manifest', JSON.stringify(manifest)],
      ['backup create --json', created.stdout + created.stderr],
      ['backup create', plain.stdout + plain.stderr],
    ];
    for (const args of [['backup', 'list'], ['backup', 'list', '--json'], ['backup', 'show', id], ['backup', 'show', id, '--json'], ['diff', id, `${id}-again`], ['diff', id, `${id}-again`, '--json']]) {
      const r = cairn([...args, '--repo', repoDir]);
      expect(r.code, r.stderr).toBe(0);
      outputs.push([args.join(' '), r.stdout + r.stderr]);
    }
    // The server: a backup job (admin: rolesWithPasswords), its record, the listing, the manifest.
    const dataDir = join(dir, 'server');
    const store = new SqliteTokenStore(catalogFile(dataDir));
    const token = store.create('admin').token;
    store.close();
    const server = await startServer({ dataDir, port: 0, allowAdHocUrls: true, scheduleTickMs: 3600_000, env: {} });
    try {
      const client = new CairnClient({ url: server.url, token });
      const job = await client.backups.create({ source: myUrl(SRC), repository: repoDir, id: `${id}-api`, roles: true, rolesWithPasswords: true }, { waitForCompletion: true });
      expect(job.state).toBe('SUCCESS');
      const env = { CAIRN_SERVER: server.url, CAIRN_TOKEN: token, CAIRN_REPO: '' };
      const shown = await cairnRun(['job', 'show', job.id], env);
      expect(shown.code, shown.stderr).toBe(0);
      outputs.push(['job show', shown.stdout + shown.stderr], ['job record', JSON.stringify(await client.jobs.get(job.id))]);
      const remote = await cairnRun(['backup', 'show', `${id}-api`, '--repo', repoDir, '--json'], env);
      outputs.push(['backup show --server', remote.stdout + remote.stderr]);
      for (const path of [`/v1/backups?repository=${encodeURIComponent(repoDir)}`, `/v1/backups/${id}-api?repository=${encodeURIComponent(repoDir)}`]) {
        const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
        expect(res.status).toBe(200);
        outputs.push([`GET ${path}`, await res.text()]);
      }
    } finally {
      await server.close();
    }
    for (const [what, text] of outputs) {
      expect(text.includes(hash.slice(1)), `${what} prints the hash`).toBe(false);
      expect(/IDENTIFIED BY PASSWORD|\*[0-9A-F]{40}/.test(text), `${what} prints a hash`).toBe(false);
    }
    expect(outputs.find(([w]) => w === 'backup list --json')?.[1]).toContain(b.name);
    await sql('', `DROP USER ${b.account}`);
    expect(await countAs(b.name, b.password, SRC)).toMatch(/denied/i);

    const dst = fresh('pw');
    await runRestore({ repo, backupId: id, target: openTarget(myUrl(dst)), roles: true });
    expect((await grantsOf(b.account)).join('\n')).toContain(ident(dst.replace(/_/g, '\\_')));
    expect(await countAs(b.name, b.password, dst)).toBe('rows 2');
    expect(await countAs(b.name, b.password, SRC)).toMatch(/denied/i);
    expect(await countAs(b.name, 'wrong', dst)).toMatch(/denied/i);
  }, 180_000);
});

describe('manifestForDisplay: a manifest written before the hashes moved to the data stream', () => {
  it('prints its CREATE USER without the hash; the rest as stored', () => {
    const create = "CREATE USER `u`@`%` IDENTIFIED BY PASSWORD '*0123456789ABCDEF0123456789ABCDEF01234567' WITH MAX_USER_CONNECTIONS 3";
    const old = { id: 'old', collections: [{ name: '(users and grants)', kind: 'mysql_grants', definition: { withPasswords: true, database: 'd', accounts: [{ user: 'u', host: '%', isRole: false, createSql: create, grants: ['GRANT SELECT ON `d`.* TO `u`@`%`'] }] } }] };
    const shown = manifestForDisplay(old);
    expect(JSON.stringify(shown)).not.toMatch(/PASSWORD|0123456789ABCDEF/);
    expect(shown.collections[0]!.definition.accounts).toEqual([{ user: 'u', host: '%', isRole: false, createSql: 'CREATE USER `u`@`%` WITH MAX_USER_CONNECTIONS 3', grants: ['GRANT SELECT ON `d`.* TO `u`@`%`'] }]);
    // The stored manifest (what a restore reads) is not changed.
    expect(old.collections[0]!.definition.accounts[0]!.createSql).toBe(create);
  });
});

describe('aimGrant: which grant lines a restore into another database re-aims', () => {
  it('database-level patterns, exact names, routines, and names that only look like the clause', () => {
    const to = 'new_db';
    // Exact (no wildcard in the source's name): stays exact, the target escaped.
    expect(aimGrant('GRANT SELECT ON `shop`.* TO `u`@`%`', 'shop', to)).toBe('GRANT SELECT ON `new\\_db`.* TO `u`@`%`');
    // Escaped: escaped.
    expect(aimGrant('GRANT SELECT ON `shop\\_db`.* TO `u`@`%`', 'shop_db', to)).toBe('GRANT SELECT ON `new\\_db`.* TO `u`@`%`');
    // A wider pattern covering the source is not the source's grant alone: kept.
    expect(aimGrant('GRANT SELECT ON `shop%`.* TO `u`@`%`', 'shop_db', to)).toBe('GRANT SELECT ON `shop%`.* TO `u`@`%`');
    // Table- and routine-level grants name the database exactly.
    expect(aimGrant('GRANT INSERT ON `shop_db`.`t` TO `u`@`%`', 'shop_db', to)).toBe('GRANT INSERT ON `new_db`.`t` TO `u`@`%`');
    expect(aimGrant('GRANT EXECUTE ON PROCEDURE `shop_db`.`p` TO `u`@`%`', 'shop_db', to)).toBe('GRANT EXECUTE ON PROCEDURE `new_db`.`p` TO `u`@`%`');
    // Another database, a column named like the clause, a role grant: untouched but the real clause.
    expect(aimGrant('GRANT SELECT ON `other`.* TO `u`@`%`', 'shop_db', to)).toBe('GRANT SELECT ON `other`.* TO `u`@`%`');
    expect(aimGrant('GRANT SELECT (`c ON ``shop_db``.x`) ON `shop_db`.`t` TO `u`@`%`', 'shop_db', to)).toBe('GRANT SELECT (`c ON ``shop_db``.x`) ON `new_db`.`t` TO `u`@`%`');
    expect(aimGrant('GRANT `r` TO `u`@`%`', 'shop_db', to)).toBe('GRANT `r` TO `u`@`%`');
  });
});
