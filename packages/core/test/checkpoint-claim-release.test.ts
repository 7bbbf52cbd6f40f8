import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { claimCheckpointFolder, Trainer, WRITER_LOCK } from '../src';
import { blobs, checkpointOptions, rejected, thrown, tmpDir, useBackend } from './fixtures';

/** Every path under `root` (folders end in '/'), sorted: what a claim leaves behind is compared against it. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.relative(root, path.join(dir, e.name));
      if (e.isDirectory()) {
        out.push(p + '/');
        walk(path.join(dir, e.name));
      } else out.push(p);
    }
  };
  walk(root);
  return out.sort();
}

type SyncFs = 'rmSync' | 'writeFileSync';

/**
 * Makes `fs[fn]` fail with `code` for the paths `hit` picks while `body` runs, as a
 * read-only remount (EROFS) or a permission change (EACCES) would. (The tests run as root,
 * which file permissions do not stop; the module object is patched, as the code under test reads it.)
 */
async function failing<T>(fn: SyncFs, hit: (p: string) => boolean, code: 'EROFS' | 'EACCES', body: () => T | Promise<T>): Promise<T> {
  const nodeFs: typeof fs = require('node:fs'); // the import binding's properties are read-only
  const real = nodeFs[fn] as (...a: unknown[]) => unknown;
  (nodeFs as unknown as Record<SyncFs, unknown>)[fn] = (p: unknown, ...rest: unknown[]) => {
    if (typeof p === 'string' && hit(p)) {
      throw Object.assign(new Error(`${code}: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'}, ${fn === 'rmSync' ? 'unlink' : 'open'} '${p}'`), { code });
    }
    return real(p, ...rest);
  };
  try {
    return await body();
  } finally {
    (nodeFs as unknown as Record<SyncFs, unknown>)[fn] = real;
  }
}

describe('a checkpoint folder claim leaves nothing behind at release', () => {
  it('releasing removes the folder and the missing parents the claim made, up to the first one it made', () => {
    const root = tmpDir();
    fs.mkdirSync(path.join(root, 'runs'));
    const before = tree(root);
    const dir = path.join(root, 'runs', 'a', 'b', 'ckpt');
    const claim = claimCheckpointFolder(dir);
    expect(fs.readdirSync(dir)).to.deep.equal([WRITER_LOCK]);
    claim.release();
    expect(tree(root), "only 'runs' was there before").to.deep.equal(before);
  });

  it('a relative path with .. makes (and removes) only the folders it resolves to', () => {
    const root = tmpDir();
    const claim = claimCheckpointFolder(path.join(root, 'x', '..', 'y', 'ckpt'));
    expect(tree(root)).to.deep.equal(['y/', 'y/ckpt/', `y/ckpt/${WRITER_LOCK}`]);
    claim.release();
    expect(tree(root)).to.deep.equal([]);
  });

  it('a made parent that holds something by release stays, with what it holds', () => {
    const root = tmpDir();
    const dir = path.join(root, 'a', 'b', 'ckpt');
    const claim = claimCheckpointFolder(dir);
    fs.writeFileSync(path.join(root, 'a', 'notes.txt'), 'mine\n');
    claim.release();
    expect(tree(root)).to.deep.equal(['a/', 'a/notes.txt']);
  });

  it('two claims under one parent the first made: whichever is released last removes the parent', () => {
    const names = ['a', 'b'];
    for (const [first, last] of [[0, 1], [1, 0]] as const) {
      const root = tmpDir();
      const claims = names.map((n) => claimCheckpointFolder(path.join(root, 'runs', n)));
      claims[first]!.release();
      expect(tree(root)).to.deep.equal(['runs/', `runs/${names[last]}/`, `runs/${names[last]}/${WRITER_LOCK}`]);
      claims[last]!.release();
      expect(tree(root)).to.deep.equal([]);
    }
  });

  it('a folder that existed before the claim stays, empty or not', () => {
    const root = tmpDir();
    const dir = path.join(root, 'ckpt');
    fs.mkdirSync(dir);
    claimCheckpointFolder(dir).release();
    expect(tree(root)).to.deep.equal(['ckpt/']);
  });

  it('a claim refused because its lock cannot be written removes the folders it made', async () => {
    const root = tmpDir();
    const dir = path.join(root, 'a', 'ckpt');
    const err = await failing('writeFileSync', (p) => p.endsWith(WRITER_LOCK), 'EACCES', () => thrown(() => claimCheckpointFolder(dir)));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.contain(`cannot save under '${dir}'`);
    expect(tree(root)).to.deep.equal([]);
  });

  it("a lock file release() cannot remove: one TAPFIT_E_CHECKPOINT naming it and the fix; the claim is given up in this process all the same", async () => {
    const root = tmpDir();
    const dir = path.join(root, 'ckpt');
    const lock = path.join(fs.realpathSync(root), 'ckpt', WRITER_LOCK);
    const claim = claimCheckpointFolder(dir);
    const err = await failing('rmSync', (p) => p === lock, 'EROFS', () => thrown(() => claim.release()));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.contain(`released the checkpoint folder '${dir}' (its lock file '${lock}': EROFS: read-only file system`);
    expect(err.message).to.contain(`other processes are refused until pid ${process.pid} exits`).and.contain(`delete '${lock}' by hand`);
    expect(fs.existsSync(lock)).to.equal(true);
    claim.release(); // idempotent, and no longer throws
    // This process claims it again (its own pid's lock is taken over); that release removes the lock.
    const again = claimCheckpointFolder(dir);
    again.release();
    expect(tree(root)).to.deep.equal(['ckpt/']);
  });
});

describe('trainer.dispose() gives up every checkpoint folder, and says which lock files it could not remove', function () {
  this.timeout(60000);
  useBackend('cpu');

  async function trained(): Promise<Trainer> {
    const t = new Trainer(checkpointOptions());
    const data = blobs(16);
    await t.fit(data, { epochs: 1, batchSize: 8 });
    data.dispose();
    return t;
  }

  it('a save that failed into folders it made: dispose() removes them again (a save that wrote keeps its folder, not the lock)', async () => {
    const root = tmpDir();
    const failed = path.join(root, 'a', 'b', 'ckpt');
    const saved = path.join(root, 'c', 'ckpt');
    const t = await trained();
    // The save's temporary folder cannot be made: the save is refused, and its folder stays claimed by the trainer.
    const realMkdir = fs.promises.mkdir;
    fs.promises.mkdir = (async (p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
      if (String(p).includes(`${path.sep}.tmp-`)) throw Object.assign(new Error(`EACCES: permission denied, mkdir '${p}'`), { code: 'EACCES' });
      return realMkdir(p, o);
    }) as typeof fs.promises.mkdir;
    let err;
    try {
      err = await rejected(t.save(failed));
    } finally {
      fs.promises.mkdir = realMkdir;
    }
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    await t.save(saved);
    expect(tree(path.join(root, 'a'))).to.deep.equal(['b/', 'b/ckpt/', `b/ckpt/${WRITER_LOCK}`]);
    t.dispose();
    expect(tree(root)).to.deep.equal(['c/', 'c/ckpt/', 'c/ckpt/LATEST', 'c/ckpt/step-2/', 'c/ckpt/step-2/manifest.json', 'c/ckpt/step-2/tensors.bin']);
  });

  it('a lock file it cannot remove (EROFS): every folder is given up, the trainer is fully disposed, then one TAPFIT_E_CHECKPOINT names each folder, lock and cause', async () => {
    const root = tmpDir();
    const dirs = ['one', 'two', 'three'].map((n) => path.join(root, n));
    const locks = dirs.map((d) => path.join(fs.realpathSync(root), path.basename(d), WRITER_LOCK));
    const opts = checkpointOptions({ plugins: [] }); // the fixture's counter plugin keeps its sum past dispose(): left out to count the trainer's own
    const tensorsBefore = tf.memory().numTensors;
    const t = new Trainer(opts);
    const data = blobs(16);
    await t.fit(data, { epochs: 1, batchSize: 8 });
    data.dispose();
    for (const d of dirs) await t.save(d);
    // The first and third folders' locks stay (a read-only remount); the second must still be released.
    const stuck = new Set([locks[0], locks[2]]);
    const err = await failing('rmSync', (p) => stuck.has(p), 'EROFS', () => thrown(() => t.dispose()));
    expect(err.name).to.equal('TapfitError');
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.contain(`released 2 checkpoint folders '${dirs[0]}' (its lock file '${locks[0]}': EROFS: read-only file system`);
    expect(err.message).to.contain(`'${dirs[2]}' (its lock file '${locks[2]}': EROFS`);
    expect(err.message).to.not.contain(`'${dirs[1]}'`);
    expect(err.message).to.contain(`delete '${locks[0]}', '${locks[2]}' by hand`);
    expect(fs.existsSync(locks[1]), 'the folder after the failing one was released').to.equal(false);
    expect(fs.existsSync(locks[0]) && fs.existsSync(locks[2])).to.equal(true);
    // Fully disposed: no tensor of the trainer left, every use refused, a second dispose() does nothing.
    expect(tf.memory().numTensors).to.equal(tensorsBefore);
    expect((await rejected(t.save(dirs[1]))).message).to.contain('on a disposed trainer');
    t.dispose();
    // The folders are free in this process: a new trainer saves into each, and its dispose removes every lock.
    const next = new Trainer(checkpointOptions({ model: opts.model }));
    for (const d of dirs) await next.save(d);
    next.dispose();
    for (const l of locks) expect(fs.existsSync(l)).to.equal(false);
  });

  it('one folder whose lock stays: the error names that folder alone', async () => {
    const dir = tmpDir();
    const lock = path.join(fs.realpathSync(dir), WRITER_LOCK);
    const t = await trained();
    await t.save(dir);
    const err = await failing('rmSync', (p) => p === lock, 'EACCES', () => thrown(() => t.dispose()));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(new RegExp(`^checkpoint: released the checkpoint folder '${dir}' \\(its lock file '${lock}': EACCES: permission denied, unlink '${lock}'\\), but could not remove its lock file\\. The checkpoints are intact`));
    expect(err.message).to.contain(`To free it now, delete '${lock}' by hand`);
    fs.rmSync(lock);
  });
});
