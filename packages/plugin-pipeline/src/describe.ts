import type { ResolvedPipelineOptions } from './options';

/** One row of the stage table. */
export interface StageRow {
  stage: number;
  segments: readonly string[];
  /** D_s. */
  delay: number;
  params: number;
  /** Bytes of the weight versions the simulator holds for the stage's forward (D_s + 1, plus w_prev for 'lwp-delta'). */
  versionBytes: number;
  /** Bytes of the stage's stashed input for one micro-batch (known after a probe or a step). */
  stashBytes?: number;
  /** Micro-batches between this stage's forward and backward on real hardware (D_s + 1): its activation stash there. */
  inFlight: number;
}

const kib = (b?: number) => (b === undefined ? '?' : `${(b / 1024).toFixed(1)} KiB`);

/** The stage table as text. */
export function describeStages(rows: readonly StageRow[], o: ResolvedPipelineOptions): string {
  const lines = [
    `pipeline: ${rows.length} stage(s), compensation '${o.compensation}', prediction '${o.prediction}'${o.weightStashing ? ', weight stashing' : ''}${o.extraDelay ? `, extraDelay ${o.extraDelay}` : ''}`,
    '  stage  D_s  params     weight versions  stash/micro-batch  in flight  segments',
  ];
  for (const r of rows) {
    lines.push(
      `  ${String(r.stage).padEnd(5)}  ${String(r.delay).padEnd(3)}  ${String(r.params).padEnd(9)}  ${kib(r.versionBytes).padEnd(15)}  ${kib(r.stashBytes).padEnd(17)}  ${String(r.inFlight).padEnd(9)}  ${r.segments.join(', ')}`,
    );
  }
  return lines.join('\n');
}
