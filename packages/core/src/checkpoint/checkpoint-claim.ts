import * as os from 'node:os';
import { ErrorCodes, TapfitError } from '../errors';
import { claimFolder, type FolderClaim } from '../io/folder-claim';

/**
 * Claims a checkpoint folder for this process: one run per checkpoint folder. Every save
 * claims its folder while it writes; a run claims it for its whole length (the tapfit CLI
 * does, before it trains), so that a second run into the same folder is refused at once,
 * not at a save that happens to overlap one of the first run's. While a live process holds
 * the folder, this throws a `TAPFIT_E_CHECKPOINT` error naming the folder, that process and
 * the fix. Release the claim when the run ends (a process that exits drops its claims).
 */
export function claimCheckpointFolder(dir: string): FolderClaim {
  return claimFolder(dir, (holder, lock) => {
    const who = `pid ${holder.pid}${holder.host === os.hostname() ? '' : ` on host '${holder.host}'`}, since ${holder.since}`;
    return new TapfitError(
      ErrorCodes.CHECKPOINT,
      `checkpoint folder '${dir}' is in use by another tapfit run (${who}): two runs saving into one folder would replace each other's LATEST and prune each other's checkpoints. ` +
        `Give each run its own checkpoint folder (one run per checkpoint folder), or wait for that run to end. If no such run is alive any more, delete '${lock}'.`,
    );
  });
}
