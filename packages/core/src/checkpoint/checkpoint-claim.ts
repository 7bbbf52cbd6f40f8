import * as fs from 'node:fs';
import * as os from 'node:os';
import { ErrorCodes, TapfitError } from '../errors';
import { claimFolder, LockLeftBehind, type FolderClaim } from '../io/folder-claim';
import { notWritable } from './not-writable';

/**
 * Claims a checkpoint folder for this process: one run per checkpoint folder. Every save
 * claims its folder while it writes, a trainer's saves for as long as the trainer lives
 * (claimCheckpointFolderFor); a run claims it for its whole length (the tapfit CLI does,
 * before it trains), so that a second run into the same folder is refused at once, not at
 * a save that happens to overlap one of the first run's. While a live process holds the
 * folder, this throws a `TAPFIT_E_CHECKPOINT` error naming the folder, that process and
 * the fix. Release the claim when the run ends (a process that exits drops its claims).
 * It claims the folder for the process, not for a trainer: the first trainer that saves
 * there holds it within the process (claimCheckpointFolderFor). The folder and missing
 * parents it makes are removed at release while empty (a refused run leaves nothing);
 * a lock file that cannot be removed then (a read-only remount) is a `TAPFIT_E_CHECKPOINT`
 * error naming it, thrown after the claim is given up all the same.
 */
export function claimCheckpointFolder(dir: string): FolderClaim {
  const claim = claimRaw(dir);
  return {
    release() {
      try {
        claim.release();
      } catch (err) {
        throw err instanceof LockLeftBehind ? locksLeftBehind([{ dir, err }]) : err;
      }
    },
  };
}

/** claimCheckpointFolder's claim, whose release throws the bare LockLeftBehind (collected by releaseCheckpointFoldersOf). */
function claimRaw(dir: string): FolderClaim {
  try {
    return claimFolder(dir, (holder, lock) => {
      const who = `pid ${holder.pid}${holder.host === os.hostname() ? '' : ` on host '${holder.host}'`}, since ${holder.since}`;
      return inUse(dir, who, `wait for that run to end. If no such run is alive any more, delete '${lock}'.`);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `checkpoint: cannot save under '${dir}': it is a file, or lies under one. Pass a folder path for checkpoints.`, { cause: err });
    }
    // The lock is the first file a save writes: a folder it cannot write to fails here.
    throw notWritable(err, dir) ?? err;
  }
}

/**
 * The error for checkpoint folders released whose lock files stayed. Nothing else is
 * wrong: the checkpoints are whole and the folders are given up in this process; only
 * other processes still see them held, until this one exits.
 */
function locksLeftBehind(failures: readonly { dir: string; err: LockLeftBehind }[]): TapfitError {
  const each = failures.map(({ dir, err }) => `'${dir}' (its lock file '${err.lockFile}': ${err.cause instanceof Error ? err.cause.message : String(err.cause)})`);
  const files = failures.map(({ err }) => `'${err.lockFile}'`).join(', ');
  const [one] = failures;
  return new TapfitError(
    ErrorCodes.CHECKPOINT,
    `checkpoint: released ${failures.length === 1 ? 'the checkpoint folder' : `${failures.length} checkpoint folders`} ${each.join(', ')}, but could not remove ${failures.length === 1 ? 'its lock file' : 'their lock files'}. ` +
      `The checkpoints are intact and this process may claim the ${failures.length === 1 ? 'folder' : 'folders'} again; other processes are refused until pid ${process.pid} exits, then take the stale lock over. ` +
      `To free ${failures.length === 1 ? 'it' : 'them'} now, delete ${files} by hand (once the file system is writable again).`,
    { cause: failures.length === 1 ? one!.err : new AggregateError(failures.map((f) => f.err)) },
  );
}

/** The TAPFIT_E_CHECKPOINT error for a folder another run holds: `who` is that run, `orElse` the fix besides a folder of its own. */
function inUse(dir: string, who: string, orElse: string): TapfitError {
  return new TapfitError(
    ErrorCodes.CHECKPOINT,
    `checkpoint folder '${dir}' is in use by another tapfit run (${who}): two runs saving into one folder would replace each other's LATEST and prune each other's checkpoints. ` +
      `Give each run its own checkpoint folder (one run per checkpoint folder), or ${orElse}`,
  );
}

/** A trainer's hold on a folder it saved into: the trainer (weakly), the folder as it named it, when, and its claim of the folder for the process. */
interface TrainerHold {
  trainer: WeakRef<object>;
  dir: string;
  since: string;
  claim: FolderClaim;
}

/** The folders trainers of this process hold, by real path. */
const holds = new Map<string, TrainerHold>();
/** The folders (real paths) each trainer holds. */
const heldBy = new WeakMap<object, Set<string>>();
/** A trainer dropped without dispose() gives its folders up once it is garbage-collected. */
const collected = new FinalizationRegistry<Set<string>>((folders) => {
  for (const key of folders) {
    const hold = holds.get(key);
    if (!hold || hold.trainer.deref() !== undefined) continue;
    try {
      drop(key, hold);
    } catch {
      // a lock it cannot remove, and no one to tell (nothing may throw here): taken over as stale once this process exits
    }
  }
});

/**
 * A trainer's save into `dir`: its first one claims the folder for that trainer until
 * `releaseCheckpointFoldersOf(trainer)` (its dispose()); a save by another live trainer of
 * this process into it is refused as one by another process is (`TAPFIT_E_CHECKPOINT`),
 * because two trainers saving there would replace each other's LATEST and prune each
 * other's checkpoints just the same. The trainer's claim is also this process's claim of
 * the folder (its lock file stays until the trainer is disposed), so another process is
 * refused meanwhile, not only while a save writes. A `claimCheckpointFolder` claim held by
 * the caller is the process's, and any one trainer (the first that saves there) takes
 * the folder within it.
 */
export function claimCheckpointFolderFor(trainer: object, dir: string): void {
  const claim = claimRaw(dir); // another process holding it: refused here
  const key = fs.realpathSync(dir);
  const hold = holds.get(key);
  const holder = hold?.trainer.deref();
  if (holder) {
    claim.release(); // nested in the trainer's own claim, or refused
    if (holder === trainer) return;
    throw inUse(
      dir,
      `another trainer of this process, pid ${process.pid}, which holds it since its first save there at ${hold!.since}`,
      `dispose() that trainer first: a trainer holds the checkpoint folder it saves into until it is disposed (after that, a new trainer, Trainer.resume from the folder included, saves there).`,
    );
  }
  if (hold) drop(key, hold); // its trainer was garbage-collected without dispose()
  holds.set(key, { trainer: new WeakRef(trainer), dir, since: new Date().toISOString(), claim });
  let folders = heldBy.get(trainer);
  if (!folders) {
    heldBy.set(trainer, (folders = new Set()));
    collected.register(trainer, folders, trainer);
  }
  folders.add(key);
}

/**
 * Gives up the folders `trainer` holds (its dispose()); idempotent. Every folder is given
 * up; lock files that could not be removed are then one `TAPFIT_E_CHECKPOINT` error
 * naming each folder, its lock file and the cause.
 */
export function releaseCheckpointFoldersOf(trainer: object): void {
  const folders = heldBy.get(trainer);
  if (!folders) return;
  heldBy.delete(trainer);
  collected.unregister(trainer);
  const failures: { dir: string; err: LockLeftBehind }[] = [];
  let other: unknown;
  for (const key of folders) {
    const hold = holds.get(key);
    if (!hold || hold.trainer.deref() !== trainer) continue;
    try {
      drop(key, hold);
    } catch (err) {
      if (err instanceof LockLeftBehind) failures.push({ dir: hold.dir, err });
      else other ??= err; // the other folders are given up first
    }
  }
  if (other !== undefined) throw other;
  if (failures.length > 0) throw locksLeftBehind(failures);
}

function drop(key: string, hold: TrainerHold): void {
  holds.delete(key);
  hold.claim.release();
}
