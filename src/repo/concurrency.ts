// Moved to core/errgroup.ts (errgroup semantics: the first failure stops the siblings). Kept so
// that branches written against the old path still build; import from core/errgroup.js.
export { mapLimit } from '../core/errgroup.js';
