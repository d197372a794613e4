/**
 * The "(roles)" collection (`pg_dumpall --roles-only`) read back from a repository is hostile
 * data. It used to be fed to psql, which also runs psql meta-commands: a script edited to hold
 * `\! <shell command>`, `\o <file>` or `\copy … to '<file>'` ran commands and wrote files on the
 * restore host. Now cairn splits the script into statements itself and sends them through the
 * driver (no meta-command exists there), only of the kinds pg_dumpall writes for roles:
 * SET, CREATE ROLE, ALTER ROLE, GRANT and COMMENT ON ROLE / SECURITY LABEL ON ROLE. Role settings that
 * load libraries into server sessions (session_preload_libraries, local_preload_libraries,
 * dynamic_library_path) are refused too. Anything else refuses the whole collection before
 * a statement runs.
 */
import { CorruptionError } from '../../core/errors.js';

/** Characters of hostile input quoted in an error. */
const PREVIEW = 60;

function preview(text: string): string {
  // eslint-disable-next-line no-control-regex
  const t = text.replace(/\s+/g, ' ').trim().replace(/[\u0000-\u001f\u007f]/g, '?');
  return t.length > PREVIEW ? `${t.slice(0, PREVIEW)}…` : t;
}

export class RolesScriptError extends Error {}

const META_LINE = /^\\(?:un)?restrict\s+[A-Za-z0-9]+\s*$/;

/**
 * Splits a SQL script into statements (without the ";"), reading strings ('…', E'…'), quoted
 * identifiers, dollar quotes and comments (nested /* *\/ as PostgreSQL does) as PostgreSQL
 * does. The `\restrict` / `\unrestrict` lines pg_dumpall writes are dropped; any other
 * backslash outside a string is refused (a psql meta-command).
 */
export function splitSqlScript(script: string): string[] {
  const out: string[] = [];
  let current = '';
  let i = 0;
  const n = script.length;
  let lineStart = true;
  while (i < n) {
    const c = script[i] as string;
    if (lineStart) {
      const eol = script.indexOf('\n', i);
      const line = script.slice(i, eol < 0 ? n : eol).replace(/\r$/, '');
      if (META_LINE.test(line.trim()) && current.trim() === '') {
        i = eol < 0 ? n : eol + 1;
        continue;
      }
    }
    lineStart = false;
    if (c === '\n') {
      lineStart = true;
      current += c;
      i++;
    } else if (c === '\\') {
      throw new RolesScriptError(`a psql meta-command ("${preview(script.slice(i, i + 40))}")`);
    } else if (c === '-' && script[i + 1] === '-') {
      const eol = script.indexOf('\n', i);
      i = eol < 0 ? n : eol;
    } else if (c === '/' && script[i + 1] === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (script[j] === '/' && script[j + 1] === '*') {
          depth++;
          j += 2;
        } else if (script[j] === '*' && script[j + 1] === '/') {
          depth--;
          j += 2;
        } else j++;
      }
      if (depth > 0) throw new RolesScriptError('an unterminated /* comment');
      current += ' ';
      i = j;
    } else if (c === "'" || c === '"') {
      const escaped = c === "'" && /[Ee]$/.test(current) && !/[A-Za-z0-9_$][Ee]$/.test(current);
      let j = i + 1;
      for (;;) {
        if (j >= n) throw new RolesScriptError(`an unterminated ${c === "'" ? 'string' : 'quoted identifier'}`);
        if (escaped && script[j] === '\\') {
          j += 2;
          continue;
        }
        if (script[j] === c) {
          if (script[j + 1] === c) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      current += script.slice(i, j + 1);
      i = j + 1;
    } else if (c === '$' && !/[A-Za-z0-9_$]$/.test(current)) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i, i + 64));
      if (m) {
        const end = script.indexOf(m[0], i + m[0].length);
        if (end < 0) throw new RolesScriptError('an unterminated dollar quote');
        current += script.slice(i, end + m[0].length);
        i = end + m[0].length;
      } else {
        current += c;
        i++;
      }
    } else if (c === ';') {
      if (current.trim() !== '') out.push(current.trim());
      current = '';
      i++;
    } else {
      current += c;
      i++;
    }
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}

const ALLOWED = [/^SET\s/i, /^CREATE\s+ROLE\s/i, /^ALTER\s+ROLE\s/i, /^GRANT\s/i, /^COMMENT\s+ON\s+ROLE\s/i, /^SECURITY\s+LABEL\s+(?:FOR\s+\S+\s+)?ON\s+ROLE\s/i];
/** Settings that make the server load a library into a session: refused in ALTER ROLE … SET. */
const LIBRARY_SETTINGS = /\b(?:session_preload_libraries|local_preload_libraries|shared_preload_libraries|dynamic_library_path)\b/i;

/** Checks one statement of a roles script; throws RolesScriptError. */
export function checkRoleStatement(statement: string): void {
  if (!ALLOWED.some((re) => re.test(statement))) {
    throw new RolesScriptError(`a statement that is not SET, CREATE ROLE, ALTER ROLE, GRANT or COMMENT ON ROLE ("${preview(statement)}")`);
  }
  if (/^(?:ALTER\s+ROLE|SET)\s/i.test(statement) && LIBRARY_SETTINGS.test(statement)) {
    throw new RolesScriptError(`a setting that loads server libraries ("${preview(statement)}")`);
  }
  if (/^SET\s+(?:SESSION\s+|LOCAL\s+)?(?:ROLE|SESSION[\s_]+AUTHORIZATION)\b/i.test(statement)) {
    throw new RolesScriptError(`a change of the session's role ("${preview(statement)}")`);
  }
}

/** The statements of a roles script, every one checked; throws CorruptionError naming the first refusal. */
export function roleStatements(script: string, collection: string): string[] {
  try {
    const statements = splitSqlScript(script);
    for (const s of statements) checkRoleStatement(s);
    return statements;
  } catch (err) {
    if (!(err instanceof RolesScriptError)) throw err;
    throw new CorruptionError(
      `Refusing to restore the roles: the "${collection}" collection of the backup holds ${err.message}, which pg_dumpall --roles-only never writes. The backup was altered or damaged; nothing was run. Restore without --roles, or from another backup.`,
      { objects: [], collections: [collection] },
    );
  }
}
