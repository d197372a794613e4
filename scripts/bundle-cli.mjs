#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/main.js and everything of ours it imports, with zod,
// commander, croner and cronstrue) into a few files under dist/bundle/, which bin/cairn.js
// loads. Why: a command's start-up was mostly Node's module loader (≈ 300 files resolved,
// stat'ed and read: 450–600 ms of a `cairn backup list` here); the bundle loads in ≈ 200 ms
// (docs/performance.md, "Start-up"). Run by `npm run build` after tsc.
//
// Every other package stays external: those with native code (better-sqlite3, zstd-napi) must
// load from their own folders, and the cloud SDKs, pg and mysql2 load only when a command
// needs them. The chunks sit one folder below dist/, as dist/cli/ and dist/server/ do, so the
// paths the code builds from import.meta.url (../../package.json, ../web/) mean the same.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const INLINE = ['zod', 'commander', 'croner', 'cronstrue'];
const out = `${root}dist/bundle`;

// Chunk names carry content hashes: old ones would pile up.
rmSync(out, { recursive: true, force: true });
await build({
  cwd: root,
  input: { main: `${root}dist/cli/main.js` },
  platform: 'node',
  logLevel: 'warn',
  // A module both imported and lazily imported simply stays in the chunk that imports it.
  onLog(level, log, handler) {
    if (log.code !== 'INEFFECTIVE_DYNAMIC_IMPORT') handler(level, log);
  },
  external: (id) => !id.startsWith('.') && !id.startsWith('/') && !id.startsWith('\0') && !INLINE.some((p) => id === p || id.startsWith(`${p}/`)),
  output: { dir: out, format: 'esm', sourcemap: false },
});
