import { parseDocument } from 'yaml';

export interface FileProblem {
  line: number | null;
  message: string;
}

export interface FileReport {
  entries: number;
  problems: FileProblem[];
}

/**
 * A gate checks a file through one of these. The services own the real parsers (keys file in
 * packages/shared, backends file in the gateway); each can be swapped in here without touching the gate.
 */
export type FileValidator = (text: string) => FileReport;

const KEY_OPTIONS = new Set(['rpm', 'tpm', 'concurrency', 'daily_tokens', 'models', 'scope', 'expires']);
const COUNT_OPTIONS = new Set(['rpm', 'tpm', 'concurrency', 'daily_tokens']);

function keyLineProblem(line: string): string | null {
  const [head = '', ...options] = line.split(/\s+/);
  const [keyId, secret, rpm, ...expires] = head.split(':');
  if (!keyId || !/^[A-Za-z0-9_.-]+$/.test(keyId)) return 'key_id must be letters, digits, _ . or -';
  if (!secret) return `key ${keyId} has no secret`;
  if (secret.startsWith('sha256$') && !/^sha256\$[0-9a-f]{64}$/i.test(secret)) {
    return `key ${keyId}: a sha256$ secret must be 64 hex digits`;
  }
  if (rpm !== undefined && rpm !== '' && !/^\d+$/.test(rpm)) return `key ${keyId}: rpm must be a whole number`;
  if (expires.length > 0 && Number.isNaN(Date.parse(expires.join(':')))) {
    return `key ${keyId}: expires is not a date`;
  }
  for (const option of options) {
    const [name = '', value] = option.split('=', 2);
    if (!KEY_OPTIONS.has(name) || !value) return `key ${keyId}: unknown option ${name || option}`;
    if (COUNT_OPTIONS.has(name) && !/^\d+$/.test(value)) return `key ${keyId}: ${name} must be a whole number`;
    if (name === 'expires' && Number.isNaN(Date.parse(value))) return `key ${keyId}: expires is not a date`;
  }
  return null;
}

/** The keys file format of DESIGN.md; problems name the line and the key id, never the secret. */
export const validateKeysFile: FileValidator = (text) => {
  const problems: FileProblem[] = [];
  let entries = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const problem = keyLineProblem(line);
    if (problem) problems.push({ line: i + 1, message: problem });
    else entries++;
  });
  if (entries === 0 && problems.length === 0) problems.push({ line: null, message: 'no key in the file' });
  return { entries, problems };
};

/** The backends file must be a YAML mapping with at least one entry. */
export const validateBackendsFile: FileValidator = (text) => {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    return {
      entries: 0,
      problems: doc.errors.map((e) => ({
        line: e.linePos?.[0]?.line ?? null,
        message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
      })),
    };
  }
  const value: unknown = doc.toJS();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { entries: 0, problems: [{ line: null, message: 'expected a YAML mapping at the top level' }] };
  }
  const entries = Object.keys(value).length;
  return { entries, problems: entries === 0 ? [{ line: null, message: 'the file is empty' }] : [] };
};

export function describeProblems(problems: FileProblem[]): string {
  return problems.map((p) => (p.line === null ? p.message : `line ${p.line}: ${p.message}`)).join('; ');
}
