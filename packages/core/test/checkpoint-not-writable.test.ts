import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { claimCheckpointFolder, Trainer, WRITER_LOCK } from '../src';
import { blobs, checkpointOptions, tmpDir, useBackend, rejected as errorOf, thrown } from './fixtures';

/**
 * Makes creating anything under `dir` fail with `code`, as a folder without write
 * permission (EACCES) or on a read-only mount (EROFS) does, while `body` runs. (The tests
 * run as root, which file permissions do not stop.)
 */
async function unwritable<T>(dir: string, code: 'EACCES' | 'EROFS', body: () => Promise<T>): Promise<T> {
  const under = (p: fs.PathLike | number) => typeof p !== 'number' && path.resolve(String(p)).startsWith(path.resolve(dir));
  const fail = (syscall: string, p: unknown) => Object.assign(new Error(`${code}: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'}, ${syscall} '${p}'`), { code, syscall });
  const nodeFs: typeof fs = require('node:fs'); // the module itself: the import binding's properties are read-only
  const real = { mkdirSync: nodeFs.mkdirSync, writeFileSync: nodeFs.writeFileSync, mkdir: fs.promises.mkdir };
  nodeFs.mkdirSync = ((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
    if (under(p) && !fs.existsSync(p)) throw fail('mkdir', p);
    return real.mkdirSync(p, o);
  }) as typeof fs.mkdirSync;
  nodeFs.writeFileSync = ((p: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    if (under(p as fs.PathLike)) throw fail('open', p);
    return (real.writeFileSync as (...a: unknown[]) => void)(p, ...rest);
  }) as typeof fs.writeFileSync;
  fs.promises.mkdir = (async (p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
    if (under(p) && !fs.existsSync(p)) throw fail('mkdir', p);
    return real.mkdir(p, o);
  }) as typeof fs.promises.mkdir;
  try {
    return await body();
  } finally {
    Object.assign(nodeFs, { mkdirSync: real.mkdirSync, writeFileSync: real.writeFileSync });
    fs.promises.mkdir = real.mkdir;
  }
}

describe('a checkpoint folder this process cannot write to', () => {
  useBackend('cpu');

  async function trained(): Promise<Trainer> {
    const t = new Trainer(checkpointOptions());
    const data = blobs(16);
    await t.fit(data, { epochs: 1, batchSize: 8 });
    data.dispose();
    return t;
  }

  for (const code of ['EACCES', 'EROFS'] as const) {
    it(`${code} on the folder: save is a TAPFIT_E_CHECKPOINT naming the folder and the fix, and writes nothing`, async () => {
      const dir = tmpDir();
      const t = await trained();
      const err = await unwritable(dir, code, () => errorOf(t.save(dir)));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.contain(`cannot save under '${dir}': ${code === 'EROFS' ? 'it is on a read-only file system' : 'this process may not write there'} (${code}`);
      expect(err.message).to.match(/Save to a folder you can write to; to go on from a checkpoint you cannot write to, resume from it and save into a new folder\./);
      expect(fs.readdirSync(dir)).to.deep.equal([]);
      // The same trainer saves once the folder is writable.
      await t.save(dir);
      expect(fs.readdirSync(dir).sort()).to.deep.equal([WRITER_LOCK, 'LATEST', 'step-2']);
      t.dispose();
    });
  }

  it('EACCES on the parent of a folder to be made: save and claimCheckpointFolder name the folder', async () => {
    const parent = tmpDir();
    const dir = path.join(parent, 'run');
    const t = await trained();
    const err = await unwritable(parent, 'EACCES', () => errorOf(t.save(dir)));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.contain(`cannot save under '${dir}': this process may not write there (EACCES`);
    const claimErr = await unwritable(parent, 'EACCES', async () => thrown(() => claimCheckpointFolder(dir)));
    expect(claimErr.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(claimErr.message).to.contain(`cannot save under '${dir}'`);
    expect(fs.readdirSync(parent)).to.deep.equal([]);
    t.dispose();
  });
});
