import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { BalesError, ErrorCode } from '@bales/errors';
import { TASKS, type Task, type WarmupSetting } from './protocol';
import { parseWarmup } from './warm-up-config';

/** A model id: what a model folder, a URL segment and a Prometheus label value can all hold. */
export const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** MODEL_ID_PATTERN in words, for error messages. */
export const MODEL_ID_RULE = 'model_id must be 1-128 letters, digits, _ . or -';

/** A model as the repository describes it: where its weights are and how to serve them. */
export interface ModelSource {
  id: string;
  /** The weights file. */
  path: string;
  task: Task;
  labels?: string[];
  /** The model's own bound on rows per batch; MAX_BATCH_SIZE applies above it. */
  maxBatchSize?: number;
  /** config.json's batch_axes as written, checked against the signature once the model is loaded. */
  batchAxes?: unknown;
  version: number;
  /** config.json's warm-up samples, or false for none; undefined warms up on made-up inputs. */
  warmup?: WarmupSetting;
}

/** A model folder's optional config.json. */
interface ModelConfigFile {
  task?: Task;
  labels?: string[];
  max_batch_size?: number;
  batch_axes?: unknown;
  version?: number;
  warmup?: unknown;
}

const WEIGHTS_FILE = 'model.onnx';

/**
 * The models on disk: MODELS_DIR holds one folder per model (`<id>/model.onnx`, optionally `config.json`),
 * and every weights path a client names must lie inside it. Reads files only; ONNX Runtime never runs here.
 */
export class ModelRepository {
  /** MODELS_DIR, absolute. */
  readonly root: string;

  /** @param dir MODELS_DIR as configured, named so in error messages. */
  constructor(private readonly dir: string) {
    this.root = resolve(dir);
  }

  /** The ids of the model folders (those holding a model.onnx), sorted. */
  folders(): string[] {
    if (!existsSync(this.root)) throw new Error(`MODELS_DIR ${this.root} does not exist`);
    return readdirSync(this.root)
      .sort()
      .filter((name) => {
        const folder = join(this.root, name);
        // A dangling link or an unreadable entry is no model folder; it must not stop the others from loading.
        try {
          return statSync(folder).isDirectory() && existsSync(join(folder, WEIGHTS_FILE));
        } catch {
          return false;
        }
      });
  }

  /** The weights file of a model folder. */
  weightsOf(id: string): string {
    return join(this.root, id, WEIGHTS_FILE);
  }

  /**
   * A model folder's weights and config.json; throws INVALID_MODEL naming the file (from MODELS_DIR) and the field
   * when config.json is not usable.
   */
  read(id: string): ModelSource {
    if (!MODEL_ID_PATTERN.test(id)) throw new BalesError(ErrorCode.INVALID_MODEL, `model folder '${id}' is not a valid model id`);
    const configPath = join(this.root, id, 'config.json');
    const named = join(id, 'config.json');
    const file = existsSync(configPath) ? readConfig(configPath, named) : {};
    const field = <T>(name: keyof ModelConfigFile, read: (value: unknown) => T): T => {
      try {
        return read(file[name]);
      } catch (err) {
        throw new BalesError(ErrorCode.INVALID_MODEL, `${named}: ${(err as Error).message}`);
      }
    };
    return {
      id,
      path: this.weightsOf(id),
      task: field('task', (v) => (v === undefined ? 'classification' : oneOf(v, TASKS, 'task'))),
      labels: field('labels', (v) => (v === undefined ? undefined : strings(v, 'labels'))),
      maxBatchSize: field('max_batch_size', (v) => (v === undefined ? undefined : integer(v, 'max_batch_size', 1, 4096))),
      batchAxes: file.batch_axes,
      version: field('version', (v) => (v === undefined ? 1 : integer(v, 'version', 1, Number.MAX_SAFE_INTEGER))),
      warmup: field('warmup', parseWarmup),
    };
  }

  /**
   * Resolves a weights path and refuses anything outside MODELS_DIR: first by its name, before the
   * file system is touched, then again after symlinks are followed.
   * A relative path is read from the working directory (the original's "./models/x.onnx"), else from MODELS_DIR.
   */
  resolveWeights(weightsPath: string): string {
    const candidates = isAbsolute(weightsPath) ? [weightsPath] : [resolve(weightsPath), resolve(this.root, weightsPath)];
    const candidate = candidates.find((c) => isInside(this.root, c));
    const outside = () => new BalesError(ErrorCode.PATH_NOT_ALLOWED, `weights_path must lie inside MODELS_DIR (${this.dir})`);
    if (!candidate) throw outside();
    if (!existsSync(candidate)) throw new BalesError(ErrorCode.FILE_NOT_FOUND, `weights_path ${weightsPath} does not exist`);
    const real = realpathSync(candidate);
    if (!isInside(realpathSync(this.root), real)) throw outside();
    if (!statSync(real).isFile()) throw new BalesError(ErrorCode.FILE_NOT_FOUND, `weights_path ${weightsPath} is not a file`);
    return real;
  }

  /** A path as log lines name it: relative to MODELS_DIR. */
  name(path: string): string {
    return relative(this.root, path);
  }
}

/** A config.json's fields; throws INVALID_MODEL, naming the file as `named`, when it is not a JSON object. */
function readConfig(configPath: string, named: string): ModelConfigFile {
  let file: unknown;
  try {
    file = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new BalesError(ErrorCode.INVALID_MODEL, `${named}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new BalesError(ErrorCode.INVALID_MODEL, `${named}: must hold a JSON object`);
  return file;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], name: string): T {
  if (!allowed.includes(value as T)) throw new Error(`${name} must be one of ${allowed.join(', ')}`);
  return value as T;
}

function strings(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`${name} must be a list of strings`);
  return value;
}

function integer(value: unknown, name: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) throw new Error(`${name} must be a whole number from ${min} to ${max}`);
  return value as number;
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
