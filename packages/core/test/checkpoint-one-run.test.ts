import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { claimCheckpointFolder, WRITER_LOCK } from '../src';
import { writeCheckpointDir } from '../src/checkpoint/atomic-dir';
import { rejected, tmpDir } from './fixtures';

const files = { 'manifest.json': '{}', 'tensors.bin': Buffer.alloc(64) };
const latest = (dir: string) => fs.readFileSync(path.join(dir, 'LATEST'), 'utf8').trim();
const listing = (dir: string) => fs.readdirSync(dir).sort();

/** Another process that claims `dir` as a run does (the CLI, for its whole run) and holds it until killed. */
async function otherRunHolding(dir: string): Promise<{ pid: number; kill(): Promise<void> }> {
  const claim = path.join(__dirname, '..', 'src', 'checkpoint', 'checkpoint-claim.js');
  const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(claim)}).claimCheckpointFolder(${JSON.stringify(dir)}); console.log('claimed'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    void exited.then(() => reject(new Error('the holding process exited before it claimed the folder')));
  });
  // SIGKILL: the claim is left behind as a crashed run leaves it.
  return { pid: child.pid!, kill: async () => void (child.kill('SIGKILL'), await exited) };
}

/** The pid of a process that has ended. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

describe('one run per checkpoint folder', function () {
  this.timeout(60000);

  it('a save into a folder another live run holds is refused, naming the folder, the run and the fix, and touches nothing; once that run is gone, its stale claim is taken over', async () => {
    const dir = tmpDir();
    await writeCheckpointDir(dir, 1, files);
    const other = await otherRunHolding(dir);
    try {
      const before = listing(dir);
      const err = await rejected(writeCheckpointDir(dir, 2, files));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.contain(`checkpoint folder '${dir}' is in use by another tapfit run (pid ${other.pid}, since `);
      expect(err.message).to.contain('Give each run its own checkpoint folder (one run per checkpoint folder), or wait for that run to end.');
      expect(err.message).to.contain(`If no such run is alive any more, delete '${path.join(dir, WRITER_LOCK)}'.`);
      expect(listing(dir)).to.deep.equal(before);
      expect(latest(dir)).to.equal('step-1');
    } finally {
      await other.kill();
    }
    expect(path.basename(await writeCheckpointDir(dir, 2, files))).to.equal('step-2');
    expect(listing(dir), 'the save took the dead run\'s claim over and gave it up').to.deep.equal(['LATEST', 'step-1', 'step-2']);
  });

  it("a save removes the temporary entries of a killed save, but not those of a live process's save in progress", async () => {
    const dir = tmpDir();
    await writeCheckpointDir(dir, 1, files);
    const dead = deadPid();
    const live = process.ppid; // alive while this test runs
    const entries = { killed: [`.tmp-${dead}-0badf00d0bad`, `.LATEST-${dead}-0badf00d0bad`], live: [`.tmp-${live}-feedfeedfeed`, `.LATEST-${live}-feedfeedfeed`] };
    fs.mkdirSync(path.join(dir, entries.killed[0]));
    fs.writeFileSync(path.join(dir, entries.killed[0], 'tensors.bin'), Buffer.alloc(64));
    fs.writeFileSync(path.join(dir, entries.killed[1]), 'step-1\n');
    fs.mkdirSync(path.join(dir, entries.live[0]));
    fs.writeFileSync(path.join(dir, entries.live[0], 'tensors.bin'), Buffer.alloc(64));
    fs.writeFileSync(path.join(dir, entries.live[1]), 'step-1\n');
    await writeCheckpointDir(dir, 2, files);
    expect(listing(dir)).to.deep.equal(['LATEST', 'step-1', 'step-2', ...entries.live].sort());
    expect(fs.readFileSync(path.join(dir, entries.live[0], 'tensors.bin'))).to.have.length(64);
  });

  it("a run's claim: its own saves go on, a second claim in the same process nests, releasing the last one removes the lock (and a folder the claim made and nothing filled)", async () => {
    const root = tmpDir();
    const dir = path.join(root, 'ckpt');
    const run = claimCheckpointFolder(dir);
    expect(listing(dir)).to.deep.equal([WRITER_LOCK]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, WRITER_LOCK), 'utf8')).pid).to.equal(process.pid);
    await writeCheckpointDir(dir, 1, files);
    expect(listing(dir), 'the run still holds the folder after its save').to.deep.equal([WRITER_LOCK, 'LATEST', 'step-1'].sort());
    const nested = claimCheckpointFolder(dir);
    nested.release();
    nested.release(); // idempotent: does not give up the run's claim
    expect(listing(dir)).to.contain(WRITER_LOCK);
    run.release();
    expect(listing(dir)).to.deep.equal(['LATEST', 'step-1']);

    const unused = path.join(root, 'unused');
    claimCheckpointFolder(unused).release();
    expect(fs.existsSync(unused), 'a claimed folder nothing was saved into is removed again').to.equal(false);
  });
});
