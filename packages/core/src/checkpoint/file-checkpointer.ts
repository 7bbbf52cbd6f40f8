import 'reflect-metadata'; // tsyringe needs it loaded before any decorator runs
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

  async save(root: string, step: number, files: CheckpointFiles): Promise<string> {
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `checkpoint: cannot save at step ${step} under '${root}': the step must be a non-negative integer (the number of updates applied).`);
    }
    if (!Number.isSafeInteger(this.keep) || this.keep < 1) {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `checkpoint: keep is ${this.keep}; set FileCheckpointer.keep to a positive integer (how many checkpoints to keep).`);
    }
    return writeCheckpointDir(root, step, { 'manifest.json': JSON.stringify(files.manifest), 'tensors.bin': files.tensors }, this.keep);
  }

  async load(root: string): Promise<CheckpointFiles & { dir: string }> {
    const dir = await latestCheckpointDir(root);
    let text: string;
    let tensors: Buffer;
    try {
      text = await fs.readFile(path.join(dir, 'manifest.json'), 'utf8');
      tensors = await fs.readFile(path.join(dir, 'tensors.bin'));
    } catch (err) {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `cannot resume from '${root}': ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `no complete checkpoint there (missing ${path.basename((err as NodeJS.ErrnoException).path ?? 'manifest.json')})` : (err as Error).message}.`,
        { cause: err },
      );
    }
    let manifest: unknown;
    try {
      manifest = JSON.parse(text);
    } catch {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `cannot resume from '${dir}': manifest.json is not valid JSON; the checkpoint is corrupt.`);
    }
    return { manifest, tensors, dir };
  }
}
