import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

// Charts for benchmark results, rendered to SVG by Vega-Lite (a well-kept declarative
// charting library that renders headless in Node, no canvas needed), so READMEs can show
// the figures the benchmark JSON holds.

export interface Axis {
  field: string;
  title: string;
  /** Default 'linear' (not forced to include 0). 'symlog' is logarithmic away from 0 and still shows 0. */
  scale?: 'linear' | 'log' | 'symlog';
  /** Tick values (default: the library's choice). */
  ticks?: number[];
}

export interface LineChartSpec {
  title: string;
  /** A second, smaller title line. */
  subtitle?: string;
  x: Axis;
  y: Axis;
  /** The field that names a line (one colour per value). */
  series: string;
  data: Record<string, unknown>[];
  width?: number;
  height?: number;
}

/** A line chart (points joined per series) as an SVG string. */
export async function lineChartSvg(spec: LineChartSpec): Promise<string> {
  const axis = (a: Axis) => ({
    field: a.field,
    type: 'quantitative' as const,
    title: a.title,
    scale: a.scale && a.scale !== 'linear' ? { type: a.scale } : { zero: false },
    ...(a.ticks && { axis: { values: a.ticks } }),
  });
  const lite: vegaLite.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: spec.subtitle ? { text: spec.title, subtitle: spec.subtitle } : spec.title,
    width: spec.width ?? 520,
    height: spec.height ?? 300,
    background: 'white',
    data: { values: spec.data },
    mark: { type: 'line', point: true },
    encoding: { x: axis(spec.x), y: axis(spec.y), color: { field: spec.series, type: 'nominal', title: null, legend: { labelLimit: 400 } } },
  };
  const view = new vega.View(vega.parse(vegaLite.compile(lite).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes `svg` to bench/results/<name>.svg (atomically) and returns the path. */
export function writeSvg(file: string, svg: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, svg);
  fs.renameSync(tmp, file);
  return file;
}
