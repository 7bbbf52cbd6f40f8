import * as fs from 'node:fs';
import type { TrainerDescription } from '@tapfit/core';
import { bucketNote, minMaxBuckets } from './min-max-buckets';
import type { MinMaxStream } from './min-max-stream';
import type { EpochRecord } from './report-plugin';
import type { StepRecord } from './step-record';
import type { StepSummary } from './step-summary';

/** Everything a training report shows. */
export interface ReportData {
  title: string;
  /** ISO time the run started. */
  started: string;
  backend: string;
  describe: TrainerDescription;
  /** Every step record, in order: read once, when report.json is written (the page draws from stepSummary). */
  steps: Iterable<StepRecord>;
  /** What the page shows of the steps, bounded however long the run; not written to report.json. */
  stepSummary: StepSummary;
  epochs: readonly EpochRecord[];
  /** The step a `--resume` run went on from (its checkpoint's): the report covers the steps from there. */
  resumedAt?: number;
  /** Held-out evaluation after training (loss, acc). */
  test?: Record<string, number>;
  seconds?: number;
}

type Spec = Record<string, unknown>;

const MIB = 2 ** 20;
const WIDTH = 440;
const HEIGHT = 200;

/** A Vega-Lite line chart of `rows`: x against one or more y fields (folded into a coloured series). */
function lineChart(
  title: string | { text: string; subtitle: string },
  rows: readonly Record<string, unknown>[],
  x: { field: string; title: string },
  ys: { field: string; title: string }[],
  yTitle: string,
  options: { points?: boolean; zero?: boolean } = {},
): Spec {
  const fold = ys.length > 1;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    transform: fold
      ? [{ fold: ys.map((y) => y.field), as: ['key', 'value'] }, { filter: 'isValid(datum.value)' }, { calculate: `${JSON.stringify(Object.fromEntries(ys.map((y) => [y.field, y.title])))}[datum.key]`, as: 'series' }]
      : [{ filter: `isValid(datum['${ys[0].field}'])` }],
    mark: { type: 'line', point: options.points ?? false, tooltip: true },
    encoding: {
      x: { field: x.field, type: 'quantitative', title: x.title, axis: { tickMinStep: 1, format: 'd' } },
      y: { field: fold ? 'value' : ys[0].field, type: 'quantitative', title: yTitle, scale: { zero: options.zero ?? false } },
      ...(fold ? { color: { field: 'series', type: 'nominal', title: null, scale: { domain: ys.map((y) => y.title) }, legend: { orient: 'bottom' } } } : {}),
    },
  };
}

type Series = { field: string; title: string; at(i: number): number | undefined };

/**
 * A line chart of `count` rows (steps or epochs) in x order: each series bucketed to at
 * most MAX_POINTS_PER_SERIES points (min/max per bucket, see minMaxBuckets; the subtitle
 * says so when it was), and only the fields it plots embedded.
 */
function bucketedChart(title: string, count: number, x: { field: string; unit: string; at(i: number): number }, ys: Series[], yTitle: string, options: { points?: boolean; zero?: boolean } = {}): Spec {
  const note = bucketNote(count, x.unit);
  const rows = ys.flatMap((y) => minMaxBuckets(count, x, y));
  return lineChart(note ? { text: title, subtitle: note } : title, rows, { field: x.field, title: x.unit }, ys, yTitle, options);
}

/** A line chart of the steps: each series as its MinMaxStream keeps it (the subtitle says when rows were left out). */
function streamedChart(title: string, ys: { field: string; title: string; stream: MinMaxStream }[], yTitle: string, options: { zero?: boolean } = {}): Spec {
  const note = ys[0].stream.note('step');
  const rows = ys.flatMap((y) => y.stream.rows('step', y.field));
  return lineChart(note ? { text: title, subtitle: note } : title, rows, { field: 'step', title: 'step' }, ys, yTitle, options);
}

/**
 * The charts: loss (per step and per epoch), accuracy, learning rate, step time, peak
 * memory, each at most a few thousand points a series (the steps' as the summary's
 * MinMaxStreams keep them, the epochs' see bucketedChart), so the page
 * stays a few MB however long the run. A chart with nothing to draw is left out: a
 * `--resume` run of a checkpoint that had finished its epochs trains no step and no epoch.
 */
export function reportCharts(data: ReportData): { id: string; spec: Spec }[] {
  const { stepSummary: summary, epochs } = data;
  const epoch = { field: 'epoch', unit: 'epoch', at: (i: number) => epochs[i].epoch + 1 };
  const epochSeries = (keys: string[]): Series[] => keys.filter((k) => epochs.some((e) => k in e)).map((k) => ({ field: k, title: k, at: (i) => epochs[i][k] }));
  const loss = epochSeries(['loss', 'val_loss']);
  const accuracy = epochSeries(['acc', 'val_acc']);
  const { series } = summary;
  const perStep = summary.count
    ? [
        { id: 'chart-loss-steps', spec: streamedChart('Loss per step', [{ field: 'loss', title: 'loss', stream: series.loss }], 'batch loss') },
        ...(summary.hasLr ? [{ id: 'chart-lr', spec: streamedChart('Learning rate', [{ field: 'lr', title: 'lr', stream: series.lr }], 'learning rate') }] : []),
        { id: 'chart-step-time', spec: streamedChart('Step time', [{ field: 'ms', title: 'ms', stream: series.ms }], 'ms per step', { zero: true }) },
        {
          id: 'chart-peak-memory',
          spec: streamedChart(
            'Memory per step (live tensors)',
            [
              { field: 'peakMiB', title: 'peak during the step', stream: series.peakMiB },
              { field: 'liveMiB', title: 'after the step', stream: series.liveMiB },
            ],
            'MiB',
            { zero: true },
          ),
        },
      ]
    : [];
  return [
    ...perStep.slice(0, 1),
    ...(loss.length ? [{ id: 'chart-loss-epochs', spec: bucketedChart('Loss per epoch', epochs.length, epoch, loss, 'loss', { points: true }) }] : []),
    ...(accuracy.length ? [{ id: 'chart-accuracy', spec: bucketedChart('Accuracy per epoch', epochs.length, epoch, accuracy, 'accuracy', { points: true }) }] : []),
    ...perStep.slice(1),
  ];
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON safe inside a <script> element. */
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c');
const mib = (b: number): string => `${(b / MIB).toFixed(2)} MiB`;

function table(head: string[] | undefined, rows: string[][]): string {
  const thead = head ? `<thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>` : '';
  return `<table>${thead}<tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function summary(data: ReportData): string[][] {
  const d = data.describe;
  const rows = [
    ['started', data.started],
    ['backend', data.backend],
    ['plugins', d.plugins.join(', ') || '(none)'],
    ['update', d.optimizer === 'chain' ? d.stepTransforms.join(' -> ') : `${d.optimizer} (black box)`],
    ...(backprop(d) ? [['backprop', backprop(d)!]] : []),
    ['trainable parameters', String(d.trainableParams)],
    ['steps', `${data.stepSummary.count} (${data.stepSummary.withoutUpdate} without an update)`],
  ];
  if (data.resumedAt !== undefined) {
    const { firstStep, lastStep } = data.stepSummary;
    rows.push(['resumed', `at step ${data.resumedAt} (from a checkpoint): ${lastStep === undefined ? 'no step trained after it' : `this report covers steps ${firstStep} to ${lastStep}`}`]);
  }
  if (data.test) rows.push(['test', Object.entries(data.test).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')]);
  if (data.seconds !== undefined) rows.push(['wall time', `${data.seconds.toFixed(1)} s`]);
  return rows;
}

/** Bytes as describe() prints them: MiB, except sizes that would read 0.00 MiB. */
function bytes(b: number): string {
  if (b <= 0 || b >= 0.005 * MIB) return mib(b);
  return b >= 2 ** 10 ? `${(b / 2 ** 10).toFixed(1)} KiB` : `${b} B`;
}

/** Who runs the backward, as describe() says it. */
function backprop(d: TrainerDescription): string | undefined {
  if (!d.backprop) return undefined;
  return `${d.backprop.provider === 'core' ? 'core' : `plugin '${d.backprop.provider}'`} (${d.backprop.runs})`;
}

/**
 * The memory plan as describe() shows it: per segment its policy, or, when a plugin's
 * Backprop runs the backward and does not realise the plan (a pipeline), that the plan is
 * unused (its store/recompute policies would read as applied) and only the extra memory
 * other parts hold.
 */
function memoryPlan(d: TrainerDescription): string {
  const plan = d.memoryPlan;
  if (!plan) return '<p>No memory plan.</p>';
  const extra = plan.extraBytes.map((e) => [`+ ${e.source}`, bytes(e.bytes)]);
  if (d.backprop && !d.backprop.realisesMemoryPlan) {
    const unused = `<p>${escapeHtml(`Not used by the Backprop of plugin '${d.backprop.provider}' (${d.backprop.runs}): its per-segment policies do not apply.`)}</p>`;
    return unused + (extra.length ? table(['extra memory', 'bytes'], extra) : '');
  }
  const rows = plan.segments.map((s) => [s.name, s.policy, s.predictedBytes === undefined ? '' : bytes(s.predictedBytes)]);
  for (const [source, b] of extra) rows.push([source, '', b]);
  const peak = plan.predictedPeakBytes === undefined ? '' : `<p>Predicted peak: ${bytes(plan.predictedPeakBytes)}.</p>`;
  return peak + table(['segment', 'policy', 'predicted bytes'], rows);
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 12px; } h2 { font-size: 17px; margin: 24px 0 8px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
.chart { border: 1px solid #ddd; border-radius: 6px; padding: 8px; min-height: 260px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; } .cols { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
`;

/** The libraries, inlined so the report opens offline. */
function libraries(): string {
  return ['vega/build/vega.min.js', 'vega-lite/build/vega-lite.min.js'].map((m) => `<script>${fs.readFileSync(require.resolve(m), 'utf8').replace(/<\/script/gi, '<\\/script')}</script>`).join('\n');
}

/**
 * The report as one self-contained HTML file: Vega-Lite charts (vega and vega-lite
 * inlined from node_modules, rendered to SVG when the page opens; `data-rendered` on the
 * body turns 'true' when all are drawn, 'error' if one fails) and tables of the run, the
 * memory plan and the resolved hook order.
 */
export function renderReport(data: ReportData): string {
  const charts = reportCharts(data);
  const hooks = Object.entries(data.describe.hooks).map(([hook, taps]) => [hook, taps.length ? taps.join(' -> ') : '-']);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(data.title)}: tapfit training report</title><style>${STYLE}</style>
${libraries()}
</head><body>
<h1>${escapeHtml(data.title)}: training report</h1>
<div class="cols"><div>${table(undefined, summary(data))}</div></div>
<h2>Training</h2>
${charts.length ? `<div class="charts">${charts.map((c) => `<div class="chart" id="${c.id}"></div>`).join('')}</div>` : '<p>No charts: this run trained no step.</p>'}
<div class="cols">
<div><h2>Memory plan</h2>${memoryPlan(data.describe)}</div>
<div><h2>Hook order (as resolved)</h2>${table(['hook', 'taps in run order'], hooks)}</div>
</div>
<script type="application/json" id="report-charts">${scriptJson(charts)}</script>
<script>
(function () {
  var charts = JSON.parse(document.getElementById('report-charts').textContent);
  Promise.all(charts.map(function (c) {
    var view = new vega.View(vega.parse(vegaLite.compile(c.spec).spec), { renderer: 'svg', container: '#' + c.id, hover: true });
    return view.runAsync();
  })).then(function () { document.body.dataset.rendered = 'true'; }, function (err) { console.error(err); document.body.dataset.rendered = 'error'; });
})();
</script>
</body></html>
`;
}
