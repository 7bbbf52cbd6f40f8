import { ErrorCodes, TapfitError } from '../errors';

/** Errors of a folder the process may not write to: permissions, or a read-only mount. */
const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS']);

/**
 * A save into a folder this process cannot write (its permissions, a read-only mount such
 * as a colleague's checkpoint shared read-only), said in the user's terms; undefined for
 * any other error. Nothing was written there.
 */
export function notWritable(err: unknown, dir: string): TapfitError | undefined {
  const { code, message } = err as NodeJS.ErrnoException;
  if (!code || !NOT_WRITABLE.has(code)) return undefined;
  const why = code === 'EROFS' ? 'it is on a read-only file system' : 'this process may not write there';
  return new TapfitError(
    ErrorCodes.CHECKPOINT,
    `checkpoint: cannot save under '${dir}': ${why} (${message}). ` +
      'Save to a folder you can write to; to go on from a checkpoint you cannot write to, resume from it and save into a new folder.',
    { cause: err },
  );
}
