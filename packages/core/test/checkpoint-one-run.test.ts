import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { claimCheckpointFolder, sgd, SilentLogger, Trainer, WRITER_LOCK, type TrainerOptions } from '../src';
import { writeCheckpointDir } from '../src/checkpoint/atomic-dir';
import { blobs, rejected, tinyMlp, tmpDir, useBackend } from './fixtures';

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

  it('a save removes every temporary entry it finds, whatever pid it names (holding the claim, they can only be killed saves\'): a dead process\'s, a live one\'s (pid 1 of a new container), its own', async () => {
    const dir = tmpDir();
    await writeCheckpointDir(dir, 1, files);
    const pids = [deadPid(), process.ppid, process.pid];
    const leftovers = pids.flatMap((pid) => [`.tmp-${pid}-0badf00d0bad`, `.LATEST-${pid}-0badf00d0bad`]);
    for (const entry of leftovers) {
      if (entry.startsWith('.tmp-')) {
        fs.mkdirSync(path.join(dir, entry));
        fs.writeFileSync(path.join(dir, entry, 'tensors.bin'), Buffer.alloc(64));
      } else fs.writeFileSync(path.join(dir, entry), 'step-1\n');
    }
    await writeCheckpointDir(dir, 2, files);
    expect(listing(dir)).to.deep.equal(['LATEST', 'step-1', 'step-2']);
  });

  it("a save removes only tapfit's own entries: the user's .tmp-* files and folders and step-* folders that are not checkpoints stay, whole", async () => {
    const dir = tmpDir();
    const manifest = JSON.stringify({ format: 'tapfit-checkpoint' });
    const saved = { 'manifest.json': manifest, 'tensors.bin': Buffer.alloc(64) };
    const userFiles: Record<string, string> = {
      '.tmp-cache/important.bin': 'a cache',
      '.tmp-notes.txt': 'notes',
      '.LATEST-backup': 'step-1\n',
      '.tmp-0badf00d0bag/kept.txt': 'like a temp folder of an old tapfit, but not hex',
      'step-1/README.txt': 'a folder of the user named like a checkpoint',
      'step-3/manifest.json': JSON.stringify({ format: 'another-tool' }),
      'config.json': '{}',
    };
    for (const [file, body] of Object.entries(userFiles)) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), body);
    }
    // The user's step folders are the oldest entries: pruning by age would take them first.
    const past = new Date(Date.now() - 3600_000);
    for (const name of ['step-1', 'step-3']) fs.utimesSync(path.join(dir, name), past, past);
    // A killed save's leftovers, in the forms tapfit writes (with and without the pid).
    const pid = deadPid();
    fs.mkdirSync(path.join(dir, `.tmp-${pid}-0badf00d0bad`));
    fs.writeFileSync(path.join(dir, `.tmp-${pid}-0badf00d0bad`, 'tensors.bin'), Buffer.alloc(64));
    fs.mkdirSync(path.join(dir, '.tmp-0badf00d0bad'));
    fs.writeFileSync(path.join(dir, `.LATEST-${pid}-0badf00d0bad`), 'step-2\n');

    for (const step of [2, 4, 6]) await writeCheckpointDir(dir, step, saved);
    const userEntries = [...new Set(Object.keys(userFiles).map((f) => f.split('/')[0]!))];
    expect(listing(dir)).to.deep.equal(['LATEST', 'step-4', 'step-6', ...userEntries].sort());
    for (const [file, body] of Object.entries(userFiles)) expect(fs.readFileSync(path.join(dir, file), 'utf8'), file).to.equal(body);
  });

  it("another host's lock (a shared volume): refused while its holder refreshes it, taken over a minute after the last refresh (a killed container or machine)", async () => {
    const dir = tmpDir();
    await writeCheckpointDir(dir, 1, files);
    const lock = path.join(dir, WRITER_LOCK);
    fs.writeFileSync(lock, JSON.stringify({ pid: 1, host: 'old-container-3f2a', since: new Date().toISOString() }) + '\n');
    const err = await rejected(writeCheckpointDir(dir, 2, files));
    expect(err.message).to.contain("in use by another tapfit run (pid 1 on host 'old-container-3f2a'");
    const old = new Date(Date.now() - 61_000);
    fs.utimesSync(lock, old, old);
    expect(path.basename(await writeCheckpointDir(dir, 2, files))).to.equal('step-2');
    expect(listing(dir)).to.deep.equal(['LATEST', 'step-1', 'step-2']);
  });

  it("a save through a symlink to a claimed folder is the same claim (it kept the run's lock)", async () => {
    const root = tmpDir();
    const dir = path.join(root, 'ckpt');
    const run = claimCheckpointFolder(dir);
    const lock = path.join(dir, WRITER_LOCK);
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(lock, old, old);
    fs.symlinkSync(dir, path.join(root, 'link'));
    await writeCheckpointDir(path.join(root, 'link'), 1, files);
    expect(fs.existsSync(lock), 'the run still holds its lock after a save through the link').to.equal(true);
    run.release();
    expect(fs.existsSync(lock)).to.equal(false);
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

describe('one run per checkpoint folder: trainers of one process', function () {
  this.timeout(60000);
  useBackend('cpu');

  /** A sweep's trainer: its own model seed and learning rate. */
  const options = (seed: number, lr = 0.1): TrainerOptions => ({ model: tinyMlp(seed), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr, momentum: 0.9 }), logger: new SilentLogger(), seed: 1 });
  const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));
  const inUseByTrainer = (dir: string) => `checkpoint folder '${dir}' is in use by another tapfit run (another trainer of this process, pid ${process.pid}, `;
  const fix = 'Give each run its own checkpoint folder (one run per checkpoint folder), or dispose() that trainer first';

  /** Whether another process's claim of `dir` is refused (and with what), run as a child. */
  function otherProcessClaim(dir: string): { refused: boolean; message: string } {
    const claim = path.join(__dirname, '..', 'src', 'checkpoint', 'checkpoint-claim.js');
    const r = spawnSync(process.execPath, ['-e', `try { require(${JSON.stringify(claim)}).claimCheckpointFolder(${JSON.stringify(dir)}); } catch (e) { console.log(e.message); process.exit(3); }`], { encoding: 'utf8' });
    return { refused: r.status === 3, message: r.stdout };
  }

  it("a second live trainer's save into the folder is refused as another process's is, and changes nothing; the first trainer's saves go on and resume as its own", async () => {
    const dir = tmpDir();
    const data = blobs(32);
    const a = new Trainer(options(1));
    const b = new Trainer(options(2, 0.5));
    await a.fit(data, { epochs: 1, batchSize: 8 });
    await b.fit(data, { epochs: 1, batchSize: 8 });
    await a.save(dir);
    const before = listing(dir);
    const err = await rejected(b.save(dir));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.contain(inUseByTrainer(dir));
    expect(err.message).to.contain(fix);
    expect(listing(dir)).to.deep.equal(before);
    await a.fit(data, { epochs: 2, batchSize: 8 });
    await a.save(dir);
    // Held between saves too: another process is refused while the trainer lives, not only while it writes.
    expect(listing(dir)).to.contain(WRITER_LOCK);
    const other = otherProcessClaim(dir);
    expect(other.refused, 'another process claiming the folder').to.equal(true);
    expect(other.message).to.contain(`is in use by another tapfit run (pid ${process.pid}, since `);
    const resumed = await Trainer.resume(dir, options(1));
    expect(weights(resumed), "the resumed weights are the first trainer's").to.deep.equal(weights(a));
    resumed.dispose();
    a.dispose();
    expect(listing(dir), 'disposing the trainer gave the folder up').to.not.contain(WRITER_LOCK);
    b.dispose();
    data.dispose();
  });

  it('sequential trainers in one folder: once the first is disposed, a Trainer.resume of this process saves there, and gives it up in turn', async () => {
    const dir = tmpDir();
    const data = blobs(32);
    const first = new Trainer(options(1));
    await first.fit(data, { epochs: 1, batchSize: 8 });
    await first.save(dir);
    first.dispose();
    const next = await Trainer.resume(dir, options(1));
    await next.fit(data, { epochs: 2, batchSize: 8 });
    const saved = await next.save(dir);
    expect(latest(dir)).to.equal(path.basename(saved));
    const again = await Trainer.resume(dir, options(1));
    expect(weights(again)).to.deep.equal(weights(next));
    again.dispose();
    next.dispose();
    expect(listing(dir)).to.not.contain(WRITER_LOCK);
    data.dispose();
  });

  it("with the folder claimed for the run (claimCheckpointFolder, as the CLI does): the first trainer that saves there holds it within the process, a second live one is refused; the run's claim outlasts them", async () => {
    const dir = path.join(tmpDir(), 'ckpt');
    const run = claimCheckpointFolder(dir);
    const a = new Trainer(options(1));
    const b = new Trainer(options(2, 0.5));
    await a.save(dir);
    const err = await rejected(b.save(dir));
    expect(err.message).to.contain(inUseByTrainer(dir));
    a.dispose();
    await b.save(dir);
    b.dispose();
    expect(listing(dir), "the run's claim holds on").to.contain(WRITER_LOCK);
    run.release();
    expect(listing(dir)).to.not.contain(WRITER_LOCK);
  });
});
