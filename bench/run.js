// `npm run bench`: the PostgreSQL benchmarks against pg_dump/pg_restore arrive with issue 4.
// Until then it runs the library measurements that chose cairn's chunker, hash and compressors.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./libs.mjs', import.meta.url));
const r = spawnSync(process.execPath, [script, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
