/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), to check what /metrics
 * serves: every line must follow the grammar (names, label escapes, float values), a family's HELP and
 * TYPE come before its samples and once, its samples form one group, and no series repeats. prom-client
 * writes this format but cannot read it, so the check is ours. Throws naming the line that is wrong.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help?: string;
  type?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const FLOAT = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|Inf|NaN)$/;
/** Sample names a family of each type may use besides its own name. */
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

function parseValue(text: string, where: string): number {
  if (!FLOAT.test(text)) throw new Error(`${where}: '${text}' is not a float`);
  if (/^[+-]?Inf$/.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  return text === 'NaN' ? NaN : Number(text);
}

/** `{a="x",b="y\"z"}` starting at `text[0] === '{'`: the labels and where they end. */
function parseLabels(text: string, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = 1;
  while (text[i] !== '}') {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`${where}: bad label name '${name}'`);
    if (name in labels) throw new Error(`${where}: label '${name}' twice`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label value of '${name}' is not quoted`);
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] !== '\\') {
        value += text[j];
        continue;
      }
      const escaped = { '\\': '\\', '"': '"', n: '\n' }[text[++j]];
      if (escaped === undefined) throw new Error(`${where}: bad escape '\\${text[j]}' in label '${name}'`);
      value += escaped;
    }
    if (j >= text.length) throw new Error(`${where}: unterminated value of label '${name}'`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`${where}: expected ',' or '}' after label '${name}'`);
  }
  return { labels, end: i + 1 };
}

function parseSample(line: string, where: string): Sample {
  const nameEnd = line.search(/[{ ]/);
  if (nameEnd <= 0) throw new Error(`${where}: not a sample: '${line}'`);
  const name = line.slice(0, nameEnd);
  if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name '${name}'`);
  let rest = line.slice(nameEnd);
  let labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    const parsed = parseLabels(rest, where);
    labels = parsed.labels;
    rest = rest.slice(parsed.end);
  }
  const fields = rest.split(' ');
  if (fields[0] !== '' || fields.length < 2 || fields.length > 3) throw new Error(`${where}: expected ' VALUE [TIMESTAMP]' after the name`);
  if (fields.length === 3 && !/^-?[0-9]+$/.test(fields[2])) throw new Error(`${where}: bad timestamp '${fields[2]}'`);
  return { name, labels, value: parseValue(fields[1], where) };
}

function familyOf(families: Map<string, Family>, sampleName: string): Family | undefined {
  for (const [name, f] of families) {
    if (name === sampleName || (SUFFIXES[f.type ?? '']?.some((s) => name + s === sampleName) ?? false)) return f;
  }
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const closed = new Set<string>(); // families whose group of samples ended
  let current: Family | undefined;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line.trim() === '') return;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name '${name}'`);
      if (current && current.name !== name) closed.add(current.name);
      current = undefined;
      let f = families.get(name);
      if (f && (f.samples.length > 0 || closed.has(name))) throw new Error(`${where}: ${kind} of '${name}' after its samples`);
      if (!f) families.set(name, (f = { name, samples: [] }));
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for '${name}'`);
        if (/\\([^\\n]|$)/.test(rest.replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP of '${name}'`);
        f.help = rest.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
      } else {
        if (f.type !== undefined) throw new Error(`${where}: second TYPE for '${name}'`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type '${rest}'`);
        f.type = rest;
      }
      return;
    }
    if (line.startsWith('#')) return; // a comment
    const sample = parseSample(line, where);
    const f = familyOf(families, sample.name) ?? { name: sample.name, samples: [] };
    if (!families.has(f.name)) families.set(f.name, f);
    if (current && current !== f) closed.add(current.name);
    if (closed.has(f.name)) throw new Error(`${where}: samples of '${f.name}' are not in one group`);
    current = f;
    const key = sample.name + JSON.stringify(Object.entries(sample.labels).sort());
    if (series.has(key)) throw new Error(`${where}: series ${key} twice`);
    series.add(key);
    if (f.type === 'counter' && !(sample.value >= 0)) throw new Error(`${where}: counter '${f.name}' is ${sample.value}`);
    f.samples.push(sample);
  });
  return families;
}
