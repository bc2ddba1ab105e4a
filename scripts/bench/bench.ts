/** One measured line of a suite's table: a label and its figures, already formatted or numeric. */
export interface BenchRow {
  case: string;
  [figure: string]: string | number;
}

/** A suite measures side by side in one run and returns its rows; it starts and stops what it needs. */
export interface BenchSuite {
  name: string;
  run(): Promise<BenchRow[]>;
}

export function formatTable(title: string, rows: BenchRow[]): string {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cell = (value: string | number | undefined) =>
    value === undefined
      ? ''
      : typeof value === 'number'
        ? Number.isInteger(value)
          ? String(value)
          : value.toFixed(2)
        : value;
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((row) => cell(row[c]).length)));
  const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    `### ${title}`,
    line(columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map((row) => line(columns.map((c) => cell(row[c])))),
  ].join('\n');
}
