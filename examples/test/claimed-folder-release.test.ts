import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { WRITER_LOCK } from '@tapfit/core';
import { readConfig, runConfig } from '../src';
import { recordingLogger, rejectionOf, tinyConfig, tmpDir, writeJson } from './helpers';

/** Every path under `root`, sorted (folders end in '/'). */
function tree(root: string): string[] {
  return (fs.readdirSync(root, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .map((e) => path.relative(root, path.join(e.parentPath ?? e.path, e.name)) + (e.isDirectory() ? '/' : ''))
    .sort();
}

describe("tapfit train: the run's checkpoint folder claim", function () {
  this.timeout(120000);

  it('a run refused after the claim (a plugin fails at setup) leaves nothing: not the folder, not the parents it made', async () => {
    const dir = tmpDir();
    // onlineNorm's replace: 'batchNorm' on an MLP without BatchNormalization: setup fails, after the folder was claimed.
    const file = writeJson(tinyConfig({ checkpoint: { dir: 'out/runs/ckpt' }, plugins: [['@tapfit/plugin-onlinenorm', { replace: 'batchNorm' }]] }), dir);
    const before = tree(dir);
    const err = await rejectionOf(runConfig(readConfig(file), { configDir: dir, configFile: file, logger: recordingLogger(), quiet: true }));
    expect(err.code).to.equal('TAPFIT_E_PLUGIN_FAILED');
    expect(tree(dir)).to.deep.equal(before);
  });

  it('a lock file the run cannot remove at its end: the run still succeeds, and a warning names the file to delete', async () => {
    const dir = tmpDir();
    const file = writeJson(tinyConfig({ training: { epochs: 1, batchSize: 50 }, checkpoint: { dir: 'ckpt' } }), dir);
    const lock = path.join(fs.realpathSync(dir), 'ckpt', WRITER_LOCK);
    const nodeFs: typeof fs = require('node:fs'); // the module itself: the import binding's properties are read-only
    const realRm = nodeFs.rmSync;
    nodeFs.rmSync = ((p: fs.PathLike, o?: fs.RmOptions) => {
      if (p === lock) throw Object.assign(new Error(`EROFS: read-only file system, unlink '${p}'`), { code: 'EROFS' });
      return realRm(p, o);
    }) as typeof fs.rmSync;
    const log = recordingLogger();
    try {
      const result = await runConfig(readConfig(file), { configDir: dir, configFile: file, logger: log, quiet: true });
      expect(result.history.epoch).to.have.length(1);
    } finally {
      nodeFs.rmSync = realRm;
    }
    expect(log.warnings).to.have.length(1);
    expect(log.warnings[0]).to.contain(`released the checkpoint folder '${path.join(dir, 'ckpt')}'`).and.contain(`delete '${lock}' by hand`);
    expect(fs.existsSync(path.join(dir, 'ckpt', 'LATEST'))).to.equal(true);
    fs.rmSync(lock);
  });
});
