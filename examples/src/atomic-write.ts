import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Replaces `file` with `body` so that a failed write or a kill at any moment leaves either
 * the previous file or the new one, never a truncated mix: the body goes to a temporary
 * file in the same folder (same file system, so the rename is atomic), is fsynced, and
 * only then renamed over `file`. A body given as chunks is written chunk by chunk (a body
 * too big for one string: a long run's report.json); one that throws midway leaves the
 * previous file too.
 */
export function writeFileAtomic(file: string, body: string | Buffer | Iterable<string>): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${randomBytes(6).toString('hex')}`);
  try {
    const fd = fs.openSync(tmp, 'wx');
    try {
      // (with a descriptor, writeFileSync writes on from where the last write ended)
      if (typeof body === 'string' || Buffer.isBuffer(body)) fs.writeFileSync(fd, body);
      else for (const chunk of body) fs.writeFileSync(fd, chunk);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  syncFolder(path.dirname(file));
}

/** Makes the rename itself durable (fsync of the folder); Windows cannot open a folder and needs none. */
function syncFolder(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
