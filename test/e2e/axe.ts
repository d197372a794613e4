/**
 * axe-core in the page: injects the axe-core package's own source (`axe.source`) and runs it on
 * the whole document. The console's Content-Security-Policy (script-src 'self') does not stop
 * this: playwright evaluates through the DevTools protocol, not through a <script> element.
 */
import axe from 'axe-core';
import type { Page } from 'playwright-core';

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/** Serious and critical violations on the page as it is now (the bar); lesser ones are ignored. */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  const injected = await page.evaluate(() => typeof (globalThis as { axe?: unknown }).axe !== 'undefined');
  if (!injected) await page.evaluate(axe.source);
  const all = await page.evaluate(async () => {
    const run = (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown[]; failureSummary?: string }> }> }> } }).axe;
    const r = await run.run((globalThis as unknown as { document: unknown }).document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => `${JSON.stringify(n.target)} ${n.failureSummary ?? ''}`) }));
  });
  return all.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** One line per violation and node, for an assertion message a reader can act on. */
export function describeViolations(screen: string, violations: AxeViolation[]): string {
  return violations.map((v) => `${screen}: ${v.impact} ${v.id} (${v.help})\n  ${v.nodes.join('\n  ')}`).join('\n');
}
