import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { StepRecord } from './step-record';

/** Appended to the file once this many characters wait: few writes, a bounded buffer. */
const FLUSH_CHARS = 1 << 16;
/** Read back in chunks of this many bytes. */
const READ_BYTES = 1 << 20;

/**
 * The file's name says who writes it: `.steps.jsonl.tmp-<host>-<pid>-<random>`, so that a
 * later run can tell the leftovers of a killed writer (see removeDeadSpools) from another
 * live run's file, on this machine or (a shared folder) on another.
 */
const PREFIX = '.steps.jsonl.tmp-';
const NAME = /^\.steps\.jsonl\.tmp-(.+)-(\d+)-[0-9a-f]{12}$/;
const host = () => os.hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'host';

/**
 * The report's step records on disk instead of in memory: appended one JSON line each to
 * a temporary file in the report folder as they come (the folder is made at the first
 * step, so a run refused before training leaves nothing), read back once when report.json
 * is written, and removed by discard() whatever happened: the finished report holds them
 * in report.json; a failed or interrupted run leaves neither the file nor a folder this
 * spool made.
 */
export class StepSpool {
  private fd: number | undefined;
  private file: string | undefined;
  /** The topmost folder this spool created, if it created one. */
  private made: string | undefined;
  private pending = '';

  constructor(private readonly dir: string) {}

  append(record: StepRecord): void {
    this.pending += `${JSON.stringify(record)}\n`;
    if (this.pending.length >= FLUSH_CHARS) this.flush();
  }

  /** Every record appended so far, in order, read from the file a chunk at a time. */
  *records(): Generator<StepRecord> {
    this.flush();
    if (this.fd === undefined) return;
    const decoder = new StringDecoder('utf8');
    const buffer = Buffer.alloc(READ_BYTES);
    let rest = '';
    for (let position = 0; ; ) {
      const n = fs.readSync(this.fd, buffer, 0, buffer.length, position);
      if (n === 0) break;
      position += n;
      const lines = (rest + decoder.write(buffer.subarray(0, n))).split('\n');
      rest = lines.pop()!;
      for (const line of lines) yield JSON.parse(line) as StepRecord;
    }
  }

  /** Closes and removes the file, and the folder it made for it if nothing else is there. */
  discard(): void {
    this.pending = '';
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    if (this.file) fs.rmSync(this.file, { force: true });
    this.file = undefined;
    for (let at = path.resolve(this.dir); this.made && at.length >= this.made.length; at = path.dirname(at)) {
      try {
        fs.rmdirSync(at);
      } catch {
        break; // not empty (or gone): it holds something else
      }
    }
    this.made = undefined;
  }

  private flush(): void {
    if (!this.pending) return;
    try {
      if (this.fd === undefined) {
        this.made = fs.mkdirSync(this.dir, { recursive: true });
        this.file = path.join(this.dir, `${PREFIX}${host()}-${process.pid}-${randomBytes(6).toString('hex')}`);
        this.fd = fs.openSync(this.file, 'wx+');
      }
      fs.writeSync(this.fd, this.pending);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new Error(`training report: cannot write the step records to '${this.dir}' (${code}); free space there or choose another report folder`);
    }
    this.pending = '';
  }
}

/**
 * Removes the step-record files in `dir` whose writer no longer runs: a run killed outright
 * (SIGKILL, out of memory, power cut) never reaches discard(). Only files written on this
 * machine by a process id that is not running are removed; another live run's file (this
 * process's own included), one written from another machine, and one whose name carries
 * no writer (older tapfit versions) stay. Returns the names removed.
 */
export function removeDeadSpools(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return []; // no folder yet: nothing left there
  }
  const here = host();
  const removed: string[] = [];
  for (const name of names) {
    const m = NAME.exec(name);
    if (!m || m[1] !== here || isRunning(Number(m[2]))) continue;
    try {
      fs.rmSync(path.join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // not ours to remove (permissions): it stays, as before
    }
  }
  return removed;
}

/** Whether a process with this id runs (one of another user's counts: signal 0 is refused it, not missing). */
function isRunning(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return true; // 0 and negatives name process groups: never guess
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
