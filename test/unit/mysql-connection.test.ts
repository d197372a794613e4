/**
 * MySQL/MariaDB URLs (src/sources/mysql/connection.ts): parsing (mysql:// and mariadb://, IPv6,
 * percent-encoding, ?socket=, an empty host), where the password comes from (URL, MYSQL_PWD,
 * option files with their groups, includes and precedence), untrusted URLs, redaction (here and
 * in scrubSecrets), locations and database keys, error messages, and the name rules
 * (naming.ts). The same errors from a real server are in test/integration/mysql-errors.test.ts.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NotFoundError, SourceError, UsageError } from '../../src/core/errors.js';
import { databaseKey } from '../../src/jobs/database-key.js';
import { openSource, openTarget } from '../../src/sources/index.js';
import {
  MYSQL_URL_FORMS,
  mysqlDatabaseKey,
  mysqlError,
  mysqlLocation,
  optionFiles,
  parseMysqlUrl,
  previewUrl,
  readOptionFile,
  redactMysqlUrl,
  type MysqlSettings,
} from '../../src/sources/mysql/connection.js';
import { mysqlNaming } from '../../src/sources/mysql/naming.js';
import { scrubSecrets } from '../../src/sources/redact.js';

const scratch = mkdtempSync(join(tmpdir(), `cairn-myconn-${process.pid}-`));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A home folder holding `.my.cnf` with `text` (none when undefined). */
function home(name: string, text?: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  if (text !== undefined) writeFileSync(join(dir, '.my.cnf'), text, { mode: 0o600 });
  return dir;
}
const EMPTY_HOME = home('empty');
/** Parsed with no environment, no system option file and an empty home: the URL alone. */
const bare = (url: string, env: NodeJS.ProcessEnv = { USER: 'osuser' }, h = EMPTY_HOME): MysqlSettings => parseMysqlUrl(url, {}, env, h, []);
const messageOf = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a throw');
};

describe('MySQL URLs', () => {
  it('reads mysql:// and mariadb:// URLs: user, password, host, port, database; defaults 3306 and the OS user', () => {
    expect(bare('mysql://app:pw@db.example:3307/shop')).toEqual({ scheme: 'mysql', host: 'db.example', port: 3307, user: 'app', password: 'pw', passwordFrom: 'the URL', database: 'shop' });
    expect(bare('MariaDB://app@db/shop')).toEqual({ scheme: 'mariadb', host: 'db', port: 3306, user: 'app', database: 'shop' });
    expect(bare('mysql://db/shop').user).toBe('osuser');
    expect(bare('mysql://db/shop', { LOGNAME: 'logname' }).user).toBe('logname');
  });

  it('IPv6 hosts in brackets, and back in brackets in the location', () => {
    const s = bare('mysql://app@[::1]:3307/shop');
    expect(s.host).toBe('::1');
    expect(s.port).toBe(3307);
    expect(mysqlLocation(s)).toBe('mysql://app@[::1]:3307/shop');
    expect(bare('mysql://app@[2001:db8::5]/shop').host).toBe('2001:db8::5');
  });

  it('percent-decodes user, password and database; the location encodes them again and never holds the password', () => {
    const s = bare('mysql://us%40er:p%40ss%2Fw%3Ard%23%3F%25@db/my%20shop%2Fx');
    expect(s.user).toBe('us@er');
    expect(s.password).toBe('p@ss/w:rd#?%');
    expect(s.database).toBe('my shop/x');
    const loc = mysqlLocation(s);
    expect(loc).toBe('mysql://us%40er@db:3306/my%20shop%2Fx');
    expect(loc).not.toMatch(/p%40ss|p@ss/);
    expect(bare(loc)).toMatchObject({ user: 'us@er', database: 'my shop/x', host: 'db', port: 3306 });
  });

  it('a password with a raw "@" still parses (the last "@" ends the user information)', () => {
    expect(bare('mysql://app:p@ss@db/shop')).toMatchObject({ user: 'app', password: 'p@ss', host: 'db' });
  });

  it('?socket= names a Unix socket; an empty host with user or port is localhost', () => {
    const s = bare('mysql://root@localhost/shop?socket=%2Frun%2Fmysqld%2Fmysqld.sock');
    expect(s.socketPath).toBe('/run/mysqld/mysqld.sock');
    expect(mysqlLocation(s)).toBe('mysql://root@localhost:3306/shop?socket=%2Frun%2Fmysqld%2Fmysqld.sock');
    expect(bare('mysql://root@/shop?socket=/tmp/my.sock')).toMatchObject({ host: 'localhost', socketPath: '/tmp/my.sock' });
    expect(bare('mysql://root:pw@:3307/shop')).toMatchObject({ host: 'localhost', port: 3307, password: 'pw' });
    expect(bare('mysql:///shop')).toMatchObject({ host: 'localhost', port: 3306, user: 'osuser', database: 'shop' });
  });

  it('a URL without a database parses to database "" (the driver refuses it)', () => {
    expect(bare('mysql://root@db').database).toBe('');
    expect(bare('mysql://root@db/').database).toBe('');
  });

  it('refuses malformed URLs with a UsageError that names the fix and never the password', () => {
    const cases: [string, RegExp][] = [
      ['mysql://app:Secret-1@db/shop/extra', /more than one part; it names one database/],
      ['mysql://app:Secret-1@db/shop?ssl=true', /query parameter "ssl" is not supported \(only socket=/],
      ['mysql://app:Secret-1@db/shop?socket=', /socket= is empty/],
      ['mysql://app:Secret-1@db/shop?socket=/a&socket=/b', /socket= more than once/],
      ['mysql://app:Secret-1%zz@db/shop', /password has an invalid percent-encoding.*%25/],
      ['mysql://app:Secret-1@db/sh%zzop', /database has an invalid percent-encoding/],
      ['mysql://app:Secret-1@db/shop#frag', /"#" part/],
      ['mysql://app:Secret-1@db:99999/shop', /does not parse as a URL/],
      ['mysql://app:Se#cret-1@db/shop', /"#" part|does not parse/],
    ];
    for (const [url, re] of cases) {
      const err = (() => {
        try {
          bare(url);
        } catch (e) {
          return e as Error;
        }
        throw new Error(`${url} parsed`);
      })();
      expect(err, url).toBeInstanceOf(UsageError);
      expect(err.message, url).toMatch(re);
      expect(err.message, url).not.toMatch(/Secret|cret-1/);
      expect(err.message, url).toContain(MYSQL_URL_FORMS);
    }
  });

  it('the driver refuses a URL with no database (exit 2) with a message naming the form, and opens none at construction', () => {
    for (const url of ['mysql://root:Secret-1@127.0.0.1:3306', 'mariadb://root:Secret-1@127.0.0.1:3306/']) {
      const err = (() => {
        try {
          openSource(url);
        } catch (e) {
          return e as UsageError;
        }
        throw new Error('opened');
      })();
      expect(err).toBeInstanceOf(UsageError);
      expect(err.exitCode).toBe(2);
      expect(err.message).toMatch(/names no database: cairn backs up and restores one MySQL or MariaDB database at a time \(a whole server is not supported\)\. Add the database to the path: mysql:\/\/user\[:password\]@host\[:port\]\/dbname\.$/);
      expect(err.message).not.toContain('Secret-1');
      // The usage form survives the log scrubber; the password stays hidden.
      expect(scrubSecrets(err.message)).toContain(' mysql://user[:password]@host[:port]/dbname.');
      expect(() => openTarget(url)).toThrow(UsageError);
    }
    expect(openSource('mysql://root:Secret-1@127.0.0.1/shop').location).toBe('mysql://root@127.0.0.1:3306/shop');
  });
});

describe('where the password and the defaults come from', () => {
  it('URL, then MYSQL_PWD, then the option file; passwordFrom names the source (the file by path)', () => {
    const h = home('pw', '[client]\npassword = fromfile\n');
    expect(bare('mysql://app:fromurl@db/shop', { MYSQL_PWD: 'fromenv' }, h)).toMatchObject({ password: 'fromurl', passwordFrom: 'the URL' });
    expect(bare('mysql://app@db/shop', { MYSQL_PWD: 'fromenv' }, h)).toMatchObject({ password: 'fromenv', passwordFrom: 'MYSQL_PWD' });
    expect(bare('mysql://app@db/shop', {}, h)).toMatchObject({ password: 'fromfile', passwordFrom: join(h, '.my.cnf') });
    expect(bare('mysql://app@db/shop', {}, EMPTY_HOME).password).toBeUndefined();
    // An empty MYSQL_PWD is an empty password, as the mysql client takes it.
    expect(bare('mysql://app@db/shop', { MYSQL_PWD: '' }, h)).toMatchObject({ password: '', passwordFrom: 'MYSQL_PWD' });
  });

  it('reads [client], [client-server] and [client-mariadb] only (not the server\'s [mysqld]/[mariadb], not [mysql]); quotes, escapes and comments as the clients do', () => {
    const h = home(
      'groups',
      [
        '# comment',
        '[mysqld]',
        'user = mysql',
        'port = 1111',
        '[mariadb]',
        'user = mysql',
        '[mysql]',
        'password = mysql-group',
        '[client]',
        'user = alice',
        'password = "a b#c"',
        'port = 3310 # inline comment',
        '[client-mariadb]',
        "host = 'dbhost'",
        '[client-server]',
        'password = tab\\there',
        'password',
      ].join('\n'),
    );
    const s = bare('mysql:///shop', {}, h);
    expect(s).toMatchObject({ user: 'alice', host: 'dbhost', port: 3310, password: 'tab\there' });
    expect(readOptionFile(join(h, '.my.cnf'))).toEqual({ user: 'alice', password: 'tab\there', port: '3310', host: 'dbhost' });
  });

  it('the URL wins over the option file for user, host and port', () => {
    const h = home('urlwins', '[client]\nuser=alice\nhost=filehost\nport=3310\n');
    expect(bare('mysql://bob@urlhost:3320/shop', {}, h)).toMatchObject({ user: 'bob', host: 'urlhost', port: 3320 });
  });

  it('option files in order: system files, $MYSQL_HOME/my.cnf, ~/.my.cnf (a later one wins), with !include and !includedir', () => {
    const sys = join(scratch, 'sys.cnf');
    const incDir = join(scratch, 'conf.d');
    mkdirSync(incDir, { recursive: true });
    writeFileSync(join(incDir, '50-client.cnf'), '[client]\nport = 3401\nsocket = /run/from-includedir.sock\n');
    writeFileSync(join(incDir, 'ignored.txt'), '[client]\nport = 9\n');
    writeFileSync(sys, `[client]\nuser = sysuser\npassword = syspw\n!includedir ${incDir}\n`);
    const mh = join(scratch, 'mysqlhome');
    mkdirSync(mh, { recursive: true });
    writeFileSync(join(mh, 'my.cnf'), '[client]\npassword = homepw\n');
    const h = home('order', '[client]\nport = 3402\n');
    expect(optionFiles({ MYSQL_HOME: mh }, h, [sys])).toEqual([sys, join(mh, 'my.cnf'), join(h, '.my.cnf')]);
    const s = parseMysqlUrl('mysql://db/shop', {}, { MYSQL_HOME: mh }, h, [sys]);
    expect(s).toMatchObject({ user: 'sysuser', password: 'homepw', passwordFrom: join(mh, 'my.cnf'), port: 3402 });
    const inc = join(scratch, 'inc.cnf');
    writeFileSync(inc, `!include ${sys}\n[client]\nuser = incuser\n`);
    expect(readOptionFile(inc)).toMatchObject({ user: 'incuser', password: 'syspw', port: '3401' });
  });

  it('a world-writable option file is ignored, as the clients ignore it', () => {
    const h = home('ww', '[client]\npassword = planted\nhost = evil\n');
    chmodSync(join(h, '.my.cnf'), 0o666);
    expect(bare('mysql://app@/shop', {}, h)).toMatchObject({ host: 'localhost' });
    expect(bare('mysql://app@db/shop', {}, h).password).toBeUndefined();
  });

  it('a bad port in an option file is a UsageError naming the file', () => {
    const h = home('badport', '[client]\nport = abc\n');
    expect(() => bare('mysql://app@db/shop', {}, h)).toThrow(new RegExp(`The option file ${join(h, '.my.cnf').replace(/[.]/g, '\\.')} sets port=abc`));
  });

  it('localhost (or no host) goes through the option files\' socket, as the mysql client does; 127.0.0.1 or an explicit port stays on TCP', () => {
    const h = home('sock', '[client-server]\nsocket = /run/mysqld/mysqld.sock\n');
    expect(bare('mysql://root@localhost/shop', {}, h).socketPath).toBe('/run/mysqld/mysqld.sock');
    expect(bare('mysql:///shop', {}, h).socketPath).toBe('/run/mysqld/mysqld.sock');
    expect(bare('mysql://root@127.0.0.1/shop', {}, h).socketPath).toBeUndefined();
    expect(bare('mysql://root@localhost:3306/shop', {}, h).socketPath).toBeUndefined();
    expect(bare('mysql://root@localhost/shop?socket=/other.sock', {}, h).socketPath).toBe('/other.sock');
  });
});

describe('untrusted URLs (sent in an API request)', () => {
  const h = home('untrusted', '[client]\nuser = alice\npassword = filepw\nhost = filehost\nsocket = /run/x.sock\n');
  const untrusted = (url: string): MysqlSettings => parseMysqlUrl(url, { untrusted: true }, { MYSQL_PWD: 'envpw', USER: 'osuser' }, h, []);

  it('use nothing of the machine: no MYSQL_PWD, no option file, no socket', () => {
    expect(untrusted('mysql://app@localhost/shop')).toEqual({ scheme: 'mysql', host: 'localhost', port: 3306, user: 'app', database: 'shop', untrusted: true });
    expect(untrusted('mysql://app:pw@db/shop')).toMatchObject({ password: 'pw', passwordFrom: 'the URL' });
  });

  it('must name host and user, and may not name a socket; the message says why and never holds the password', () => {
    const cases: [string, RegExp][] = [
      ['mysql://app:Secret-1@/shop?socket=/run/mysqld/mysqld.sock', /names a Unix socket \(socket=\)/],
      ['mysql://:Secret-1@db/shop', /names no user/],
      ['mysql://app:Secret-1@/shop', /names no host/],
      ['mysql:///shop', /names no host/],
    ];
    for (const [url, re] of cases) {
      const m = messageOf(() => untrusted(url));
      expect(m, url).toMatch(re);
      expect(m, url).toMatch(/nothing of the server's own settings \(MYSQL_PWD, option files such as ~\/\.my\.cnf, its Unix socket\)/);
      expect(m, url).not.toContain('Secret-1');
    }
  });

  it('the driver passes untrusted through: location() refuses a socket', () => {
    expect(() => openSource('mysql://app@db/shop?socket=/run/x.sock', { untrusted: true })).toThrow(/names a Unix socket/);
    expect(() => openTarget('mysql://app@db/shop?socket=/run/x.sock', { untrusted: true })).toThrow(/names a Unix socket/);
  });
});

describe('redaction', () => {
  it('redactMysqlUrl hides the password, whatever it holds, up to the last "@"', () => {
    expect(redactMysqlUrl('mysql://app:Secret-1@db/shop')).toBe('mysql://app:***@db/shop');
    expect(redactMysqlUrl('mariadb://app:p@ss:w/rd@[::1]:3307/shop')).toBe('mariadb://app:***@[::1]:3307/shop');
    expect(redactMysqlUrl('mysql://app@db/shop')).toBe('mysql://app@db/shop');
    expect(redactMysqlUrl('mysql://a/b:Secret-1@db/shop')).toBe('mysql://***@db/shop');
    expect(redactMysqlUrl('mysql://db/shop')).toBe('mysql://db/shop');
    expect(previewUrl(`mysql://app:Secret-1@db/${'x'.repeat(300)}`)).toMatch(/^mysql:\/\/app:\*\*\*@db\/x+…$/);
  });

  it('scrubSecrets hides MySQL passwords in free text and keeps the usage form', () => {
    for (const url of ['mysql://app:Secret-1@db/shop', 'mariadb://app:Se%40cret-1@[::1]:3307/shop', 'mysql://app:Secret-1@/shop?socket=/x.sock']) {
      const out = scrubSecrets(`backup of ${url} failed`);
      expect(out, url).not.toMatch(/Secret|cret-1/);
      expect(out, url).toMatch(/app:\*\*\*@/);
    }
    const hint = `Invalid MySQL URL "x": it does not parse. Write ${MYSQL_URL_FORMS} (or mariadb://…).`;
    expect(scrubSecrets(hint)).toBe(hint);
  });

  it('mysqlError scrubs the password (decoded and encoded) from the server\'s text, and names where it came from', () => {
    const s = bare('mysql://app:p%40ss-Secret@db/shop');
    const e = mysqlError({ code: 'ER_SOMETHING', sqlMessage: 'odd p@ss-Secret and p%40ss-Secret.' }, s);
    expect(e).toBeInstanceOf(SourceError);
    expect(e.message).toBe('MySQL error ER_SOMETHING on db:3306, database "shop": odd *** and ***.');
    const denied = mysqlError({ code: 'ER_ACCESS_DENIED_ERROR', sqlMessage: "Access denied for user 'app'@'x' (using password: YES)" }, s);
    expect(denied.message).toBe('MySQL at db:3306 refused user "app": wrong user or password (the password came from the URL). Check them: the URL, MYSQL_PWD or an option file such as ~/.my.cnf.');
    expect(mysqlError({ code: 'ER_BAD_DB_ERROR' }, s)).toBeInstanceOf(NotFoundError);
    expect(mysqlError({ code: 'ECONNREFUSED' }, bare('mysql://app@[::1]:1/shop')).message).toBe(
      'Cannot connect to MySQL at [::1]:1: connection refused. Is the server running and listening there? Check the host and port in the URL.',
    );
    expect(mysqlError({ code: 'ER_DBACCESS_DENIED_ERROR', sqlMessage: "Access denied for user 'app'@'%' to database 'shop'" }, s).message).toMatch(
      /^MySQL user "app" may not use database "shop" on db:3306 \(Access denied for user 'app'@'%' to database 'shop'\)\. Grant it the privileges it needs: a backup needs SELECT, SHOW VIEW, TRIGGER, EVENT and CREATE TEMPORARY TABLES/,
    );
  });
});

describe('locations and database keys', () => {
  it('one key per database: user, scheme, localhost spellings and sockets do not matter; host case does not; port and database do', () => {
    const key = (l: string): string | undefined => mysqlDatabaseKey(l);
    expect(key('mysql://a@localhost:3306/shop')).toBe('mysql://localhost:3306/shop');
    for (const l of ['mariadb://b@127.0.0.1/shop', 'mysql://c@[::1]:3306/shop', 'mysql://d@localhost:3306/shop?socket=%2Frun%2Fmysqld%2Fmysqld.sock', 'mysql://e@LOCALHOST/shop']) {
      expect(key(l), l).toBe('mysql://localhost:3306/shop');
    }
    expect(key('mysql://a@localhost:3307/shop')).not.toBe(key('mysql://a@localhost:3306/shop'));
    expect(key('mysql://a@localhost/Shop')).not.toBe(key('mysql://a@localhost/shop'));
    expect(key('mysql://a@DB.Example/shop')).toBe('mysql://db.example:3306/shop');
    expect(key('mysql://a@[2001:DB8::1]/shop')).toBe('mysql://[2001:db8::1]:3306/shop');
    expect(key('mysql://a@db/my%2Fshop')).toBe('mysql://db:3306/my%2Fshop');
    expect(key('mysql://a@db/shop/x')).toBeUndefined();
    expect(databaseKey('mariadb://x@127.0.0.1:3306/shop')).toBe(databaseKey('mysql://y@localhost/shop'));
  });
});

describe('MySQL names', () => {
  it('exact names; a name wholly in double quotes or in backticks is the text inside', () => {
    expect(mysqlNaming.qualify('Users')).toBe('Users');
    expect(mysqlNaming.key('Users')).not.toBe(mysqlNaming.key('users'));
    expect(mysqlNaming.qualify('"a,b"')).toBe('a,b');
    expect(mysqlNaming.qualify('`order`')).toBe('order');
    expect(mysqlNaming.qualify('`a``b`')).toBe('a`b');
    expect(mysqlNaming.qualify('`a`b`')).toBe('`a`b`');
    expect(mysqlNaming.unquoted('`x`')).toBe('x');
  });

  it('written() gives back a name that qualify() reads as itself', () => {
    for (const name of ['plain', 'a,b', ' x', 'a"b', '`x`', '`a``b`', 'x`y', 'Ä']) {
      expect(mysqlNaming.qualify(mysqlNaming.written(name)), name).toBe(name);
    }
  });
});

describe('scrubPassword', () => {
  it('hides the password where it stands whole, never a part of a longer name (which would give it away)', async () => {
    const { scrubPassword } = await import('../../src/sources/mysql/connection.js');
    expect(scrubPassword("Access denied for user 'trial_rest'@'%' to database 'rest'", 'rest')).toBe("Access denied for user 'trial_rest'@'%' to database '***'");
    expect(scrubPassword('near "p@ss w" at line 1: p@ss', 'p@ss')).toBe('near "*** w" at line 1: ***');
    expect(scrubPassword('x p%40ss y', 'p@ss')).toBe('x *** y');
    expect(scrubPassword('nothing secret', undefined)).toBe('nothing secret');
  });
});
