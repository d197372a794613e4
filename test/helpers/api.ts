/**
 * Raw HTTP answers of a test server (status, text, parsed JSON when it is JSON), and waiting for
 * a job's end through the SDK (the same wait every client uses), for tests that send hostile
 * requests the SDK's types would not let through; and the scratch setup of a test server.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteTokenStore } from '../../src/catalog/tokens.js';
import type { JobRecord } from '../../src/catalog/types.js';
import { Repository } from '../../src/repo/repository.js';
import { type CairnApiError, CairnClient } from '../../src/sdk/index.js';
import { catalogFile } from '../../src/server/index.js';
import { FileSystemStorage } from '../../src/storage/fs.js';

export interface Answer {
  status: number;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read whatever came back
  json: any;
}

/** The answer's status and body; `json` is undefined when the body is not JSON. */
export async function readAnswer(res: Response): Promise<Answer> {
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/** The job's final record (SUCCESS, FAILED or CANCELED), whatever the outcome. */
export function waitJob(url: string, token: string, id: string): Promise<JobRecord> {
  return new CairnClient({ url, token }).jobs.wait(id, { pollMs: 25 }) as unknown as Promise<JobRecord>;
}

/** The SDK error a request ended in; throws (failing the test) when it succeeded instead. */
export function apiFailure(p: Promise<unknown>): Promise<CairnApiError> {
  return p.then(
    () => {
      throw new Error('expected an API error');
    },
    (e: unknown) => e as CairnApiError,
  );
}

/** A bearer token of each role. */
export interface RoleTokens {
  admin: string;
  operator: string;
  viewer: string;
}

/**
 * A scratch folder for one test server: `dataDir` (its catalog already holds a token of each
 * role; `adminName` names the admin's) and `repo`, an initialised file repository. The caller
 * starts the server on `dataDir` and removes `work` afterwards.
 */
export async function serverWork(prefix: string, { adminName = '' }: { adminName?: string } = {}): Promise<{ work: string; dataDir: string; repo: string; tokens: RoleTokens }> {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const dataDir = join(work, 'data');
  const store = new SqliteTokenStore(catalogFile(dataDir));
  const tokens = { admin: store.create('admin', adminName).token, operator: store.create('operator').token, viewer: store.create('viewer').token };
  store.close();
  const repo = join(work, 'repo');
  await Repository.init(new FileSystemStorage(repo));
  return { work, dataDir, repo, tokens };
}
