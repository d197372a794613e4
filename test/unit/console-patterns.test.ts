/**
 * Every `pattern` attribute in the console (web/src): browsers compile it with the `v` flag
 * (HTML spec), where a bare `-` or other syntax characters inside a character class are errors;
 * an invalid pattern is silently ignored, so the field goes unchecked. Each must compile under `v`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../web/src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : []));
}

/** pattern="…" (JSX: no escapes processed) and pattern={'…'} / pattern={"…"} (a JS string literal). */
function patterns(): { file: string; pattern: string }[] {
  const found: { file: string; pattern: string }[] = [];
  for (const file of files(root)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\bpattern=(?:"([^"]*)"|\{\s*(['"`])((?:\\.|(?!\2).)*)\2\s*\})/g)) {
      found.push({ file, pattern: m[1] ?? (JSON.parse(`"${(m[3] as string).replace(/"/g, '\\"')}"`) as string) });
    }
  }
  return found;
}

describe('console input patterns', () => {
  const found = patterns();
  it('finds the pattern attributes', () => {
    expect(found.length).toBeGreaterThan(0);
  });
  it.each(found.map((f) => [f.file.slice(root.length + 1), f.pattern]))('%s: %s compiles with the v flag, as browsers compile it', (_file, pattern) => {
    // The browser wraps it as ^(?:pattern)$ with the v flag.
    expect(() => new RegExp(`^(?:${pattern})$`, 'v')).not.toThrow();
  });
  it('the schedule name pattern accepts what the server accepts', () => {
    const name = found.find((f) => f.file.endsWith('schedules.tsx'));
    const re = new RegExp(`^(?:${name?.pattern ?? ''})$`, 'v');
    expect(['nightly', 'a-b_c', '0x'].every((n) => re.test(n))).toBe(true);
    expect(['-a', 'A', 'a b', ''].some((n) => re.test(n))).toBe(false);
  });
});
