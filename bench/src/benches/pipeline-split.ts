/**
 * `npm run bench -- pipeline-split` (writes bench/results/pipeline-split.json): where the
 * threaded executor's balancer cuts the demo CNN into 2 stages, and what each cut it can
 * choose yields; evidence for the threaded target of the pipeline bench (issue #13).
 *
 * Protocol (fixed before the first run, 2026-12-02):
 * - splits: STARTS fresh processes each start `ThreadedPipeline` with `stages: 2` (wasm, one
 *   thread, batch 1, warmUp 0) on the demo CNN without normalisation, seed 1, and report the
 *   cut; fresh processes because the balancer measures in the calling thread, whose code
 *   is cold in a new process, as a user's is;
 * - throughput: for each of the two cuts seen on this model (stage 2 from 'conv2', i.e.
 *   after pool1, and from 'relu2', after conv2), REPEATS fresh processes, alternating
 *   cuts, each training ROUNDS rounds of 300 MNIST training digits through the pipeline
 *   (default warm-up), reporting each round's samples per second and each stage's busy time
 *   per sample (its forwards and backwards). A fresh process shows the whole ramp of cold
 *   worker threads (the pipeline README, "Threaded speedup").
 * - `--v8=<flag>` (repeatable) starts every child with that V8 flag, e.g.
 *   `--v8=--interrupt-budget=16384` (how soon V8 optimises a function), recorded in the JSON.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@tapfit/core';
import { loadMnist, mnistCnn } from '@tapfit/examples';
import { ThreadedPipeline } from '@tapfit/plugin-pipeline';
import { median, round, writeResults } from '../results';

const STARTS = 8;
const REPEATS = 2;
const ROUNDS = 8;
const ROUND_SAMPLES = 300;
/** The first segment of stage 2 for each cut the balancer has chosen on this model. */
const CUTS = ['conv2', 'relu2'] as const;

const options = { loss: 'softmaxCrossEntropy', optimizer: { lr: 1e-4, momentum: 0.99 }, compensation: 'sc', prediction: 'lwp-velocity', backend: 'wasm' } as const;
const model = () => mnistCnn({ norm: 'none', seed: 1 });

/** Child: the balancer's cut, as the first segment of stage 2. */
async function childSplit(): Promise<void> {
  await selectBackend('wasm', { threads: 1, log: false });
  const pipe = await ThreadedPipeline.start({ ...options, model: model(), stages: 2, warmUp: 0 });
  console.log(JSON.stringify({ stage2From: pipe.stages[1].segments[0] }));
  await pipe.close();
}

/** Child: ROUNDS rounds of training through the cut starting stage 2 at `from`. */
async function childThroughput(from: string): Promise<void> {
  await selectBackend('wasm', { threads: 1, log: false });
  const { train } = loadMnist({ train: ROUNDS * ROUND_SAMPLES, test: 10, layout: 'image', seed: 1 });
  const pipe = await ThreadedPipeline.start({ ...options, model: model(), boundaries: [from] });
  const rounds: { samplesPerSecond: number; busyMsPerSample: number[] }[] = [];
  try {
    let before = await pipe.stats();
    for (let r = 0; r < ROUNDS; r++) {
      const x = train.x.slice(r * ROUND_SAMPLES, ROUND_SAMPLES);
      const y = train.y.slice(r * ROUND_SAMPLES, ROUND_SAMPLES);
      const t0 = performance.now();
      await pipe.train(x, y);
      const seconds = (performance.now() - t0) / 1000;
      tf.dispose([x, y]);
      const now = await pipe.stats();
      rounds.push({ samplesPerSecond: round(ROUND_SAMPLES / seconds, 1), busyMsPerSample: now.map((s, i) => round((s.forwardMs + s.backwardMs - before[i].forwardMs - before[i].backwardMs) / ROUND_SAMPLES, 3)) });
      before = now;
    }
  } finally {
    await pipe.close();
    train.dispose();
  }
  console.log(JSON.stringify({ rounds }));
}

/** V8 flags for the children (`--v8=--interrupt-budget=16384`): how V8's tiering shapes the ramp. */
let v8Flags: string[] = [];

function child(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [...v8Flags, path.join(__dirname, '..', 'run.js'), 'pipeline-split', ...args], { encoding: 'utf8', timeout: 300_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`pipeline-split ${args.join(' ')}: exit ${r.status ?? r.signal}\n${r.stderr.slice(-2000)}`);
  return JSON.parse(last) as Record<string, unknown>;
}

export async function run(args: string[]): Promise<void> {
  const mode = args.find((a) => a.startsWith('--child='))?.slice('--child='.length);
  if (mode === 'split') return childSplit();
  if (mode === 'throughput') return childThroughput(args.find((a) => a.startsWith('--from='))!.slice('--from='.length));

  v8Flags = args.filter((a) => a.startsWith('--v8=')).map((a) => a.slice('--v8='.length));
  console.log(`pipeline-split: ${STARTS} fresh starts of stages: 2, then ${REPEATS} fresh runs of each cut (${ROUNDS} rounds of ${ROUND_SAMPLES} digits); load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const chosen: string[] = [];
  for (let k = 0; k < STARTS; k++) chosen.push(child(['--child=split']).stage2From as string);
  const counts = Object.fromEntries([...new Set(chosen)].map((c) => [c, chosen.filter((x) => x === c).length]));
  console.log(`stage 2 starts at: ${JSON.stringify(counts)}`);

  const runs: Record<string, { samplesPerSecond: number; busyMsPerSample: number[] }[][]> = Object.fromEntries(CUTS.map((c) => [c, []]));
  for (let k = 0; k < REPEATS; k++) {
    for (const cut of k % 2 ? [...CUTS].reverse() : CUTS) {
      const { rounds } = child(['--child=throughput', `--from=${cut}`]) as { rounds: { samplesPerSecond: number; busyMsPerSample: number[] }[] };
      runs[cut].push(rounds);
      console.log(`  stage 2 from ${cut}: ${rounds.map((r) => `${Math.round(r.samplesPerSecond)}/s (${r.busyMsPerSample.join('+')})`).join('  ')}`);
    }
  }
  const perCut = Object.fromEntries(
    CUTS.map((cut) => {
      const lastRounds = runs[cut].map((rs) => rs[rs.length - 1]);
      return [cut, { firstRoundSamplesPerSecond: median(runs[cut].map((rs) => rs[0].samplesPerSecond)), lastRoundSamplesPerSecond: median(lastRounds.map((r) => r.samplesPerSecond)), lastRoundBusyMsPerSample: [0, 1].map((s) => round(median(lastRounds.map((r) => r.busyMsPerSample[s])), 3)), runs: runs[cut] }];
    }),
  );
  console.table(Object.fromEntries(CUTS.map((cut) => [`stage 2 from ${cut}`, { chosen: counts[cut] ?? 0, 'first round /s': perCut[cut].firstRoundSamplesPerSecond, 'last round /s': perCut[cut].lastRoundSamplesPerSecond, 'last round busy ms': perCut[cut].lastRoundBusyMsPerSample.join(' + ') }])));
  writeResults('pipeline-split', { protocol: { starts: STARTS, repeats: REPEATS, rounds: ROUNDS, roundSamples: ROUND_SAMPLES, cuts: CUTS, model: 'demo CNN, no normalisation, seed 1', ...options, backend: 'wasm, 1 thread per process', v8Flags }, chosen, counts, perCut }, []);
}
