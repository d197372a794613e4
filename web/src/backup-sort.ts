/**
 * The Backups screen's sort keys (GET /v1/backups `sort`) and the phone's "Sort by" choices: every
 * key in both orders, so whatever a column header (or a shared link) sorts by, the select shows it.
 */
export const SORTABLE = { id: 'Backup', createdAt: 'Created', logicalBytes: 'Size', storedBytes: 'Stored', expiresAt: 'Expires' } as const;
export type SortKey = keyof typeof SORTABLE;
export type SortOrder = 'asc' | 'desc';

/** Each key's wording per order, first the order a header's first click gives (desc). */
const WORDS: Record<SortKey, Record<SortOrder, string>> = {
  createdAt: { desc: 'Newest first', asc: 'Oldest first' },
  logicalBytes: { desc: 'Largest first', asc: 'Smallest first' },
  storedBytes: { desc: 'Most stored first', asc: 'Least stored first' },
  expiresAt: { desc: 'Expiring latest', asc: 'Expiring soonest' },
  id: { desc: 'Id, Z to A', asc: 'Id, A to Z' },
};

/** [value "key:order", label] for every key × order. */
export const SORT_CHOICES: readonly (readonly [string, string])[] = (Object.keys(WORDS) as SortKey[]).flatMap((k) => (['desc', 'asc'] as const).map((o) => [`${k}:${o}`, WORDS[k][o]] as const));

/** The sort a hash query names, else the default (newest first): never a value the select lacks. */
export function sortOf(sort: string | undefined, order: string | undefined): { sort: SortKey; order: SortOrder } {
  return { sort: sort !== undefined && Object.hasOwn(SORTABLE, sort) ? (sort as SortKey) : 'createdAt', order: order === 'asc' ? 'asc' : 'desc' };
}
