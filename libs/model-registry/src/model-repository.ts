import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { BalesError, ErrorCode } from '@bales/errors';
import { TASKS, type Task } from './protocol';

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
  version: number;
}

/** A model folder's optional config.json. */
interface ModelConfigFile {
  task?: Task;
  labels?: string[];
  max_batch_size?: number;
  version?: number;
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
        return statSync(folder).isDirectory() && existsSync(join(folder, WEIGHTS_FILE));
      });
  }

  /** A model folder's weights and config.json; throws naming the folder or file when either is not usable. */
  read(id: string): ModelSource {
    if (!MODEL_ID_PATTERN.test(id)) throw new Error(`model folder '${id}' is not a valid model id`);
    const folder = join(this.root, id);
    const configPath = join(folder, 'config.json');
    const file: ModelConfigFile = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : {};
    const task = file.task ?? 'classification';
    if (!TASKS.includes(task)) throw new Error(`${configPath}: task must be one of ${TASKS.join(', ')}`);
    return { id, path: join(folder, WEIGHTS_FILE), task, labels: file.labels, maxBatchSize: file.max_batch_size, version: file.version ?? 1 };
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

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
