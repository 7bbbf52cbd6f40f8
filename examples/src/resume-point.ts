import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHECKPOINT_DIR_NAME, ErrorCodes, TapfitError } from '@tapfit/core';

/**
 * Refuses `--resume` before anything loads when `checkpoint.dir` holds no checkpoint to
 * continue from (a missing or empty folder: the first run never saved, or a typo), saying
 * how to start instead; core's loader would only say that manifest.json is missing.
 */
export function checkResumable(dir: string): void {
  if (fs.existsSync(path.join(dir, 'LATEST')) || fs.existsSync(path.join(dir, 'manifest.json'))) return;
  const exists = fs.existsSync(dir);
  const saves = exists ? fs.readdirSync(dir).filter((n) => CHECKPOINT_DIR_NAME.test(n)) : [];
  const why = !exists ? 'the folder does not exist' : saves.length ? `it holds ${saves.join(', ')} but no LATEST file naming the newest` : 'it holds no checkpoint';
  const fix = saves.length
    ? `Write the name of the step-* folder to continue from into '${path.join(dir, 'LATEST')}', or run without --resume to start a fresh run (which writes over them).`
    : 'Run without --resume to start a fresh run.';
  throw new TapfitError(ErrorCodes.CHECKPOINT, `--resume: no checkpoint to continue from in 'checkpoint.dir' ('${dir}'): ${why}. ${fix}`);
}
