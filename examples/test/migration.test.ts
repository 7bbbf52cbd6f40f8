import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { main as withTapfit } from '../src/migration/fit-with-tapfit';
import { main as withTfjs } from '../src/migration/fit-with-tfjs';

const source = (file: string) => fs.readFileSync(path.resolve(__dirname, '../../src/migration', file), 'utf8').split('\n');

/** Lines only in `a` and lines only in `b`, by a longest common subsequence of lines. */
function lineDiff(a: string[], b: string[]): { removed: string[]; added: string[] } {
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const removed: string[] = [];
  const added: string[] = [];
  let [i, j] = [0, 0];
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) [i, j] = [i + 1, j + 1];
    else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) added.push(b[j++]);
    else removed.push(a[i++]);
  }
  return { removed, added };
}

describe('migration example: model.fit -> Trainer', () => {
  it('the Trainer program differs from the model.fit program by at most 3 changed lines, plugins aside', () => {
    const { removed, added } = lineDiff(source('fit-with-tfjs.ts'), source('fit-with-tapfit.ts'));
    const switched = added.filter((l) => !l.trimEnd().endsWith('// plugin'));
    const changed = Math.max(removed.length, switched.length);
    expect(changed, `removed:\n${removed.join('\n')}\nadded:\n${switched.join('\n')}`).to.be.at.most(3);
    expect(switched.join('\n')).to.match(/new Trainer\(/).and.match(/trainer\.fit\(/);
    expect(added.length - switched.length, 'plugin lines').to.equal(3);
  });

  it('the line count catches a program that drifts (a fourth changed line)', () => {
    const tapfit = source('fit-with-tapfit.ts').map((l) => l.replace("batchSize: 64", "batchSize: 32"));
    const { removed, added } = lineDiff(source('fit-with-tfjs.ts'), tapfit);
    expect(Math.max(removed.length, added.filter((l) => !l.endsWith('// plugin')).length)).to.equal(4);
  });

  it('both programs run (one short epoch each) and give histories of the same shape', async function () {
    this.timeout(300_000);
    const options = { samples: 256, testSamples: 128, epochs: 1, verbose: 0 as const };
    const tfjs = await withTfjs(options);
    const tapfit = await withTapfit(options);
    expect(Object.keys(tapfit.history).sort()).to.deep.equal(Object.keys(tfjs.history).sort());
    expect(Object.keys(tapfit.history).sort()).to.deep.equal(['acc', 'loss', 'val_acc', 'val_loss']);
    expect(tapfit.epoch).to.deep.equal(tfjs.epoch);
    for (const h of [tfjs.history, tapfit.history]) expect(Number.isFinite(Number(h.val_acc[0]))).to.equal(true);
  });
});
