import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { Stage, type TapfitPlugin, type TrainerDescription } from '@tapfit/core';
import { blobData, testTrainer } from '@tapfit/core/testing';
import { bucketCount } from '../src/report/min-max-buckets';
import { reportCharts } from '../src/report/report-html';
import { trainingReport, type ReportPlugin, type StepRecord } from '../src/report/report-plugin';
import { tmpDir } from './helpers';

/** At most 10 points a chart series: 4 buckets, so a few dozen steps already fill them. */
const MAX_POINTS = 10;

/** The longest array reachable from `root` (what grows when a structure keeps one entry per step). */
function longestArray(root: unknown): number {
  const seen = new Set<object>();
  let longest = 0;
  const visit = (v: unknown): void => {
    if (typeof v !== 'object' || v === null || seen.has(v)) return;
    seen.add(v);
    if (Array.isArray(v)) longest = Math.max(longest, v.length);
    for (const child of Object.values(v)) visit(child);
  };
  visit(root);
  return longest;
}

/** Trains one epoch of `n` steps (batches of 1) with the report plugin, and an observer that reads each step's loss itself. */
async function reportedRun(n: number): Promise<{ report: ReportPlugin; records: StepRecord[]; losses: number[]; longest: number; dir: string }> {
  const dir = path.join(tmpDir('tapfit-report-plugin-'), 'report');
  const report = trainingReport({ dir, maxPoints: MAX_POINTS });
  const losses: number[] = [];
  const observer: TapfitPlugin = {
    name: 'loss-observer',
    core: '^0.1.0',
    apply: ({ hooks }) => void hooks.batchEnd.tap({ stage: Stage.REPORT }, (info) => void losses.push(info.loss())),
  };
  const trainer = testTrainer({ plugins: [report, observer] });
  const data = blobData(n);
  try {
    await trainer.fit(data, { epochs: 1, batchSize: 1 });
    return { report, records: [...report.records()], losses, longest: longestArray(report), dir };
  } finally {
    trainer.dispose();
    data.dispose();
  }
}

describe('training report plugin: memory bounded in the steps', function () {
  this.timeout(120_000);
  let short: Awaited<ReturnType<typeof reportedRun>>;
  let long: Awaited<ReturnType<typeof reportedRun>>;

  before(async () => {
    short = await reportedRun(50);
    long = await reportedRun(800);
  });

  it('holds no more after 800 steps than after 50: no array longer than the chart buckets, the step records on disk', () => {
    for (const run of [short, long]) {
      expect(run.report.summary.count).to.equal(run.records.length);
      expect(run.longest, 'the longest array the plugin holds').to.be.at.most(bucketCount(MAX_POINTS));
      expect(run.report.summary.heldBuckets).to.be.at.most(5 * bucketCount(MAX_POINTS));
    }
    expect(long.records).to.have.length(800);
    expect(long.longest).to.equal(short.longest);
  });

  it('keeps every step record, read back in order (oracle: the losses an observer read at each step)', () => {
    for (const run of [short, long]) {
      expect(run.records.map((r) => r.step)).to.deep.equal(run.losses.map((_, i) => i));
      expect(run.records.map((r) => r.loss)).to.deep.equal(run.losses);
    }
  });

  it("the charts' extremes and x span equal those of every step (oracle: the full list of records)", () => {
    const { report, records } = long;
    const describe = { plugins: [], hooks: {}, stepTransforms: [], optimizer: 'chain', trainableParams: 0 } as unknown as TrainerDescription;
    const charts = reportCharts({ title: 't', started: '', backend: 'cpu', describe, steps: [], stepSummary: report.summary, epochs: [] });
    const fields: Record<string, (s: StepRecord) => number | undefined> = {
      loss: (s) => s.loss,
      lr: (s) => s.lr,
      ms: (s) => s.ms,
      peakMiB: (s) => s.peakBytes / 2 ** 20,
      liveMiB: (s) => s.liveBytes / 2 ** 20,
    };
    let checked = 0;
    for (const { id, spec } of charts) {
      const rows = (spec.data as { values: Record<string, number>[] }).values;
      for (const [field, of] of Object.entries(fields)) {
        const drawn = rows.filter((r) => field in r);
        if (!drawn.length) continue;
        checked++;
        const all = records.map((s) => of(s)!);
        const ys = drawn.map((r) => r[field]);
        expect([Math.min(...ys), Math.max(...ys)], `${id} ${field}`).to.deep.equal([Math.min(...all), Math.max(...all)]);
        expect([drawn[0].step, drawn.at(-1)!.step], `${id} ${field}: x span`).to.deep.equal([0, records.length - 1]);
        expect(drawn.length, `${id} ${field}`).to.be.at.most(MAX_POINTS);
        for (const r of drawn) expect(r[field], `${id} ${field} at step ${r.step}`).to.equal(of(records[r.step]));
      }
    }
    expect(checked, 'series checked').to.equal(5);
  });

  it("dispose() removes the step records' file and the folder it made for it (report.json holds them once written)", () => {
    for (const run of [short, long]) expect(fs.existsSync(run.dir), run.dir).to.equal(false);
    expect(fs.readdirSync(path.dirname(long.dir))).to.deep.equal([]);
  });

  it('a fit that fails midway leaves nothing once disposed: no step-record file, no report folder', async () => {
    const parent = tmpDir('tapfit-report-plugin-');
    const report = trainingReport({ dir: path.join(parent, 'a', 'report'), maxPoints: MAX_POINTS });
    const failing: TapfitPlugin = {
      name: 'fails-at-step-500',
      core: '^0.1.0',
      apply: ({ hooks }) => void hooks.batchEnd.tap({ stage: Stage.LAST }, (info) => {
        if (info.batch === 500) throw new Error('disk gone');
      }),
    };
    const trainer = testTrainer({ plugins: [report, failing] });
    const data = blobData(600); // past the first 64 KB of records: the file exists when it fails
    try {
      const err = await trainer.fit(data, { epochs: 1, batchSize: 1 }).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/disk gone/);
      expect(fs.readdirSync(path.join(parent, 'a', 'report')), 'while the trainer lives: the records file').to.have.length(1);
    } finally {
      trainer.dispose();
      data.dispose();
    }
    expect(fs.readdirSync(parent)).to.deep.equal([]);
  });
});

/** A process writing step records into `dir` through the report's spool, as a run does, until it is killed. */
async function spoolWriter(dir: string): Promise<ChildProcess> {
  const spool = path.join(__dirname, '..', 'src', 'report', 'step-spool.js');
  const script = `const { StepSpool } = require(${JSON.stringify(spool)});
const s = new StepSpool(${JSON.stringify(dir)});
for (let i = 0; i < 1000; i++) s.append({ step: i, epoch: 0, batch: i, loss: 1, lr: 0.1, ms: 1, peakBytes: 0, liveBytes: 0, skipped: false });
console.log('writing');
setInterval(() => undefined, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', () => resolve());
    child.on('exit', (code) => reject(new Error(`the spool writer exited (${code})`)));
  });
  return child;
}

describe("training report plugin: step-record files that killed runs left", function () {
  this.timeout(120_000);

  it("a run reporting into a folder removes the files of writers that no longer run, and keeps a live run's, another machine's and unnamed ones", async () => {
    const dir = path.join(tmpDir('tapfit-report-plugin-'), 'report');
    const spools = () => fs.readdirSync(dir).filter((f) => f.startsWith('.steps.jsonl.tmp-')).sort();
    const killed = await spoolWriter(dir);
    const [dead] = spools();
    killed.kill('SIGKILL');
    await new Promise((resolve) => killed.once('exit', resolve));
    const live = await spoolWriter(dir);
    try {
      const liveFile = spools().find((f) => f !== dead)!;
      // The dead writer's file as another machine sharing the folder would name it, and one named by an older tapfit (no writer in it).
      const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_');
      expect(dead).to.contain(`-${host}-${killed.pid}-`);
      const otherMachine = dead.replace(`-${host}-`, '-other-machine-');
      const unnamed = '.steps.jsonl.tmp-0123456789ab';
      for (const f of [otherMachine, unnamed, 'notes.txt']) fs.copyFileSync(path.join(dir, dead), path.join(dir, f));

      const report = trainingReport({ dir, maxPoints: MAX_POINTS });
      const trainer = testTrainer({ plugins: [report] });
      const data = blobData(8);
      try {
        await trainer.fit(data, { epochs: 1, batchSize: 1 });
        expect([...report.records()]).to.have.length(8);
        const ours = spools().filter((f) => f.includes(`-${process.pid}-`));
        expect(ours, 'this run writes its own').to.have.length(1);
        expect(fs.readdirSync(dir).sort()).to.deep.equal([...ours, liveFile, otherMachine, unnamed, 'notes.txt'].sort());
      } finally {
        trainer.dispose();
        data.dispose();
      }
      expect(fs.readdirSync(dir).sort(), 'once disposed').to.deep.equal([liveFile, otherMachine, unnamed, 'notes.txt'].sort());
    } finally {
      live.kill('SIGKILL');
    }
  });
});
