/** The `.cairn` archive format: writer (export), ArchiveStorage (a read-only repository over the file). */
export { ArchiveStorage, isArchiveFile, scanArchive, type ArchiveContents } from './reader.js';
export { ArchiveWriter, type ArchiveSummary } from './writer.js';
export * from './format.js';
