/**
 * Every failure a user can meet is a CairnError: a stable `code` for scripts and the API, a
 * human message that names the problem and the fix, and the process exit code the CLI uses.
 */
export type ErrorCode =
  | 'USAGE'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'LOCKED'
  | 'CORRUPT'
  | 'SOURCE'
  | 'STORAGE'
  | 'CANCELLED'
  | 'KEY'
  | 'LEASE_LOST'
  | 'INTERNAL';

/** Exit codes are part of the CLI contract (docs/cli.md); never renumber them. */
export const EXIT_CODES: Record<ErrorCode, number> = {
  INTERNAL: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  LOCKED: 5,
  CORRUPT: 6,
  SOURCE: 7,
  STORAGE: 8,
  KEY: 9,
  LEASE_LOST: 11,
  CANCELLED: 130,
};

export class CairnError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

/** Bad flags, bad ids, malformed URLs: the user can fix the command line. */
export class UsageError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE', message, options);
  }
}

export class NotFoundError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NOT_FOUND', message, options);
  }
}

/** The operation would overwrite or duplicate something that exists. */
export class ConflictError extends CairnError {
  /**
   * Each conflict as its own sentence, when the error lists several things in the way (a
   * restore's check): a dry run answers them one by one. Undefined: the message is the one.
   */
  readonly problems: readonly string[] | undefined;

  constructor(message: string, options?: { cause?: unknown; problems?: readonly string[] }) {
    super('CONFLICT', message, options);
    this.problems = options?.problems;
  }
}

export class LockedError extends CairnError {
  /**
   * Who holds the lock that blocked us, as people read it (`"prune" (pid 12 on host, since …)`),
   * when the error is a conflict with another holder; for "waiting for …" notices.
   */
  readonly holder: string | undefined;

  constructor(message: string, options?: { cause?: unknown; holder?: string }) {
    super('LOCKED', message, options);
    this.holder = options?.holder;
  }
}

/** Stored data does not match its hash or cannot be decoded. */
export class CorruptionError extends CairnError {
  readonly objects: string[];
  readonly collections: string[];

  constructor(message: string, details: { objects: string[]; collections?: string[] }) {
    super('CORRUPT', message);
    this.objects = details.objects;
    this.collections = details.collections ?? [];
  }
}

/** The database being backed up or restored into refused or failed. */
export class SourceError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SOURCE', message, options);
  }
}

export class StorageError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORAGE', message, options);
  }
}

/** No key slot of an encrypted repository opens with the password given. */
export class KeyError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KEY', message, options);
  }
}

/**
 * A job of a server sharing its catalog with replicas lost its lease (it could not renew it in
 * time, or another replica marked the job interrupted): it stops before committing anything.
 */
export class LeaseLostError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LEASE_LOST', message, options);
  }
}

export class CancelledError extends CairnError {
  constructor(message = 'Operation cancelled.') {
    super('CANCELLED', message);
  }
}

/** Signals that ask a process to stop: a terminal's Ctrl-C (sent to the whole process group), kill, a closed terminal. */
const STOP_SIGNALS = new Set(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']);

/**
 * A CancelledError when a child process (`tool`) ended through a stop signal: Ctrl-C in a
 * terminal reaches the whole process group, so a tool cairn runs can die of it before cairn's
 * own handler has run; that is the cancel, not a failure of the tool. Undefined otherwise.
 */
export function stoppedBySignal(tool: string, signal: NodeJS.Signals | string | null | undefined): CancelledError | undefined {
  if (signal === null || signal === undefined || !STOP_SIGNALS.has(signal)) return undefined;
  return new CancelledError(`Cancelled (${tool} was stopped by ${signal}: Ctrl-C or SIGTERM).`);
}

export function isCairnError(err: unknown): err is CairnError {
  return err instanceof CairnError;
}

/** Throws a CancelledError when the signal has fired; long loops call this between steps. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    throw reason instanceof CairnError ? reason : new CancelledError();
  }
}
