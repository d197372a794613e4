/**
 * Advice that fits an archive. The repository code's messages say what fixes a repository
 * (`cairn repair`, `cairn verify <id>` on the repository in use); for a read-only `.cairn` archive
 * repair can write nothing, and a verify without `--repo FILE` checks another repository. The CLI
 * passes the messages of a command that read an archive through here (src/cli/main.ts).
 */

/** What replaces a suggestion to run cairn repair, for the archive at `file`. */
export function archiveRepairAdvice(file: string): string {
  return `${file} is a read-only archive, which cairn repair cannot write: export the backups again from the repository they came from (cairn export … -o FILE.cairn), or, if the archive itself is intact, import it into a repository (cairn import ${file} --repo <repo>) and repair there.`;
}

/**
 * `text` with its `cairn repair` suggestions replaced by archiveRepairAdvice (once, at the end)
 * and its `cairn verify [id]` suggestions naming `--repo FILE`. Text without either is returned
 * unchanged.
 */
export function adviseForArchive(text: string, file: string): string {
  const out = text.replace(/cairn verify(?!(?: [a-z0-9][a-z0-9_-]*)? --repo)(?: ([a-z0-9][a-z0-9_-]*)(?= --))?/g, (_m, id: string | undefined) => `cairn verify${id ? ` ${id}` : ''} --repo ${file}`);
  if (!out.includes('cairn repair') || out.includes(archiveRepairAdvice(file))) return out;
  return `${withoutRepairAdvice(out)} ${archiveRepairAdvice(file)}`;
}

/** `text` without its suggestions to run cairn repair, ending in a full stop. */
export function withoutRepairAdvice(text: string): string {
  if (!text.includes('cairn repair')) return text;
  let out = text
    .replace(/ and cairn repair\b/g, '')
    .replace(/,? then cairn repair\b/g, '')
    .replace(/,? or run cairn repair, which quarantines it/g, '')
    .replace(/;? ?cairn repair (?:rebuilds|removes|rewrites|recorded)[^.;)]*/g, '')
    .replace(/[;,]? ?(?:otherwise )?[Rr]un cairn repair\b[^.;)]*[.;]?/g, '.');
  out = out.replace(/\s+\./g, '.').replace(/\.{2,}/g, '.').replace(/:\./g, '.').trim();
  if (!/[.!?)]$/.test(out)) out += '.';
  return out;
}
