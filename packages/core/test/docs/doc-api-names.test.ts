// API names the prose of the docs cites: each DI token a document names (`Tokens.X`) is one
// core exports, and a document that recommends `checkGradients` (two exports share the
// name) says it is the testing kit's, so a reader does not import the root one.

import * as path from 'node:path';
import { expect } from 'chai';
import { Tokens } from '../../src';
import { repositoryRoot, repositoryTextFiles } from './doc-references';

const markdown = () => repositoryTextFiles(repositoryRoot(__dirname)).filter((f) => f.path.endsWith('.md'));

describe('API names in the documentation', () => {
  it('every Tokens.X a document names is a token core exports', () => {
    const unknown: string[] = [];
    let cited = 0;
    for (const f of markdown()) {
      for (const [line, text] of f.text.split('\n').entries()) {
        for (const m of text.matchAll(/\bTokens\.([A-Za-z]+)/g)) {
          cited++;
          if (!Object.hasOwn(Tokens, m[1])) unknown.push(`${f.path}:${line + 1}: Tokens.${m[1]}`);
        }
      }
    }
    expect(cited, 'token citations found').to.be.greaterThan(7);
    expect(unknown).to.deep.equal([]);
  });

  it("docs/design.md's DI paragraph names every token and no other", () => {
    const design = markdown().find((f) => f.path === path.posix.join('docs', 'design.md'))!;
    const paragraph = design.text.split('\n\n').find((p) => p.startsWith('**DI (tsyringe)**'))!;
    const named = [...paragraph.matchAll(/`Tokens\.([A-Za-z]+)`/g)].map((m) => m[1]).sort();
    expect(named).to.deep.equal(Object.keys(Tokens).sort());
  });

  it('a document that recommends checkGradients says it comes from @tapfit/core/testing (in its paragraph or section)', () => {
    const vague: string[] = [];
    for (const f of markdown()) {
      let section = '';
      for (const paragraph of f.text.split(/\n\s*\n/)) {
        const heading = /^#+ .*$/m.exec(paragraph);
        if (heading) section = heading[0];
        if (paragraph.includes('checkGradients') && !`${section}\n${paragraph}`.includes('@tapfit/core/testing')) vague.push(`${f.path}: ${paragraph.slice(0, 80)}`);
      }
    }
    expect(vague).to.deep.equal([]);
  });
});
