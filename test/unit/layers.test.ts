/**
 * The layering docs/architecture.md draws: each folder of src/ imports only from folders below
 * it. A violation names the file and the import, so the fix (move the code down, or give the
 * lower layer an interface the upper one implements, as jobs/ports.ts does) is plain.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Lowest first, as in docs/architecture.md (which lists them highest first). */
const LAYERS = ['core', 'storage', 'repo', 'sources', 'jobs', 'catalog', 'alerts', 'config', 'server', 'sdk', 'cli'];
const SRC = join(import.meta.dirname, '..', '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('layers', () => {
  it('every folder of src/ imports only from the folders below it', () => {
    const violations: string[] = [];
    let imports = 0;
    for (const file of files(SRC)) {
      const from = relative(SRC, file).split('/')[0] ?? '';
      const rank = LAYERS.indexOf(from);
      if (rank < 0) continue;
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
        imports++;
        const to = relative(SRC, normalize(join(dirname(file), m[1] as string))).split('/')[0] ?? '';
        const target = LAYERS.indexOf(to);
        if (target > rank) violations.push(`${relative(SRC, file)} imports ${m[1]} (${from} must not depend on ${to})`);
      }
    }
    expect(imports).toBeGreaterThan(300);
    expect(violations).toEqual([]);
  });
});
