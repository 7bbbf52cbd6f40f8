import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { dataParallel, SilentLogger, selectBackend, sgd, Trainer, type TapfitPlugin } from '@tapfit/core';
import { round, median, writeResults } from '../results';
import { STEP_MODELS, fixedBatch, type StepModel } from '../lib/step-models';

/** Timed steps per round (after one warm-up step), per model. */
const STEPS: Record<string, number> = { cnn: 10, 'mlp-big': 3 };

/** A trainer on one model, stepping on one fixed batch; `measure(n)` gives steps/s and CPU ms per step (all threads). */
async function stepper(m: StepModel, plugins: TapfitPlugin[]) {
  const trainer = new Trainer({ model: m.build(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.01 }), logger: new SilentLogger(), plugins });
  await trainer.setup();
  const { x, y } = fixedBatch(m);
  let step = 0;
  const one = () => {
    trainer.trainStep({ x, y }, { step, epoch: 0, batch: step }).loss.dispose();
    step++;
  };
  const measure = (n: number) => {
    one();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) one();
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    return { stepsPerSecond: (1000 * n) / ms, cpuMsPerStep: (c.user + c.system) / 1000 / n };
  };
  return { trainer, measure, dispose: () => { trainer.dispose(); tf.dispose([x, y]); } };
}

/**
 * `npm run bench -- data-parallel [rounds]`: training steps/s with one wasm thread against
 * core's opt-in dataParallel({ replicas: 2 }) (the main thread and one worker, one wasm thread
 * each), on the backend bench's CNN (batch 64) and big MLP (batch 256), in paired rounds (order
 * reversed every other round) in one process. Reported, not a target.
 */
export async function run(args: string[]): Promise<void> {
  const rounds = Number(args[0] ?? 6);
  await selectBackend('wasm', { threads: 1, log: false });
  const loadAtStart = os.loadavg();
  const models: Record<string, unknown> = {};
  const rows: Record<string, unknown>[] = [];
  for (const name of ['cnn', 'mlp-big']) {
    const m = STEP_MODELS.find((s) => s.name === name)!;
    const one = await stepper(m, []);
    const two = await stepper(m, [dataParallel({ replicas: 2 })]);
    const perRound: Array<{ load: number; one: ReturnType<typeof one.measure>; two: ReturnType<typeof two.measure> }> = [];
    for (let r = 0; r < rounds; r++) {
      const load = os.loadavg()[0];
      const [a, b] = r % 2 === 0 ? [one.measure(STEPS[name]), two.measure(STEPS[name])] : [two.measure(STEPS[name]), one.measure(STEPS[name])].reverse();
      perRound.push({ load: round(load, 2), one: a, two: b });
    }
    one.dispose();
    two.dispose();
    const ratios = perRound.map((p) => p.two.stepsPerSecond / p.one.stepsPerSecond);
    const summary = {
      label: m.label,
      oneThreadStepsPerSecond: round(median(perRound.map((p) => p.one.stepsPerSecond)), 3),
      dataParallel2StepsPerSecond: round(median(perRound.map((p) => p.two.stepsPerSecond)), 3),
      ratio: { median: round(median(ratios), 3), min: round(Math.min(...ratios), 3), max: round(Math.max(...ratios), 3), values: ratios.map((v) => round(v, 3)) },
      cpuMsPerStep: { oneThread: round(median(perRound.map((p) => p.one.cpuMsPerStep)), 1), dataParallel2: round(median(perRound.map((p) => p.two.cpuMsPerStep)), 1) },
      rounds: perRound,
    };
    models[name] = summary;
    rows.push({ model: m.label, '1 thread steps/s': summary.oneThreadStepsPerSecond, 'dataParallel 2 steps/s': summary.dataParallel2StepsPerSecond, 'ratio (median)': summary.ratio.median, 'ratio range': `${summary.ratio.min}-${summary.ratio.max}`, 'CPU ms/step 1T': summary.cpuMsPerStep.oneThread, 'CPU ms/step DP2 (all threads)': summary.cpuMsPerStep.dataParallel2 });
  }
  console.table(rows);
  writeResults('data-parallel', {
    command: `npm run bench -- data-parallel${args.length ? ` ${args.join(' ')}` : ''}`,
    rounds,
    stepsPerRound: STEPS,
    loadAtStart: loadAtStart.map((v) => round(v, 2)),
    loadAtEnd: os.loadavg().map((v) => round(v, 2)),
    notes: [
      'reported, not a target: dataParallel is opt-in; the thread targets of issue #18 are judged in backend.json on wasm threads',
      'ratio: per round, dataParallel steps/s over one thread steps/s, variants interleaved with the order reversed every other round; needs two free cores (compare loadAtStart with machine.cpus)',
    ],
    models,
  }, []);
}
