import type { MetadataStorage } from 'class-transformer/types/MetadataStorage';
import { ValidationArguments, ValidationTypes, getMetadataStorage } from 'class-validator';

// Where @Type keeps a nested property's class: class-transformer's own storage, read as @nestjs/mapped-types reads it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { defaultMetadataStorage } = require('class-transformer/cjs/storage') as { defaultMetadataStorage: MetadataStorage };

/**
 * The DTO instance of a body, with its nested DTOs, when class-validator would find nothing wrong with it;
 * undefined when it might (ask it why).
 */
export type Reader = (body: Record<string, unknown>) => object | undefined;

interface PropertyChecks {
  name: string;
  /** @IsOptional and @ValidateIf: the property is checked only when every one holds. */
  conditions: ((object: object, value: unknown) => boolean)[];
  checks: {
    constraints: unknown[];
    each: boolean;
    validateIf?: (object: object, value: unknown) => boolean;
    validate: (value: unknown, args: ValidationArguments) => unknown;
  }[];
  /** @ValidateNested with @Type: the nested class's reader, for an object or each entry of an array. */
  nested?: Reader;
}

const SUPPORTED = new Set<string>([ValidationTypes.CUSTOM_VALIDATION, ValidationTypes.IS_DEFINED, ValidationTypes.CONDITIONAL_VALIDATION, ValidationTypes.NESTED_VALIDATION]);

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** class-validator's `each`: every entry of an array, Set or Map, or the value itself. */
const entries = (value: unknown): unknown[] | undefined => (Array.isArray(value) ? value : value instanceof Set || value instanceof Map ? [...value.values()] : undefined);

/**
 * Compiles a DTO's class-validator decorators into one function that builds its instance from a parsed JSON body
 * and says whether it is valid, calling the same constraint implementations class-validator would, with the same
 * arguments, but without class-transformer's deep copy or class-validator's metadata lists and error objects per
 * call. It only answers with the instance or "ask class-validator", so class-validator stays the one source of the
 * rules and of every error message. A nested DTO (@ValidateNested with @Type) is read the same way, as an object or
 * as each entry of an array. Returns undefined when the DTO uses anything it does not reproduce (groups, async
 * validation, a nested property without @Type or with a discriminator), so the caller keeps the full path for it.
 * Unknown properties are refused, as with whitelist + forbidNonWhitelisted.
 */
export function compileReader(type: new () => object): Reader | undefined {
  const storage = getMetadataStorage();
  const metadatas = storage.getTargetValidationMetadatas(type, '', false, false);
  // class-validator refuses an object whose class has no rules at all (forbidUnknownValues).
  if (metadatas.length === 0) return undefined;
  const properties = new Map<string, PropertyChecks>();
  for (const m of metadatas) {
    if (!SUPPORTED.has(m.type) || m.groups?.length || m.always) return undefined;
    const property = properties.get(m.propertyName) ?? { name: m.propertyName, conditions: [], checks: [] };
    properties.set(m.propertyName, property);
    if (m.type === ValidationTypes.CONDITIONAL_VALIDATION) {
      property.conditions.push(m.constraints[0] as (object: object, value: unknown) => boolean);
      continue;
    }
    if (m.type === ValidationTypes.NESTED_VALIDATION) {
      const typed = defaultMetadataStorage.findTypeMetadata(type, m.propertyName);
      if (!typed || typed.options?.discriminator) return undefined;
      property.nested = compileReader(typed.typeFunction() as new () => object);
      if (!property.nested) return undefined;
      continue;
    }
    for (const constraint of storage.getTargetValidatorConstraints(m.constraintCls)) {
      if (constraint.async) return undefined;
      const instance = constraint.instance as { validate: PropertyChecks['checks'][number]['validate'] };
      property.checks.push({ constraints: m.constraints, each: m.each === true, validateIf: m.validateIf, validate: instance.validate.bind(instance) });
    }
  }
  const list = [...properties.values()];
  const targetName = type.name;
  const valid = (dto: Record<string, unknown>): boolean => {
    // The instance's own keys: the body's, and any field the class itself defines.
    for (const key of Object.keys(dto)) if (!properties.has(key)) return false;
    for (const p of list) {
      const value = dto[p.name];
      if (p.conditions.some((holds) => !holds(dto, value))) continue;
      // class-validator's nested check refuses null (an optional property skips it above).
      if (p.nested && value === null) return false;
      for (const c of p.checks) {
        if (c.validateIf && !c.validateIf(dto, value)) continue;
        const args = { targetName, property: p.name, object: dto, value, constraints: c.constraints };
        const each = c.each ? entries(value) : undefined;
        if (each ? !each.every((v) => c.validate(v, args)) : !c.validate(value, args)) return false;
      }
    }
    return true;
  };
  return (body) => {
    const dto = new type() as Record<string, unknown>;
    for (const key of Object.keys(body)) {
      const nested = properties.get(key)?.nested;
      const value = body[key];
      if (!nested || value === undefined || value === null) {
        dto[key] = value;
        continue;
      }
      // An object, or an array of objects; anything else (a primitive, an array in an array) is class-validator's to name.
      const read = isRecord(value) ? nested(value) : Array.isArray(value) ? readEach(nested, value) : undefined;
      if (read === undefined) return undefined;
      dto[key] = read;
    }
    return valid(dto) ? dto : undefined;
  };
}

function readEach(read: Reader, values: unknown[]): object[] | undefined {
  const out: object[] = [];
  for (const value of values) {
    const one = isRecord(value) ? read(value) : undefined;
    if (one === undefined) return undefined;
    out.push(one);
  }
  return out;
}
