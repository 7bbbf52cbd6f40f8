import { expect } from 'chai';
import { declarationsProgram, exportsOf } from './public-declarations';

// Methods core's own code calls across its files, but users should not (marked @internal,
// which core's tsconfig strips), stay out of what a consumer's compiler sees.
describe('published declarations: internal members stay out', () => {
  it("DatasetData shows its data-source methods, not fit's openUnreadAsFitDataset and release", () => {
    const { program, checker, entries } = declarationsProgram();
    const core = entries.find((e) => e.specifier === '@tapfit/core')!;
    const cls = exportsOf(program, checker, core).find((e) => e.name === 'DatasetData')!.symbol;
    const names = checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(cls)).map((p) => p.name);
    expect(names).to.include.members(['batches', 'ownBatchSize']);
    expect(names.filter((n) => ['openUnreadAsFitDataset', 'release'].includes(n))).to.deep.equal([]);
  });
});
