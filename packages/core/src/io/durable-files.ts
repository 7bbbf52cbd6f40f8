import * as fs from 'node:fs/promises';

/*
 * The two steps of a crash-safe write, shared by checkpoints and by plugins that save
 * their own files (LoRA adapters): write and fsync a file, then, after renaming it into
 * place, fsync the folder so that the rename itself survives a crash.
 */

/** Writes `body` to `file` and fsyncs it before returning. */
export async function writeFileDurably(file: string, body: Buffer | string): Promise<void> {
  const fh = await fs.open(file, 'w');
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Makes a folder's entries (a rename into it) durable. */
export async function syncFolder(dir: string): Promise<void> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(dir, 'r');
  } catch (err) {
    // Windows cannot open a folder for fsync; its renames are durable on return.
    if (['EISDIR', 'EPERM', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
