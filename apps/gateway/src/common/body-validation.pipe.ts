import { ArgumentMetadata, BadRequestException, Injectable, SetMetadata, ValidationError, ValidationPipe } from '@nestjs/common';
import { validateSync } from 'class-validator';
import { LiftedArray } from '@bales/model-registry';
import { Reader, compileReader } from './compiled-validation';

const FLAT_DTO = Symbol('flat-dto');

// Deeper than any tensor's rank plus the body's own two levels; class-transformer and the tensor encoder
// recurse once per level and overflow the stack (a 500) a few thousand levels down.
export const MAX_BODY_DEPTH = 32;

/**
 * Marks a DTO whose fields are all primitives or opaque objects (no nested DTO to instantiate), so its body
 * is validated on a shallow copy instead of through class-transformer, which deep-copies (and the pipe
 * walks) every element of a large tensor payload on the hot path.
 */
export const FlatDto = (): ClassDecorator => SetMetadata(FLAT_DTO, true);

const OPAQUE_ARRAYS = Symbol('opaque-arrays');

/** `field` of each entry of the array property `list`, e.g. the `data` of each of `inputs`. */
interface OpaqueArray {
  list: string;
  field: string;
}

/**
 * Marks `field` of every entry of the nested DTO list `list` as a tensor payload whose validators look only at
 * whether it is an array (never at its elements, e.g. no `each`): the body is validated with an empty array in
 * its place, and the instance gets the client's own array back, so class-transformer and the pipe do not copy
 * and walk its thousands of numbers. Its values are checked later, by whatever reads them.
 */
export const OpaqueArrays = (list: string, field: string): ClassDecorator => SetMetadata(OPAQUE_ARRAYS, { list, field } satisfies OpaqueArray);

/**
 * True when every element is a number. Called only for arrays whose first element is one, so its loop sees numeric
 * element kinds alone and reads no value boxed: a tensor's innermost arrays pass here about five times faster than
 * through the walks' generic loops, which also see arrays of arrays and objects.
 */
function numbersOnly(array: unknown[]): boolean {
  for (let i = 0; i < array.length; i++) if (typeof array[i] !== 'number') return false;
  return true;
}

/**
 * True when an object anywhere in the value has a `prototype`, `constructor` or `__proto__` key of its own: keys
 * Nest's ValidationPipe deletes before class-transformer copies the body, so such a body takes that path.
 */
function holdsPrototypeKeys(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (v[i] !== null && typeof v[i] === 'object') stack.push(v[i]);
      continue;
    }
    if (Object.hasOwn(v, 'prototype') || Object.hasOwn(v, 'constructor') || Object.hasOwn(v, '__proto__')) return true;
    for (const key in v) stack.push((v as Record<string, unknown>)[key]);
  }
  return false;
}

/**
 * True when the array holds only primitives and arrays of them: the values class-transformer would copy as
 * they are, and from which the pipe strips no key. Walked without recursion, as nestsDeeperThan.
 */
function holdsNoObject(array: unknown[]): boolean {
  const arrays: unknown[][] = [array];
  while (arrays.length > 0) {
    const a = arrays.pop()!;
    if (typeof a[0] === 'number' && numbersOnly(a)) continue;
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (v === null || typeof v !== 'object') continue;
      if (!Array.isArray(v)) return false;
      arrays.push(v);
    }
  }
  return true;
}

/**
 * True when a parsed JSON value nests objects or arrays deeper than maxDepth. Walked without recursion, and
 * without allocating per element: it runs on every request body, whose tensors hold thousands of numbers.
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const values: object[] = [];
  const depths: number[] = [];
  if (value !== null && typeof value === 'object') {
    values.push(value);
    depths.push(1);
  }
  while (values.length > 0) {
    const v = values.pop()!;
    const depth = depths.pop()! + 1;
    if (depth > maxDepth + 1) return true;
    if (v instanceof LiftedArray) {
      if (depth - 2 + v.dims.length > maxDepth) return true;
      continue;
    }
    // Arrays and objects walked apart, each loop inline: one loop over both, or a call per element, boxes every
    // number it reads.
    if (Array.isArray(v)) {
      if (typeof v[0] === 'number' && numbersOnly(v)) continue;
      for (let i = 0; i < v.length; i++) {
        const child: unknown = v[i];
        if (typeof child !== 'object' || child === null) continue;
        values.push(child);
        depths.push(depth);
      }
    } else {
      for (const key in v) {
        const child: unknown = (v as Record<string, unknown>)[key];
        if (typeof child !== 'object' || child === null) continue;
        values.push(child);
        depths.push(depth);
      }
    }
  }
  return false;
}

/**
 * Gives the LiftedArrays under `value` back as the arrays they were. A lifted array stands for a tensor's values;
 * anywhere a DTO does not take those (a shape, a parameter, a field that must be an object) its validators see the
 * array itself, and name what is wrong as they would.
 */
function restoreLifted(value: object): void {
  if (Array.isArray(value) && typeof value[0] === 'number' && numbersOnly(value)) return;
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const v = fields[key];
    if (v instanceof LiftedArray) fields[key] = v.toArray();
    else if (v !== null && typeof v === 'object') restoreLifted(v);
  }
}

/** One message naming every field that failed, e.g. "priority must be an integer; payload is required". */
function messages(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const path = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => (m.startsWith(e.property) ? `${parent ? parent + '.' : ''}${m}` : `${path}: ${m}`));
    return [...own, ...messages(e.children ?? [], path)];
  });
}

/**
 * class-validator on every DTO: unknown fields refused, every failing field named, and a body must be a JSON
 * object. Bodies that would crash validation (a 500) before it could refuse them are refused first, with 400:
 * nesting deeper than MAX_BODY_DEPTH, and a top-level `constructor` key, which the DTO instance would carry
 * where class-validator reads `constructor.prototype`.
 */
@Injectable()
export class BodyValidationPipe extends ValidationPipe {
  /** Per DTO, its compiled reader (undefined: class-validator only). */
  private readonly readers = new Map<Function, Reader | undefined>();

  constructor() {
    super({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      exceptionFactory: (errors) => new BadRequestException(messages(errors).join('; ')),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata) {
    // Values of custom parameter decorators are the gateway's own, never the client's.
    if (metadata.type === 'custom') return value;
    if (metadata.type !== 'body') return super.transform(value, metadata);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BadRequestException('the request body must be a JSON object');
    if (nestsDeeperThan(value, MAX_BODY_DEPTH)) throw new BadRequestException(`the request body nests deeper than ${MAX_BODY_DEPTH} levels`);
    if (Object.hasOwn(value, 'constructor')) throw new BadRequestException('property constructor should not exist');
    const type = metadata.metatype as (new () => object) | undefined;
    if (type && Reflect.getMetadata(FLAT_DTO, type)) {
      // A flat DTO's object fields are opaque: the lifted arrays in them are tensors. Its own fields are not.
      const fields = value as Record<string, unknown>;
      for (const key in fields) if (fields[key] instanceof LiftedArray) fields[key] = (fields[key] as LiftedArray).toArray();
      // A valid body is the common case and needs only the compiled check; class-validator names what is wrong.
      const read = this.read(type, fields);
      if (read) return read;
      // Fastify's JSON parser already refuses __proto__ and constructor.prototype keys, so a shallow copy is safe.
      const dto = Object.assign(new type(), value);
      const errors = validateSync(dto, { whitelist: true, forbidNonWhitelisted: true });
      if (errors.length > 0) throw new BadRequestException(messages(errors).join('; '));
      return dto;
    }
    const opaque = type && (Reflect.getMetadata(OPAQUE_ARRAYS, type) as OpaqueArray | undefined);
    if (opaque) return this.withOpaqueArrays(value as Record<string, unknown>, metadata, opaque);
    restoreLifted(value);
    return super.transform(value, metadata);
  }

  /** The DTO instance of a body class-validator would accept, read without it; undefined when it might not. */
  private read(type: new () => object, body: Record<string, unknown>): object | undefined {
    if (!this.readers.has(type)) this.readers.set(type, compileReader(type));
    return this.readers.get(type)?.(body);
  }

  /**
   * The class-validator path on the body with an empty array standing in for each opaque array, which goes back
   * into the instance once validated. An array holding objects stays in place: the pipe strips keys from them,
   * and the checks downstream would see, and name, them stripped.
   */
  private async withOpaqueArrays(body: Record<string, unknown>, metadata: ArgumentMetadata, { list, field }: OpaqueArray) {
    const entries = body[list];
    const held = new Map<number, unknown>();
    if (Array.isArray(entries)) {
      entries.forEach((entry: unknown, index) => {
        if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return;
        const array = (entry as Record<string, unknown>)[field];
        if (!(array instanceof LiftedArray) && (!Array.isArray(array) || !holdsNoObject(array))) return;
        held.set(index, array);
        (entry as Record<string, unknown>)[field] = [];
      });
    }
    restoreLifted(body);
    // A valid body is the common case and needs only the compiled reader; the full path names what is wrong.
    const read = holdsPrototypeKeys(body) ? undefined : this.read(metadata.metatype as new () => object, body);
    if (held.size === 0) return read ?? super.transform(body, metadata);
    let dto: Record<string, unknown>;
    try {
      // The reader builds the instance entry by entry, in order, as class-transformer does.
      dto = (read as Record<string, unknown> | undefined) ?? (await super.transform(body, metadata));
    } finally {
      for (const [index, array] of held) (entries as Record<string, unknown>[])[index][field] = array;
    }
    // class-transformer builds the list entry by entry, in order: entry i of the instance is entry i of the body.
    for (const [index, array] of held) (dto[list] as Record<string, unknown>[])[index][field] = array;
    return dto;
  }
}
