/**
 * The README and docs/ stand on their own: no link or path may point outside the repository
 * (a notes folder next to the clone, a path on the development machine), and every relative link
 * must name a file or folder the repository has.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Every link target in a markdown text: inline `[t](x)`, images, reference definitions, href/src. */
function linkTargets(text: string): string[] {
  const targets: string[] = [];
  for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]!);
  for (const m of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) targets.push(m[1]!);
  for (const m of text.matchAll(/\b(?:href|src)\s*=\s*["']([^"']+)["']/g)) targets.push(m[1]!);
  return targets;
}

/** Problems of one markdown file's text, `file` being its path relative to `repoRoot`. */
function linkProblems(repoRoot: string, file: string, text: string): string[] {
  const problems: string[] = [];
  const dir = dirname(join(repoRoot, file));
  const outside = (p: string): boolean => {
    const rel = relative(repoRoot, p);
    return rel === '..' || rel.startsWith('../') || isAbsolute(rel);
  };
  for (const raw of linkTargets(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(raw) || raw.startsWith('#')) continue; // URL or anchor in this file
    const target = decodeURI(raw.replace(/[#?].*$/, ''));
    if (target === '') continue;
    if (target.startsWith('/') || target.startsWith('~')) {
      problems.push(`${file}: link to ${raw} points outside the repository`);
      continue;
    }
    const resolved = resolve(dir, target);
    if (outside(resolved)) problems.push(`${file}: link to ${raw} resolves outside the repository`);
    else if (!existsSync(resolved)) problems.push(`${file}: link to ${raw} names a file the repository does not have`);
  }
  // Paths in plain text (code spans included): the development machine's folders, and `../…`
  // climbing out of the repository.
  for (const [i, line] of text.split('\n').entries()) {
    if (/(^|[^\w.-])\/work\//.test(line)) problems.push(`${file}:${i + 1}: path under /work/ (outside the repository)`);
    if (/(^|[^\w.-])(\.\.\/)*\.\.\/shared\//.test(line)) problems.push(`${file}:${i + 1}: path into ../shared (outside the repository)`);
    for (const m of line.matchAll(/(?:^|[^\w./-])((?:\.\.\/)+[\w.-]+(?:\/[\w.-]+)*)/g)) {
      if (outside(resolve(dir, m[1]!))) problems.push(`${file}:${i + 1}: path ${m[1]} resolves outside the repository`);
    }
  }
  return problems;
}

const markdownFiles = (): string[] => [
  'README.md',
  ...readdirSync(join(root, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', f)),
];

describe('links in README.md and docs/', () => {
  it('the checker finds links and paths outside the repository and missing files', () => {
    const text = [
      'see ../shared/notes/platform-findings.md for figures',
      'described in `/work/shared/notes/platform-findings.md`',
      '[notes](../../elsewhere/notes.md) and [gone](missing.md) and [up](../../README.md)',
      '[abs](/etc/passwd)',
      '[ok](cli.md#options) [web](https://example.com/x) [here](#decisions) [root](../README.md)',
    ].join('\n');
    const problems = linkProblems(root, 'docs/example.md', text);
    expect(problems).toEqual([
      'docs/example.md: link to ../../elsewhere/notes.md resolves outside the repository',
      'docs/example.md: link to missing.md names a file the repository does not have',
      'docs/example.md: link to ../../README.md resolves outside the repository',
      'docs/example.md: link to /etc/passwd points outside the repository',
      'docs/example.md:1: path into ../shared (outside the repository)',
      'docs/example.md:2: path under /work/ (outside the repository)',
      'docs/example.md:3: path ../../elsewhere/notes.md resolves outside the repository',
      'docs/example.md:3: path ../../README.md resolves outside the repository',
    ]);
  });

  it('covers the README and every docs page, and finds the README\'s links to them', () => {
    const files = markdownFiles();
    expect(files).toContain('README.md');
    expect(files).toContain(join('docs', 'architecture.md'));
    expect(files.length).toBeGreaterThan(5);
    expect(linkTargets(readFileSync(join(root, 'README.md'), 'utf8'))).toContain('docs/cli.md');
  });

  it('no file links or points outside the repository, and every relative link exists', () => {
    const problems = markdownFiles().flatMap((f) => linkProblems(root, f, readFileSync(join(root, f), 'utf8')));
    expect(problems).toEqual([]);
  });
});
