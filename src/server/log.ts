/**
 * The server's structured log: one line per event on stderr, as JSON (default) or logfmt, with
 * a level threshold. Tiny on purpose (docs/library-choices.md): the server writes a handful of
 * event kinds, and every value goes through scrubSecrets on the way out, so no field can carry
 * a password or a token whatever a caller puts in it.
 */
import { UsageError } from '../core/errors.js';
import { scrubSecrets } from './redact.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'logfmt'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Values a log line carries besides its time, level and message (undefined fields are left out). */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Whether lines of `level` are written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  /** Lowest level written (default info). */
  level?: LogLevel;
  format?: LogFormat;
  /** Where each line goes, without its newline (default: stderr). */
  write?: (line: string) => void;
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * A logger writing one line per call at or above `level`: JSON objects
 * `{"time":"…","level":"info","msg":"…",…fields}` or logfmt `time=… level=info msg="…" key=value`.
 * Every string (message and fields) is scrubbed of secrets (scrubSecrets) first.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const format = options.format ?? 'json';
  const write = options.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}): void => {
    if (RANK[level] < threshold) return;
    const record: Record<string, string | number | boolean | null> = { time: now().toISOString(), level, msg: scrubSecrets(msg) };
    for (const [k, v] of Object.entries(fields)) {
      // time, level and msg are the line's own: a field of that name cannot replace them.
      if (v === undefined || k in record) continue;
      record[k] = typeof v === 'string' ? scrubSecrets(v) : v;
    }
    write(format === 'json' ? JSON.stringify(record) : logfmt(record));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    enabled: (level) => RANK[level] >= threshold,
  };
}

/** `key=value` pairs; values with spaces, quotes, "=" or control characters in double quotes, escaped. */
function logfmt(record: Record<string, string | number | boolean | null>): string {
  return Object.entries(record)
    .map(([k, v]) => {
      const text = v === null ? 'null' : String(v);
      // eslint-disable-next-line no-control-regex -- control characters must be quoted and escaped
      const plain = text !== '' && !/[\s"=\\\u0000-\u001f\u007f]/.test(text);
      return `${k}=${plain ? text : JSON.stringify(text)}`;
    })
    .join(' ');
}

/** A --log-level / CAIRN_LOG_LEVEL value. @throws UsageError naming the accepted levels. */
export function parseLogLevel(value: string): LogLevel {
  const v = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new UsageError(`Unknown log level "${value.slice(0, 32)}": use one of ${LOG_LEVELS.join(', ')} (--log-level or CAIRN_LOG_LEVEL).`);
}

/** A --log-format value. @throws UsageError naming the accepted formats. */
export function parseLogFormat(value: string): LogFormat {
  const v = value.trim().toLowerCase();
  if ((LOG_FORMATS as readonly string[]).includes(v)) return v as LogFormat;
  throw new UsageError(`Unknown log format "${value.slice(0, 32)}": use json or logfmt (--log-format).`);
}
