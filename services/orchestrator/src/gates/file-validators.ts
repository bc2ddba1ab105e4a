import { BackendsFileError, parseBackendsFile } from '@gguf-gateway/shared';
import { parseKeysFile } from '@gguf-gateway/shared';

export interface FileProblem {
  line: number | null;
  message: string;
}

export interface FileReport {
  entries: number;
  problems: FileProblem[];
}

/**
 * A gate checks a file through one of these, with the parser of the service that reads the file,
 * so a file that passes here is one that service loads.
 */
export type FileValidator = (text: string) => FileReport;

/** The auth service's parser (packages/shared); problems name the line and key id, never the secret. */
export const validateKeysFile: FileValidator = (text) => {
  const { keys, errors } = parseKeysFile(text);
  const problems: FileProblem[] = errors.map((e) => ({ line: e.line, message: e.message }));
  if (keys.length === 0 && problems.length === 0) problems.push({ line: null, message: 'no key in the file' });
  return { entries: keys.length, problems };
};

/** The gateway's parser: YAML, models with tiers of known backends. */
export const validateBackendsFile: FileValidator = (text) => {
  try {
    return { entries: parseBackendsFile(text).models.length, problems: [] };
  } catch (err) {
    if (!(err instanceof BackendsFileError)) throw err;
    return { entries: 0, problems: err.problems.map((message) => ({ line: null, message })) };
  }
};

export function describeProblems(problems: FileProblem[]): string {
  return problems.map((p) => (p.line === null ? p.message : `line ${p.line}: ${p.message}`)).join('; ');
}
