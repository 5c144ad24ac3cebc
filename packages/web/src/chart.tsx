/** A small SVG line chart for telemetry series: no library, accessible name, gaps where there is no data. */
import { formatClock } from './format.js';

/** One line of a chart. */
export interface ChartLine {
  readonly name: string;
  /** A CSS colour class suffix: `c1` … `c4`. */
  readonly color: 'c1' | 'c2' | 'c3' | 'c4';
  readonly points: readonly { readonly t: number; readonly v: number | null }[];
}

const W = 560;
const H = 180;
const PAD = { left: 56, right: 12, top: 12, bottom: 26 };

/** A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= max) return m * power;
  return 10 * power;
}

/** A line chart with a y axis in `format`, titled `title`. */
export function LineChart(props: {
  title: string;
  lines: readonly ChartLine[];
  format: (v: number) => string;
  fromMs: number;
  toMs: number;
}) {
  const values = props.lines.flatMap((l) => l.points.map((p) => p.v).filter((v): v is number => v !== null));
  const max = niceMax(values.length === 0 ? 0 : Math.max(...values));
  const x = (t: number) =>
    PAD.left + ((t - props.fromMs) / Math.max(1, props.toMs - props.fromMs)) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
  const paths = props.lines.map((line) => {
    let d = '';
    let pen = false;
    for (const p of line.points) {
      if (p.v === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
    }
    return { line, d };
  });
  const latest = props.lines.map((l) => {
    const last = [...l.points].reverse().find((p) => p.v !== null);
    return `${l.name} ${last?.v === undefined || last.v === null ? 'no data' : props.format(last.v)}`;
  });
  const label = `${props.title}: ${values.length === 0 ? 'no data in this range' : `latest ${latest.join(', ')}`}`;
  const ticks = [0, max / 2, max];
  const mid = (props.fromMs + props.toMs) / 2;
  return (
    <figure className="chart">
      <figcaption>
        <span className="chart-title">{props.title}</span>
        <span className="chart-legend">
          {props.lines.map((l) => (
            <span key={l.name} className={`legend legend-${l.color}`}>
              {l.name}
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label}>
        {ticks.map((t) => (
          <g key={t}>
            <line className="grid" x1={PAD.left} x2={W - PAD.right} y1={y(t)} y2={y(t)} />
            <text className="axis" x={PAD.left - 6} y={y(t) + 4} textAnchor="end">
              {t === 0 ? '0' : props.format(t)}
            </text>
          </g>
        ))}
        {[props.fromMs, mid, props.toMs].map((t, i) => (
          <text
            key={i}
            className="axis"
            x={x(t)}
            y={H - 8}
            textAnchor={i === 0 ? 'start' : i === 2 ? 'end' : 'middle'}
          >
            {formatClock(t)}
          </text>
        ))}
        {paths.map(({ line, d }) => (
          <path key={line.name} className={`line line-${line.color}`} d={d} />
        ))}
        {paths.map(({ line }) =>
          line.points.filter((p) => p.v !== null).length === 1
            ? line.points
                .filter((p) => p.v !== null)
                .map((p) => (
                  <circle
                    key={line.name}
                    className={`dot line-${line.color}`}
                    cx={x(p.t)}
                    cy={y(p.v ?? 0)}
                    r={3}
                  />
                ))
            : null,
        )}
      </svg>
      {values.length === 0 && <p className="chart-empty">No data in this range</p>}
    </figure>
  );
}
