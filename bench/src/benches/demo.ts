import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { round, target, writeResults, type Target } from '../results';

/**
 * `npm run bench -- demo`: the work of the root README's commands, timed as a new user
 * would see it. Each config is trained by the tapfit CLI in a fresh process (what `npm run
 * demo` runs after its `tsc -b`), on the backend `auto` picks; the wall time of the whole
 * process, the test accuracy and the load average around the run are recorded, so the
 * README quotes figures with their command and their machine.
 */

const repo = path.resolve(__dirname, '../../../..');
const cli = path.join(repo, 'examples/dist/src/cli.js');

/** The README's commands and the accuracy it states for each (the runs are seeded: exact). */
const RUNS = [
  { name: 'demo', config: 'examples/configs/demo.json', command: 'npm run demo', statedAccuracy: 98.5 },
  { name: 'mnist-cnn', config: 'examples/configs/mnist-cnn.json', command: 'npm run tapfit -- train examples/configs/mnist-cnn.json', statedAccuracy: 98.1 },
];

export async function run(args: string[]): Promise<void> {
  const only = args.length ? RUNS.filter((r) => args.includes(r.name)) : RUNS;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-bench-demo-'));
  const results: Record<string, unknown>[] = [];
  const targets: Target[] = [];
  try {
    for (const r of only) {
      // The same config, its metrics log redirected so the run leaves the repository alone.
      const config = JSON.parse(fs.readFileSync(path.join(repo, r.config), 'utf8')) as { log?: Record<string, unknown> };
      const file = path.join(work, `${r.name}.json`);
      fs.writeFileSync(file, JSON.stringify({ ...config, log: { ...config.log, metrics: path.join(work, `${r.name}.metrics.jsonl`) } }));
      const loadBefore = os.loadavg();
      const started = process.hrtime.bigint();
      const env = { ...process.env };
      delete env.TAPFIT_BACKEND; // the README's commands run with the default, 'auto'
      const child = spawnSync(process.execPath, [cli, 'train', file], { encoding: 'utf8', cwd: repo, env });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const loadAfter = os.loadavg();
      if (child.status !== 0) throw new Error(`${r.command} failed (exit ${child.status}):\n${child.stderr}`);
      const test = /^test: loss ([\d.]+), accuracy ([\d.]+)% \(([\d.]+) s\)$/m.exec(child.stdout);
      const backend = /^backend: (\w+)/m.exec(child.stdout)?.[1];
      if (!test) throw new Error(`${r.command}: no test line in its output:\n${child.stdout.slice(-2000)}`);
      const accuracy = Number(test[2]);
      const result = {
        name: r.name,
        command: r.command,
        config: r.config,
        backend,
        wallSeconds: round(seconds, 1),
        trainAndEvaluateSeconds: Number(test[3]),
        testAccuracyPercent: accuracy,
        testLoss: Number(test[1]),
        loadAverage1mBefore: round(loadBefore[0], 2),
        loadAverage1mAfter: round(loadAfter[0], 2),
      };
      console.log(JSON.stringify(result));
      results.push(result);
      targets.push(target(`${r.name}: test accuracy (%) as the README states`, accuracy, 'min', r.statedAccuracy));
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  writeResults('demo', { runs: results }, targets, `npm run bench -- demo${args.length ? ` ${args.join(' ')}` : ''}`);
}
