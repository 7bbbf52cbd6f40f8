import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ErrorCodes, TapfitError } from '../errors';
import { syncFolder, writeFileDurably } from '../io/durable-files';
import { oneWriterPerFolder } from '../io/one-writer-per-folder';
import { claimCheckpointFolder, claimCheckpointFolderFor } from './checkpoint-claim';
import { CHECKPOINT_FORMAT } from './manifest';
import { notWritable } from './not-writable';

/**
 * The only folder names the writer gives checkpoints: `step-<n>`, or `step-<n>.<k>` for
 * the k-th later save at the same step (the earlier folder is never overwritten).
 */
export const CHECKPOINT_DIR_NAME = /^step-(\d+)(?:\.(\d+))?$/;

/**
 * The temporary entries of a save: `.tmp-<pid>-<hex>` folders and `.LATEST-<pid>-<hex>`
 * files (the pid names the writer, for whoever looks; before it was in the name,
 * `.tmp-<hex>` and `.LATEST-<hex>`), 12 hex digits. A save removes them first: it holds
 * the folder's claim, so none belongs to a save in progress; they are the leftovers of a
 * killed one. Only these exact names: the folder may hold the user's own `.tmp-*` entries.
 */
const TEMP = /^\.(?:tmp|LATEST)-(?:\d+-)?[0-9a-f]{12}$/;

/**
 * Writes a checkpoint so that a crash at any moment leaves `LATEST` naming a complete
 * one: files go to a fresh `<root>/.tmp-*` folder (each file and the folder fsynced),
 * which is renamed to a folder name not in use, the rename made durable (fsync of
 * `root`); only then is `<root>/LATEST` replaced atomically (fsynced temp file +
 * rename + fsync of `root`) and older checkpoints beyond `keep` removed. Nothing the
 * previous `LATEST` names is touched before the new checkpoint is durable. Saves to one
 * `root` from this process run one after another; one process writes to a `root` at a
 * time: each save claims it (claimCheckpointFolder), and a save into a folder that another
 * live process holds is refused, naming it. With `trainer`, the save claims the folder for
 * that trainer until it is disposed (claimCheckpointFolderFor), and is refused if another
 * live trainer of this process holds it.
 */
export function writeCheckpointDir(root: string, step: number, files: Record<string, Buffer | string>, keep = 2, trainer?: object): Promise<string> {
  return oneWriterPerFolder(root, () => writeNow(root, step, files, keep, trainer));
}

async function writeNow(root: string, step: number, files: Record<string, Buffer | string>, keep: number, trainer: object | undefined): Promise<string> {
  // The claim makes the folder (and removes what it made when a failed save leaves it empty).
  if (trainer) claimCheckpointFolderFor(trainer, root);
  const claim = claimCheckpointFolder(root);
  let written: string;
  try {
    written = await writeClaimed(root, step, files, keep);
  } catch (err) {
    try {
      claim.release();
    } catch {
      // a lock left behind: the save's own failure is the one to report
    }
    throw err;
  }
  claim.release();
  return written;
}

async function writeClaimed(root: string, step: number, files: Record<string, Buffer | string>, keep: number): Promise<string> {
  await removeStale(root);
  const tmp = path.join(root, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(tmp).catch((err) => Promise.reject(notWritable(err, root) ?? err));
  let name: string;
  try {
    for (const [file, body] of Object.entries(files)) await writeFileDurably(path.join(tmp, file), body);
    await syncFolder(tmp);
    name = await freshName(root, step);
    await fs.rename(tmp, path.join(root, name));
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw noSpace(err, root, files) ?? notWritable(err, root) ?? err;
  }
  await syncFolder(root);
  const latestTmp = path.join(root, `.LATEST-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await writeFileDurably(latestTmp, name + '\n');
    await fs.rename(latestTmp, path.join(root, 'LATEST'));
  } catch (err) {
    await fs.rm(latestTmp, { force: true });
    throw noSpace(err, root, files) ?? notWritable(err, root) ?? err;
  }
  await syncFolder(root);
  await pruneOld(root, name, keep);
  return path.join(root, name);
}

/**
 * A full disk or quota, said in the user's terms. The save's temporary files are removed
 * and nothing the previous LATEST names was touched, so that checkpoint is still whole.
 */
function noSpace(err: unknown, root: string, files: Record<string, Buffer | string>): TapfitError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return undefined;
  const bytes = Object.values(files).reduce((n, body) => n + Buffer.byteLength(body), 0);
  return new TapfitError(
    ErrorCodes.CHECKPOINT,
    `checkpoint: cannot save under '${root}': ${code === 'ENOSPC' ? 'no space left on the device' : 'the disk quota is exhausted'} ` +
      `(this checkpoint needs ${(bytes / 2 ** 20).toFixed(1)} MiB, and a save needs room for one more checkpoint than it keeps). ` +
      'The previous checkpoint is intact. Free space, or save to another folder.',
    { cause: err },
  );
}

/**
 * `<root>/<name>` for the name `<root>/LATEST` holds, or `root` itself when there is no
 * LATEST (a step folder passed directly). A root holding step folders but no LATEST is
 * refused, naming them (see noLatest).
 */
export async function latestCheckpointDir(root: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(path.join(root, 'LATEST'), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      if ((await fs.stat(root).catch(() => null)) === null) {
        throw new TapfitError(ErrorCodes.CHECKPOINT, `cannot resume from '${root}': there is no such folder. Pass the folder save() wrote to.`, { cause: err });
      }
      await noLatest(root);
      return root;
    }
    if (code === 'ENOTDIR') {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `cannot resume from '${root}': it is a file, not a checkpoint folder. Pass the folder save() wrote to.`, { cause: err });
    }
    if (code === 'EISDIR') {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `cannot resume from '${root}': its LATEST is a folder, not the file save() writes (naming the newest step-* folder). Remove it and write the name of the step-* folder to continue from into a file '${path.join(root, 'LATEST')}'.`,
        { cause: err },
      );
    }
    throw err;
  }
  const name = text.trim();
  if (!CHECKPOINT_DIR_NAME.test(name)) {
    throw new TapfitError(
      ErrorCodes.CHECKPOINT,
      `cannot resume from '${root}': its LATEST file holds ${JSON.stringify(name.slice(0, 80))}, which is not a checkpoint folder name (step-<n> or step-<n>.<k>); ` +
        `the file was edited or is corrupt. Write the name of one of the step-* folders under '${root}' into LATEST.`,
    );
  }
  if ((await fs.stat(path.join(root, name)).catch(() => null)) === null) {
    // Deleted, or not copied along with LATEST: say so, rather than that manifest.json is missing.
    const names = (await checkpointNames(root)).sort((a, b) => order(a)[0] - order(b)[0] || order(a)[1] - order(b)[1]);
    throw new TapfitError(
      ErrorCodes.CHECKPOINT,
      `cannot resume from '${root}': its LATEST file names ${name}, which is not there ` +
        (names.length ? `(the folder holds ${names.join(', ')}). Write the name of the one to continue from into LATEST (the newest is ${names.at(-1)}).` : '(the folder holds no step-* folder). Copy that checkpoint folder along, or start a fresh run.'),
    );
  }
  return path.join(root, name);
}

/**
 * A root with step folders but no LATEST and no manifest.json of its own: a first save
 * killed after its folder was renamed into place and before LATEST was written leaves
 * this (or LATEST was removed). Which folder to continue from is the user's call (another
 * run's folders may be there too), so name them and both ways on instead of picking one.
 */
async function noLatest(root: string): Promise<void> {
  let names: string[];
  try {
    if ((await fs.stat(path.join(root, 'manifest.json')).catch(() => null)) !== null) return;
    names = await checkpointNames(root);
  } catch {
    return; // no such folder (or not one): the loader reports the missing manifest
  }
  if (names.length === 0) return;
  names.sort((a, b) => order(a)[0] - order(b)[0] || order(a)[1] - order(b)[1]);
  const newest = names.at(-1)!;
  throw new TapfitError(
    ErrorCodes.CHECKPOINT,
    `cannot resume from '${root}': it holds ${names.join(', ')} but no LATEST file naming the newest (a first save killed before it wrote LATEST leaves this). ` +
      `Write the name of the step-* folder to continue from into '${path.join(root, 'LATEST')}' (the newest is ${newest}), or resume from '${path.join(root, newest)}' directly.`,
  );
}

/** Removes the temporary entries of killed saves (see TEMP); the caller holds the folder's claim. */
async function removeStale(root: string): Promise<void> {
  for (const entry of await fs.readdir(root)) {
    if (TEMP.test(entry)) await fs.rm(path.join(root, entry), { recursive: true, force: true });
  }
}

/** Step and save count of a checkpoint folder name (`step-7` is [7, 0], `step-7.2` is [7, 2]). */
function order(name: string): [number, number] {
  const m = CHECKPOINT_DIR_NAME.exec(name)!;
  return [Number(m[1]), Number(m[2] ?? 0)];
}

/** `step-<n>` if no folder of that step exists, else `step-<n>.<k>` after the newest one. */
async function freshName(root: string, step: number): Promise<string> {
  const sameStep = (await checkpointNames(root)).map(order).filter(([s]) => s === step);
  if (sameStep.length === 0) return `step-${step}`;
  return `step-${step}.${Math.max(...sameStep.map(([, k]) => k)) + 1}`;
}

async function checkpointNames(root: string): Promise<string[]> {
  return (await fs.readdir(root)).filter((n) => CHECKPOINT_DIR_NAME.test(n));
}

/**
 * Keeps the `keep` newest saves: newest by when their files were written (the folder's
 * mtime), not by step number, so that a new run in a folder holding an older run's
 * higher-numbered checkpoints removes those, not its own last one. Ties (a coarse clock)
 * go by step and save count. Only checkpoints are counted and removed (see isCheckpoint).
 */
async function pruneOld(root: string, current: string, keep: number): Promise<void> {
  const names = (await checkpointNames(root)).filter((n) => n !== current);
  const checkpoints = (await Promise.all(names.map(async (name) => ((await isCheckpoint(path.join(root, name))) ? name : null)))).filter((n) => n !== null);
  const older = await Promise.all(checkpoints.map(async (name) => ({ name, written: (await fs.stat(path.join(root, name))).mtimeMs, at: order(name) })));
  older.sort((a, b) => b.written - a.written || b.at[0] - a.at[0] || b.at[1] - a.at[1]);
  for (const old of older.slice(Math.max(0, keep - 1))) await fs.rm(path.join(root, old.name), { recursive: true, force: true });
}

/**
 * Whether a `step-*` entry is a checkpoint tapfit wrote: a folder whose manifest.json says
 * `format: 'tapfit-checkpoint'` (every save's folder is renamed into place whole, manifest
 * included). Anything else by that name is the user's, and pruning leaves it alone; so is
 * a checkpoint whose manifest is damaged (it is kept rather than guessed at).
 */
async function isCheckpoint(dir: string): Promise<boolean> {
  try {
    const manifest: unknown = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    return typeof manifest === 'object' && manifest !== null && (manifest as { format?: unknown }).format === CHECKPOINT_FORMAT;
  } catch {
    return false;
  }
}
