import 'reflect-metadata'; // tsyringe needs it loaded before any decorator runs
import { constants } from 'node:buffer';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { injectable } from 'tsyringe';
import { ErrorCodes, TapfitError } from '../errors';
import { latestCheckpointDir, writeCheckpointDir } from './atomic-dir';

/** What a checkpoint is on disk: a JSON manifest and one binary tensor file. */
export interface CheckpointFiles {
  manifest: unknown;
  tensors: Buffer;
}

/**
 * Stores checkpoints as `<root>/step-<n>/{manifest.json,tensors.bin}` (`step-<n>.<k>` for
 * a later save at the same step) plus a `LATEST` pointer, written so that a crash never
 * loses the last complete one (see writeCheckpointDir); keeps the newest `keep` (default 2).
 */
@injectable()
export class FileCheckpointer {
  keep = 2;
  /**
   * The trainer whose checkpointer this is (the Trainer sets it on the one it registers):
   * its first save into a folder claims the folder for it until it is disposed, and a save
   * there by another live trainer of this process is refused. Unset (a FileCheckpointer of
   * your own): each save claims its folder only while it writes.
   */
  trainer?: object;

  async save(root: string, step: number, files: CheckpointFiles): Promise<string> {
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `checkpoint: cannot save at step ${step} under '${root}': the step must be a non-negative integer (the number of updates applied).`);
    }
    if (!Number.isSafeInteger(this.keep) || this.keep < 1) {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `checkpoint: keep is ${this.keep}; set FileCheckpointer.keep to a positive integer (how many checkpoints to keep).`);
    }
    return writeCheckpointDir(root, step, { 'manifest.json': JSON.stringify(files.manifest), 'tensors.bin': files.tensors }, this.keep, this.trainer);
  }

  async load(root: string): Promise<CheckpointFiles & { dir: string }> {
    const dir = await latestCheckpointDir(root);
    let text: string;
    let tensors: Buffer;
    try {
      text = await fs.readFile(path.join(dir, 'manifest.json'), 'utf8');
      tensors = await readWhole(path.join(dir, 'tensors.bin'));
    } catch (err) {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `cannot resume from '${root}': ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `no complete checkpoint there (missing ${path.basename((err as NodeJS.ErrnoException).path ?? 'manifest.json')})` : (err as Error).message}.`,
        { cause: err },
      );
    }
    let manifest: unknown;
    try {
      // An editor may save it with a byte-order mark, which JSON.parse refuses.
      manifest = JSON.parse(text.replace(/^\uFEFF/, ''));
    } catch {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `cannot resume from '${dir}': manifest.json is not valid JSON; the checkpoint is corrupt.`);
    }
    return { manifest, tensors, dir };
  }
}

/**
 * A file's bytes in one Buffer. fs.readFile stops at 2 GiB; a checkpoint's tensors.bin may
 * be up to Node's largest Buffer (4 GiB), so read it in parts.
 */
async function readWhole(file: string): Promise<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size > constants.MAX_LENGTH) {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `${file} has ${size} bytes, more than Node's largest Buffer (${constants.MAX_LENGTH}); it was not written by this version of tapfit.`);
    }
    const bytes = Buffer.allocUnsafe(size);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await fh.read(bytes, at, Math.min(READ_PART, size - at), at);
      if (bytesRead === 0) throw new TapfitError(ErrorCodes.CHECKPOINT, `${file} ended at byte ${at} while reading ${size}; it changed during the read.`);
      at += bytesRead;
    }
    return bytes;
  } finally {
    await fh.close();
  }
}

/** Bytes per read call (well under the 2 GiB a single read accepts). */
const READ_PART = 1 << 30;
