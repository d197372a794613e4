/**
 * Raw HTTP answers of a test server (status, text, parsed JSON when it is JSON), and waiting for
 * a job's end through the SDK (the same wait every client uses), for tests that send hostile
 * requests the SDK's types would not let through.
 */
import type { JobRecord } from '../../src/catalog/types.js';
import { CairnClient } from '../../src/sdk/index.js';

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
