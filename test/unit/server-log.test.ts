/** Issue 16: the server's structured log lines (JSON and logfmt), its level threshold, and secrets kept out. */
import { describe, expect, it } from 'vitest';
import { createLogger, parseLogFormat, parseLogLevel } from '../../src/server/log.js';

const at = () => new Date('2026-01-02T03:04:05.000Z');

describe('createLogger', () => {
  it('JSON lines: time, level, msg first, then the fields; undefined fields left out; own keys not replaced', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), now: at });
    log.info('job ended', { job: 'backup-1', state: 'SUCCESS', durationMs: 12, code: undefined, level: 'error' });
    expect(lines).toEqual(['{"time":"2026-01-02T03:04:05.000Z","level":"info","msg":"job ended","job":"backup-1","state":"SUCCESS","durationMs":12}']);
  });

  it('below the level nothing is written; enabled() says so', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', write: (l) => lines.push(l), now: at });
    log.debug('a');
    log.info('b');
    log.warn('c');
    log.error('d');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['c', 'd']);
    expect([log.enabled('info'), log.enabled('warn')]).toEqual([false, true]);
  });

  it('logfmt: plain values bare, others quoted and escaped', () => {
    const lines: string[] = [];
    createLogger({ format: 'logfmt', write: (l) => lines.push(l), now: at }).warn('request failed', { method: 'GET', path: '/v1/a b', status: 404, empty: '', quote: 'say "hi"\n' });
    expect(lines).toEqual(['time=2026-01-02T03:04:05.000Z level=warn msg="request failed" method=GET path="/v1/a b" status=404 empty="" quote="say \\"hi\\"\\n"']);
  });

  it('passwords in URLs, bearer and cairn tokens are scrubbed from the message and every field', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), now: at });
    log.error('failed on postgres://app:S3cret@db/shop', { source: 'postgres://app:S3cret@db/shop', auth: 'Bearer abcdef', token: 'cairn_0123456789ab_SECRETPART' });
    expect(lines[0]).not.toMatch(/S3cret|abcdef|SECRETPART/);
    expect(lines[0]).toContain('postgres://app:***@db/shop');
  });

  it('levels and formats are checked with a usage error naming the accepted values', () => {
    expect(parseLogLevel('WARN')).toBe('warn');
    expect(() => parseLogLevel('verbose')).toThrow(/use one of debug, info, warn, error/);
    expect(parseLogFormat('logfmt')).toBe('logfmt');
    expect(() => parseLogFormat('xml')).toThrow(/json or logfmt/);
  });
});
