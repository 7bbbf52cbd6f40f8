import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { composePlugins } from '../journeys/compose-in-code/main';
import { recordingLogger } from './helpers';

/** The compiled journeys (examples/dist/journeys) and their sources (examples/journeys). */
const journeys = path.join(__dirname, '..', 'journeys');
const sourceJourneys = path.join(__dirname, '..', '..', 'journeys');

describe('journey: compose plugins in your own trainer (examples/journeys/compose-in-code)', function () {
  this.timeout(180_000);

  it('pretrains with online-norm, Adaptive Braking and an inline plugin, then LoRA-finetunes the result on new digits', async () => {
    const log = recordingLogger();
    const r = await composePlugins({ train: 1000, test: 300, epochs: 1, backend: 'wasm', logger: log });
    await tf.setBackend('cpu');
    expect(r.pretrained, 'digits 0-4 after pretraining').to.be.greaterThan(0.85);
    expect(r.newTask.before, 'digits 5-9 never seen').to.be.lessThan(0.2);
    expect(r.newTask.after, 'digits 5-9 after LoRA').to.be.greaterThan(r.newTask.before + 0.4);
    expect(Math.abs(r.newTask.merged - r.newTask.after), 'merging the adapter changes only rounding').to.be.at.most(1 / 300);
    // Rank-4 adapters on fc (784 -> 64) and the head (64 -> 10) in full.
    expect(r.trainable.finetune).to.equal(4 * (784 + 64) + 64 * 10 + 10);
    expect(r.trainable.pretrain).to.be.greaterThan(r.trainable.finetune * 10);
    // The inline plugin ran in the REPORT band: one norm every 10 of the 32 steps.
    expect(r.gradientNorms).to.have.length(4);
    for (const n of r.gradientNorms) expect(n).to.be.greaterThan(0).and.lessThan(Infinity);
    const described = log.infos.join('\n');
    expect(described).to.match(/plugins: online-norm, adaptive-braking, gradient-norm-log/).and.match(/backward\s+online-norm -> gradient-norm-log/); // online-norm reads its statistics check in backward
    expect(described).to.match(/plugins: lora, adaptive-braking/);
  });

  it('runs as its README says (node examples/dist/journeys/compose-in-code/main.js --quick), with clean output', () => {
    // wasm named (as TAPFIT_BACKEND): 'auto' would probe webgpu, whose Dawn prints adapter warnings on machines with a software GPU.
    const r = spawnSync(process.execPath, [path.join(journeys, 'compose-in-code', 'main.js'), '--quick'], { encoding: 'utf8', env: { ...process.env, TAPFIT_BACKEND: 'wasm' } });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^backend: /).and.match(/pretrained on digits 0-4: accuracy/).and.match(/finetuned on digits 5-9 with LoRA: /);
    expect(r.stderr).to.equal('');
    expect(r.stdout).not.to.match(/looks like you are running TensorFlow\.js in Node\.js/);
  });
});

describe('journey: write, test and pack your own plugin (examples/journeys/write-a-plugin)', function () {
  this.timeout(180_000);
  const dir = path.join(sourceJourneys, 'write-a-plugin');
  const npm = (args: string[]) => spawnSync('npm', args, { cwd: dir, encoding: 'utf8', env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });

  it('npm test in its folder: the conformance suite (with the functional twin) passes', () => {
    const r = npm(['test']);
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/tapfit conformance: gradient-scale/).and.match(/functional twin equals the hook form/).and.match(/save, resume and dispose leak no tensors/).and.match(/trains deterministically/).and.match(/9 passing/);
    expect(r.stdout + r.stderr).not.to.match(/failing|looks like you are running TensorFlow\.js/);
  });

  it('npm pack --dry-run (prepack builds): the compiled plugin, its types, README and package.json, nothing else', () => {
    const r = npm(['pack', '--dry-run', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    const [pack] = JSON.parse(r.stdout) as { name: string; files: { path: string }[] }[];
    expect(pack.name).to.equal('tapfit-plugin-gradient-scale');
    expect(pack.files.map((f) => f.path).sort()).to.deep.equal(['README.md', 'dist/src/index.d.ts', 'dist/src/index.js', 'package.json']);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    expect(Object.keys(manifest.peerDependencies)).to.deep.equal(['@tapfit/core', '@tensorflow/tfjs']);
    expect(manifest.dependencies ?? {}).to.deep.equal({});
    // main and types point at what the pack holds, and the entry point works.
    expect(pack.files.map((f) => f.path)).to.include.members([manifest.main, manifest.types]);
    const entry = require(path.join(dir, manifest.main)) as { tapfitPlugin(o: { factor: number }): { name: string } };
    expect(entry.tapfitPlugin({ factor: 0.5 }).name).to.equal('gradient-scale');
  });
});
