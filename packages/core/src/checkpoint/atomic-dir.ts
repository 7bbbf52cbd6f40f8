import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/**
 * Writes a checkpoint so that a crash never leaves a half-written one in use: files go
 * to a fresh `<root>/.tmp-*` folder (fsynced), which is renamed to `<root>/<name>`;
 * then `<root>/LATEST` is replaced atomically (temp file + rename) to point at it. The
 * previous checkpoint stays intact until the new one is complete; older ones beyond
 * `keep` are removed afterwards.
 */
export async function writeCheckpointDir(root: string, name: string, files: Record<string, Buffer | string>, keep = 2): Promise<string> {
  await fs.mkdir(root, { recursive: true });
  const tmp = path.join(root, `.tmp-${name}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(tmp);
  try {
    for (const [file, body] of Object.entries(files)) {
      const fh = await fs.open(path.join(tmp, file), 'w');
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    const final = path.join(root, name);
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(tmp, final);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const latestTmp = path.join(root, `.LATEST-${randomBytes(4).toString('hex')}`);
  await fs.writeFile(latestTmp, name + '\n');
  await fs.rename(latestTmp, path.join(root, 'LATEST'));
  await pruneOld(root, name, keep);
  return path.join(root, name);
}

async function pruneOld(root: string, current: string, keep: number): Promise<void> {
  const entries = (await fs.readdir(root)).filter((n) => /^step-\d+$/.test(n) && n !== current);
  entries.sort((a, b) => Number(b.slice(5)) - Number(a.slice(5)));
  for (const old of entries.slice(Math.max(0, keep - 1))) await fs.rm(path.join(root, old), { recursive: true, force: true });
}

/** The folder `<root>/LATEST` points at, or `root` itself when it holds a manifest. */
export async function latestCheckpointDir(root: string): Promise<string> {
  try {
    const name = (await fs.readFile(path.join(root, 'LATEST'), 'utf8')).trim();
    return path.join(root, name);
  } catch {
    return root;
  }
}
