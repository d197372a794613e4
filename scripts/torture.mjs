#!/usr/bin/env node
// `npm run torture -- …`: compiles the torture harness (test/torture/*.ts, TypeScript like the
// rest of the tests) into .torture-build/ with the project's own tsc, then runs it. The CLI it
// drives is the built one (dist/, via bin/cairn.js): `npm run torture` builds first.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const tsc = join(require.resolve('typescript/package.json'), '..', 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'test', 'torture', 'tsconfig.json')], { stdio: 'inherit' });
if (r.status !== 0) {
  console.error('torture: compiling test/torture failed (see above)');
  process.exit(r.status ?? 1);
}
await import(pathToFileURL(join(root, '.torture-build', 'test', 'torture', 'main.js')).href);
