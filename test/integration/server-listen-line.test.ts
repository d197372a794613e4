/**
 * `cairn server --listen 127.0.0.1:0` prints the address it chose on stdout whatever
 * --log-level says: the port is the command's output, not a log line a level can hide.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-listen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts a server, waits for its stdout to name a URL, checks that URL answers, stops it. */
async function listeningLine(level: string): Promise<{ stdout: string; stderr: string; url: string }> {
  const child = spawn(process.execPath, [CLI, 'server', '--listen', '127.0.0.1:0', '--data-dir', join(dir, level), '--log-level', level], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      // No address within 15 s (a start-up takes well under 1 s here): fail rather than hang.
      const timer = setTimeout(() => reject(new Error(`no address on stdout after 15 s; stdout: ${stdout}; stderr: ${stderr}`)), 15_000);
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /^cairn server listening on (http:\/\/127\.0\.0\.1:(\d+))$/m.exec(stdout);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited (${code}) before printing its address: ${stdout}${stderr}`)));
    });
    // The printed port is the real one: the server answers there.
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    return { stdout, stderr, url };
  } finally {
    child.kill('SIGTERM');
    await closed;
  }
}

describe('cairn server: the listening address', () => {
  for (const level of ['warn', 'error']) {
    it(`is printed on stdout at --log-level ${level}, where no info line is logged`, async () => {
      const { stdout, stderr, url } = await listeningLine(level);
      expect(url).not.toMatch(/:0$/);
      expect(stdout.trim().split('\n')).toEqual([`cairn server listening on ${url}`]);
      expect(stderr).not.toContain('"level":"info"');
    }, 30_000);
  }

  it('at info, stdout has the line too and the log keeps its start-up line', async () => {
    const { stdout, stderr, url } = await listeningLine('info');
    expect(stdout).toContain(`cairn server listening on ${url}\n`);
    expect(stderr).toMatch(/"level":"info","msg":"cairn server listening on http/);
  }, 30_000);
});
