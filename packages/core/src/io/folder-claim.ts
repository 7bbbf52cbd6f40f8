import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pidAlive } from './pid-alive';

/** The lock file a claimed folder holds: the claiming process's pid and host, as JSON. */
export const WRITER_LOCK = '.tapfit-writer.lock';

/** Who holds a folder: what its lock file says. */
export interface FolderHolder {
  pid: number;
  host: string;
  /** ISO time of the claim. */
  since: string;
}

export interface FolderClaim {
  /**
   * Gives the claim up (idempotent); the lock file goes once this process holds no claim on
   * the folder, and with it the folders the claim made, if they are empty. A lock file that
   * cannot be removed (a read-only remount, permissions) throws LockLeftBehind, after the
   * claim is given up all the same.
   */
  release(): void;
}

/**
 * The lock file of a released claim could not be removed. The claim is given up in this
 * process (a later claim here takes the lock over); other processes see the folder held
 * until this one exits, then take the stale lock over.
 */
export class LockLeftBehind extends Error {
  constructor(
    readonly folder: string,
    readonly lockFile: string,
    cause: unknown,
  ) {
    super(`could not remove the lock file '${lockFile}': ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'LockLeftBehind';
  }
}

/** Folders a claim made: `top`, the first missing ancestor, down to `folder` (absolute paths). */
interface MadeChain {
  folder: string;
  top: string;
}

/** This process's claims, by resolved folder: nested claims (a run's, then each save's) share one lock file. */
const held = new Map<string, { count: number; lock: string; made: MadeChain | undefined; heartbeat: NodeJS.Timeout }>();

/** How often a held lock's time is refreshed, and after how long without a refresh another host's lock is stale. */
const HEARTBEAT_MS = 10_000;
export const FOREIGN_LOCK_STALE_MS = 60_000;

/**
 * Claims `folder` for this process's writes, so that two processes never write into it at
 * once (they would remove each other's temporary files and replace each other's files).
 * The claim is a lock file created exclusively in the folder (the folder and its missing
 * parents are made, and removed again at release while empty), holding this process's
 * pid and host. A lock whose process is gone (killed, or
 * it crashed) is stale and taken over; one held by a live process makes `refuse(holder,
 * lockFile)` the thrown error. A holder on another host (a shared volume) cannot be
 * checked by pid: it counts as live while it refreshes the lock's time (every 10 s while
 * held), and its lock is stale a minute after the last refresh (a killed container, a
 * preempted machine). Claims of one process nest, also through symlinks. Synchronous, so claims in one process never interleave.
 */
export function claimFolder(folder: string, refuse: (holder: FolderHolder, lockFile: string) => Error): FolderClaim {
  // Resolved first, so 'a/../b' makes no 'a'; mkdirSync returns the first folder it made: the top of what a release removes.
  const target = path.resolve(folder);
  const top = fs.mkdirSync(target, { recursive: true });
  const made = top === undefined ? undefined : { folder: target, top };
  if (made) noteMade(made);
  // The real path: a claim through a symlink (or another spelling) is the same claim, not a second one taking the lock over.
  const key = fs.realpathSync(folder);
  const mine = held.get(key);
  if (mine) mine.count++;
  else {
    const lock = path.join(key, WRITER_LOCK);
    try {
      takeLock(lock, refuse);
    } catch (err) {
      if (made) removeMade(made);
      throw err;
    }
    // While held, the lock's time is refreshed: a holder on another host, whose pid cannot be checked, is live only while it does so.
    const heartbeat = setInterval(() => touch(lock), HEARTBEAT_MS);
    heartbeat.unref();
    held.set(key, { count: 1, lock, made, heartbeat });
    if (held.size === 1) process.on('exit', releaseAll);
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      const claim = held.get(key)!;
      if (--claim.count > 0) return;
      held.delete(key);
      clearInterval(claim.heartbeat);
      if (held.size === 0) process.off('exit', releaseAll);
      try {
        dropLock(claim.lock);
      } catch (err) {
        throw new LockLeftBehind(key, claim.lock, err); // the folder holds the lock still: nothing to remove
      }
      if (claim.made) removeMade(claim.made);
    },
  };
}

function takeLock(lock: string, refuse: (holder: FolderHolder, lockFile: string) => Error): void {
  const me: FolderHolder = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      fs.writeFileSync(lock, JSON.stringify(me) + '\n', { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(lock);
    if (holder === 'gone') continue; // released meanwhile: try again
    const live = holder !== 'unreadable' && (holder.host !== me.host ? refreshedWithin(lock, FOREIGN_LOCK_STALE_MS) : holder.pid !== process.pid && pidAlive(holder.pid));
    if (live) throw refuse(holder, lock);
    if (holder === 'unreadable' && attempt < 5) {
      sleep(20); // another process may be writing its lock this very moment
      continue;
    }
    // Stale: its process is gone (or it is this process's, left by an earlier claim): take it over.
    fs.rmSync(lock, { force: true });
  }
  throw new Error(`cannot take the lock '${lock}': it kept changing hands; try again.`);
}

function readHolder(lock: string): FolderHolder | 'gone' | 'unreadable' {
  let text: string;
  try {
    text = fs.readFileSync(lock, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const h = JSON.parse(text) as FolderHolder;
    return Number.isSafeInteger(h.pid) && typeof h.host === 'string' ? h : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

/** Removes the lock if it is still this process's (never another's that took over a stale one). */
function dropLock(lock: string): void {
  const holder = readHolder(lock);
  if (typeof holder === 'object' && holder.pid === process.pid && holder.host === os.hostname()) fs.rmSync(lock, { force: true });
}

/** A process that exits with claims held (process.exit) leaves no lock behind, where it can remove them. */
function releaseAll(): void {
  for (const claim of held.values()) {
    clearInterval(claim.heartbeat);
    try {
      dropLock(claim.lock);
    } catch {
      // a lock it cannot remove names a process that is ending: the next claim takes it over as stale
    }
  }
  held.clear();
}

/**
 * Parents that claims of this process made and could not remove yet (another claimed
 * folder under them kept them from being empty): a later release goes on up through them,
 * so two claims under one new folder ('runs/a', 'runs/b') leave no empty 'runs' behind.
 */
const madeParents = new Set<string>();

/** Notes the folders of a claim's chain above the claimed one (see madeParents). */
function noteMade({ folder, top }: MadeChain): void {
  for (let dir = path.dirname(folder); isWithin(dir, top); dir = path.dirname(dir)) madeParents.add(dir);
}

const isWithin = (dir: string, top: string): boolean => dir === top || dir.startsWith(top + path.sep);

/**
 * Removes the folders a claim made, from the claimed one up to the first it made (and on
 * through parents other claims made, see madeParents), while they are empty: what a
 * refused or idle run made, nothing more. A folder that existed before is never reached;
 * one holding anything stops the walk.
 */
function removeMade({ folder, top }: MadeChain): void {
  if (!isWithin(folder, top)) return; // not its ancestor: cannot tell what it made
  for (let dir = folder; isWithin(dir, top) || madeParents.has(dir); dir = path.dirname(dir)) {
    try {
      fs.rmdirSync(dir); // only an empty folder
    } catch {
      return; // not empty, or gone: leave it and what holds it
    }
    madeParents.delete(dir);
  }
}

/** Refreshes the lock's modification time (a holder's heartbeat); a lock gone meanwhile is left gone. */
function touch(lock: string): void {
  const now = new Date();
  try {
    fs.utimesSync(lock, now, now);
  } catch {
    // removed by hand, or the folder went: the next claim sees that
  }
}

/** Whether the lock was written or refreshed within `ms` (by the file's modification time). */
function refreshedWithin(lock: string, ms: number): boolean {
  try {
    return Date.now() - fs.statSync(lock).mtimeMs < ms;
  } catch {
    return false;
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
